"""Foreground estimation: ppmatting's multi-level estimator (``ppmatting.utils.foreground_ml``, one
numba kernel) against pymatting 1.1.16's ``estimate_foreground_ml``, same inputs, one run.

Prints, per image size: the fastest of ``--repeat`` runs of each (seconds), their ratio and the
largest difference of F and of B (1/255 = 0.0039). With ``--first_call``, also what the first call
after installation costs, each in a fresh interpreter with an empty numba cache: ours compiles its
one kernel, pymatting's import compiles all of its kernels (minutes on a busy machine).

Inputs: the bundled demo photo and its ground-truth alpha, and the same scaled up (bilinear) to
the larger sizes.

Usage: python benchmarks/bench_foreground.py [--sizes 360x400 1080x1920 2160x3840] [--repeat 3]
       [--first_call]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _timing, also when imported

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from _timing import best_time  # noqa: E402  (beside this script)
from ppmatting.utils.foreground_ml import estimate_fb_ml  # noqa: E402
from ppmatting.utils.io import read_alpha, read_image  # noqa: E402

DEMO = os.path.join(ROOT, "data", "matting_demo", "demo")


def inputs(height, width):
    image = read_image(os.path.join(DEMO, "demo.png"))
    alpha = read_alpha(os.path.join(DEMO, "demo_alpha.png"))
    if image.shape[:2] != (height, width):
        image = np.clip(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)
        alpha = np.clip(cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)
    return image.astype(np.float32), alpha.astype(np.float32)


def first_call_seconds(code):
    """Wall time of ``code`` in a fresh interpreter with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["360x400", "1080x1920", "2160x3840"],
                        help="HxW; 360x400 is the demo photo itself")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first_call", action="store_true",
                        help="also time the first call after installation, in subprocesses")
    args = parser.parse_args()
    from pymatting import estimate_foreground_ml  # compiles or loads its kernels, not timed

    estimate_foreground_ml(*inputs(360, 400))
    estimate_fb_ml(*inputs(360, 400))  # compiles or loads our kernel, not timed
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'size':>10} {'ours s':>8} {'pym s':>8} {'ours/pym':>9} {'max dF':>8} {'max dB':>8}")
    for size in args.sizes:
        height, width = (int(v) for v in size.lower().split("x"))
        image, alpha = inputs(height, width)
        ours_s, (fg, bg) = best_time(lambda: estimate_fb_ml(image, alpha), args.repeat)
        pym_s, (their_fg, their_bg) = best_time(
            lambda: estimate_foreground_ml(image, alpha, return_background=True), args.repeat)
        print(f"{size:>10} {ours_s:8.3f} {pym_s:8.3f} {ours_s / pym_s:8.2f}x "
              f"{np.abs(fg - their_fg).max():8.5f} {np.abs(bg - their_bg).max():8.5f}",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if args.first_call:
        setup = ("import numpy as np; image = np.random.default_rng(0).random((360, 400, 3), "
                 "dtype=np.float32); alpha = image[:, :, 0].copy(); ")
        ours = first_call_seconds(setup + "from ppmatting.utils.foreground_ml import "
                                          "estimate_fb_ml; estimate_fb_ml(image, alpha)")
        theirs = first_call_seconds(setup + "from pymatting import estimate_foreground_ml; "
                                            "estimate_foreground_ml(image, alpha)")
        print(f"first call after installation (fresh interpreter, empty numba cache, 360x400, "
              f"wall): ours {ours:.1f} s (imports ppmatting), pymatting {theirs:.1f} s")


if __name__ == "__main__":
    main()
