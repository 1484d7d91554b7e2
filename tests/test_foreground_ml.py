"""ppmatting's multi-level foreground estimator against pymatting's: the same F and B within 1/255
on photos and odd shapes, without importing pymatting (whose import compiles all its kernels)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from ppmatting.utils.foreground_ml import estimate_fb_ml, level_sizes
from ppmatting.utils.io import read_alpha, read_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "matting_demo", "demo")


def demo_crop(top, left, height, width, transpose=False):
    image = read_image(os.path.join(DEMO, "demo.png"))[top:top + height, left:left + width]
    alpha = read_alpha(os.path.join(DEMO, "demo_alpha.png"))[top:top + height, left:left + width]
    if transpose:
        image, alpha = image.transpose(1, 0, 2), alpha.T
    return np.ascontiguousarray(image), np.ascontiguousarray(alpha)


def random_scene(height, width, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((height, width, 3)).astype(np.float32),
            rng.random((height, width)).astype(np.float32))


CASES = {
    "photo, wide": lambda: demo_crop(100, 60, 96, 128),
    "photo, tall": lambda: demo_crop(80, 120, 128, 72, transpose=True),
    "random 37x91": lambda: random_scene(37, 91, 1),
    "random 90x33": lambda: random_scene(90, 33, 2),
    "one row": lambda: random_scene(1, 29, 3),
    "one column": lambda: random_scene(17, 1, 4),
}


@pytest.mark.parametrize("case", CASES)
def test_same_foreground_and_background_as_pymatting(case):
    from pymatting import estimate_foreground_ml

    image, alpha = CASES[case]()
    fg, bg = estimate_fb_ml(image, alpha)
    their_fg, their_bg = estimate_foreground_ml(image, alpha, return_background=True)
    assert fg.dtype == bg.dtype == np.float32 and fg.shape == bg.shape == image.shape
    assert np.abs(fg - their_fg).max() < 1 / 255, case
    assert np.abs(bg - their_bg).max() < 1 / 255, case
    assert fg.min() >= 0 and fg.max() <= 1


def test_parameters_mean_the_same_as_pymatting():
    from pymatting import estimate_foreground_ml

    image, alpha = demo_crop(120, 90, 64, 80)
    params = dict(regularization=1e-3, n_small_iterations=4, n_big_iterations=3, small_size=16,
                  gradient_weight=0.3)
    fg, bg = estimate_fb_ml(image, alpha, **params)
    their_fg, their_bg = estimate_foreground_ml(image, alpha, return_background=True, **params)
    assert np.abs(fg - their_fg).max() < 1 / 255
    assert np.abs(bg - their_bg).max() < 1 / 255
    # and they matter: the default parameters give another result
    assert np.abs(estimate_fb_ml(image, alpha)[0] - fg).max() > 1 / 255


def test_levels_follow_pymatting():
    # pymatting: n = ceil(log2(max(h, w))) + 1 levels of round(side ** (i / n)); 1 x 1 has one
    assert level_sizes(360, 400)[0] == (1, 1) and level_sizes(360, 400)[-1] == (360, 400)
    assert len(level_sizes(360, 400)) == 10
    assert level_sizes(1, 1) == [(1, 1)]
    # pymatting divides by zero on a 1 x 1 image; here it is one level: F and B solve its system
    fg, bg = estimate_fb_ml(np.full((1, 1, 3), 0.25, np.float32), np.full((1, 1), 0.5))
    assert fg.shape == (1, 1, 3) and np.isfinite(fg).all() and np.isfinite(bg).all()
    assert np.abs(0.5 * fg + 0.5 * bg - 0.25).max() < 0.01  # alpha F + (1 - alpha) B = I


def test_foreground_estimation_does_not_import_pymatting():
    code = ("import sys, numpy as np\n"
            "from ppmatting.utils.foreground import estimate_foreground\n"
            "fg = estimate_foreground(np.full((20, 24, 3), 0.5, np.float32),"
            " np.linspace(0, 1, 480, dtype=np.float32).reshape(20, 24))\n"
            "print(fg.shape, 'pymatting' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(20,", "24,", "3)", "False"]
