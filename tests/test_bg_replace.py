"""Background replacement: the estimated foreground removes the old background's fringe, and
tools/bg_replace.py writes what it promises (run as a user would, with closed-form matting)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ppmatting.transforms.trimap import trimap_from_alpha
from ppmatting.utils import compose
from ppmatting.apps.background import fit_image
from ppmatting.utils.foreground import estimate_foreground
from ppmatting.utils.io import read_alpha, read_image, write_image
from ppmatting.utils.compose import composite
from ppmatting.utils.synthetic import make_foreground

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "ml", "closed_form.yml")


def run_tool(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bg_replace.py"),
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def load_tool():
    from script_loader import load_script

    return load_script("tools/bg_replace.py")


def hairy_scene(size=(80, 96), seed=7):
    """A hairy subject with known fg and alpha on a saturated, textured old background."""
    rng = np.random.default_rng(seed)
    fg, alpha = make_foreground("hair", size, rng)
    yy, xx = np.mgrid[:size[0], :size[1]].astype(np.float32)
    old_bg = np.stack([0.9 - 0.3 * xx / size[1], 0.15 + 0.1 * np.sin(yy / 5), 0.1 + 0.2 * yy / size[0]],
                      axis=2).astype(np.float32)
    return fg, alpha, old_bg, composite(fg, alpha, old_bg)


def partial(alpha):
    return (alpha > 0.02) & (alpha < 0.98)


def test_estimated_foreground_beats_the_raw_image_on_a_new_background():
    fg, alpha, _, image = hairy_scene()
    new_bg = np.zeros_like(image)
    new_bg[..., 2] = 0.9  # blue: far from the reddish old background
    truth = composite(fg, alpha, new_bg)
    naive = compose.composite(image, alpha, new_bg)  # image*alpha + new*(1-alpha)
    fg_est = estimate_foreground(image, alpha)
    ours = compose.composite(fg_est, alpha, new_bg)
    region = partial(alpha)
    assert region.sum() > 200  # the test needs plenty of semi-transparent hair
    err_naive = np.abs(naive - truth)[region].mean()
    err_ours = np.abs(ours - truth)[region].mean()
    assert err_ours < 0.5 * err_naive, (err_ours, err_naive)
    assert err_ours < 0.02  # (the raw image is off by ~0.08 on this scene)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    fg, alpha, _, image = hairy_scene()
    write_image(folder / "photo.png", image)
    write_image(folder / "photo_trimap.png", trimap_from_alpha(alpha, 5, 7))
    yy, xx = np.mgrid[:30, :50].astype(np.float32)
    write_image(folder / "beach.jpg", np.stack([xx / 50, yy / 30, 0.5 + 0 * xx], axis=2))
    np.save(folder / "fg.npy", fg)
    np.save(folder / "alpha.npy", alpha)
    return folder


def test_bg_replace_cli_writes_every_composite(scene_dir, tmp_path):
    out = tmp_path / "out"
    result = run_tool("--config", CONFIG, "--image_path", scene_dir / "photo.png",
                      "--trimap_path", scene_dir / "photo_trimap.png",
                      "--background", scene_dir / "beach.jpg", "red", "blur:4",
                      "--bg_fit", "tile", "--compare", "--save_dir", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = ["photo_alpha.png", "photo_bg_beach.png", "photo_bg_blur4.png", "photo_bg_red.png",
                "photo_compare.png", "photo_rgba.png"]
    assert sorted(os.listdir(out)) == expected
    for name in expected:
        assert str(out / name) in result.stdout

    image = read_image(scene_dir / "photo.png")
    trimap = cv2.imread(str(scene_dir / "photo_trimap.png"), cv2.IMREAD_UNCHANGED)
    alpha_pred = read_alpha(out / "photo_alpha.png")
    background = trimap == 0
    red = read_image(out / "photo_bg_red.png")
    assert np.allclose(red[background], [1, 0, 0], atol=1 / 255)
    # --bg_fit tile: the 50x30 picture repeats at its own size, unscaled
    tiled = fit_image(read_image(scene_dir / "beach.jpg"), image.shape[:2], "tile")
    on_beach = read_image(out / "photo_bg_beach.png")
    assert np.abs(on_beach[background] - tiled[background]).max() <= 1.5 / 255
    assert np.abs(on_beach[trimap == 255] - image[trimap == 255]).max() < 0.03

    # end to end, with the predicted alpha: the composite made with the estimated foreground is
    # closer to the true composite than the raw photo pasted with the same alpha
    fg, alpha = np.load(scene_dir / "fg.npy"), np.load(scene_dir / "alpha.npy")
    truth = composite(fg, alpha, tiled)
    naive = compose.composite(image, alpha_pred, tiled)
    region = partial(alpha)
    assert np.abs(on_beach - truth)[region].mean() < 0.8 * np.abs(naive - truth)[region].mean()

    compare = read_image(out / "photo_compare.png")
    # photo, trimap, alpha and three composites at the photo's height, side by side
    assert compare.shape[1] > 6 * image.shape[1] and compare.shape[0] > image.shape[0]


def test_bg_replace_jpeg_by_extension(scene_dir, tmp_path):
    result = run_tool("--config", CONFIG, "--image_path", "photo.png", "--trimap_path",
                      "photo_trimap.png", "--background", "#00ff00", "--save_dir", tmp_path / "o",
                      "--save_name", "result.jpg", cwd=scene_dir)
    assert result.returncode == 0, result.stderr
    data = (tmp_path / "o" / "result.jpg").read_bytes()
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG, not a PNG with a .jpg name
    assert sorted(os.listdir(tmp_path / "o")) == ["photo_alpha.png", "photo_rgba.png", "result.jpg"]


@pytest.mark.parametrize("case", ["unreadable", "missing", "bad_colour", "bad_extension",
                                  "folder_in_name"])
def test_bad_background_fails_before_matting_and_writes_nothing(scene_dir, tmp_path, capsys, case):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really")
    background, extra, fragment = {
        "unreadable": (str(broken), [], f"{broken}: not a readable image"),
        "missing": (str(tmp_path / "nope.jpg"), [], "nope.jpg': file not found"),
        "bad_colour": ("bleu", [], "did you mean blue"),
        "bad_extension": ("white", ["--save_name", "out.gif"], "use a .png or .jpg name"),
        "folder_in_name": ("white", ["--save_name", "../elsewhere/out.png"],
                           "give a file name only; the folder goes in --save_dir"),
    }[case]
    out = tmp_path / "out"
    tool = load_tool()
    with pytest.raises(SystemExit) as info:
        tool.main(["--config", CONFIG, "--image_path", str(scene_dir / "photo.png"),
                   "--trimap_path", str(scene_dir / "photo_trimap.png"), "--background", "white",
                   background, "--save_dir", str(out), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not out.exists()
