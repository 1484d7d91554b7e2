"""tools/predict.py and tools/make_trimap.py: the user's story on small synthetic photos.

Subprocess runs use closed-form matting (configs/ml/closed_form.yml) on 64-96 px images so that the
whole file stays fast; error paths run in-process through each tool's ``main``.
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ppmatting.core import predict as core
from ppmatting.core.writer import ResultWriter
from ppmatting.transforms.trimap import trimap_from_alpha
from ppmatting.utils.io import read_alpha, read_image, write_image
from ppmatting.utils.compose import composite
from ppmatting.utils.synthetic import make_foreground

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "ml", "closed_form.yml")


def load_tool(name):
    from script_loader import load_script

    return load_script(f"tools/{name}.py")


def run_tool(name, *args, cwd):
    """Run tools/<name>.py as a user would, from a folder that is not the repository."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", f"{name}.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def make_photo(folder, name, seed, size=(64, 80), kind="hair"):
    """A synthetic photo with exact alpha; writes <name>.png and returns (image, alpha, trimap)."""
    rng = np.random.default_rng(seed)
    fg, alpha = make_foreground(kind, size, rng)
    yy, xx = np.mgrid[:size[0], :size[1]].astype(np.float32)
    bg = np.stack([xx / size[1], yy / size[0], np.full_like(xx, 0.3)], axis=2)
    image = composite(fg, alpha, bg)
    trimap = trimap_from_alpha(alpha, 5, 5)
    os.makedirs(folder, exist_ok=True)
    write_image(os.path.join(folder, f"{name}.png"), image)
    return image, alpha, trimap


# ---- pairing -------------------------------------------------------------------------------------
def test_pairing_by_name_in_folders(tmp_path):
    images, trimaps = tmp_path / "images", tmp_path / "trimaps"
    for name in ("a", "b", "c"):
        make_photo(images, name, seed=1, size=(8, 8))
    os.makedirs(trimaps)
    write_image(trimaps / "a.png", np.full((8, 8), 128, np.uint8))
    write_image(trimaps / "b_trimap.png", np.full((8, 8), 128, np.uint8))
    jobs = {job.name: job for job in core.collect_jobs(images, trimaps)}
    assert jobs["a"].trimap_path == str(trimaps / "a.png")
    assert jobs["b"].trimap_path == str(trimaps / "b_trimap.png")
    assert jobs["c"].trimap_path is None and "no trimap" in jobs["c"].problem
    assert "c_trimap.png" in jobs["c"].problem


def test_pairing_list_files(tmp_path):
    make_photo(tmp_path / "img", "x", seed=1, size=(8, 8))
    make_photo(tmp_path / "img", "y", seed=2, size=(8, 8))
    (tmp_path / "two.txt").write_text("img/x.png tri/x.png\n# a comment\n\nimg/y.png\n")
    (tmp_path / "val.txt").write_text("img/x.png alpha/x.png tri/x.png\n")
    jobs = core.collect_jobs(tmp_path / "two.txt")
    assert [j.name for j in jobs] == ["x", "y"]
    assert jobs[0].trimap_path == str(tmp_path / "tri" / "x.png") and jobs[1].trimap_path is None
    (val_job,) = core.collect_jobs(tmp_path / "val.txt")
    assert val_job.trimap_path == str(tmp_path / "tri" / "x.png")


@pytest.mark.parametrize("case, fragment", [
    ("one_trimap_many_images", "is one file but --image_path holds 2 images"),
    ("same_stem", "would both be saved as 'x'"),
    ("missing_image", "file or folder not found"),
    ("both_guides", "not both"),
])
def test_pairing_errors(tmp_path, case, fragment):
    make_photo(tmp_path / "img", "x", seed=1, size=(8, 8))
    make_photo(tmp_path / "img", "y", seed=1, size=(8, 8))
    write_image(tmp_path / "t.png", np.full((8, 8), 128, np.uint8))
    with pytest.raises(core.InputError) as info:
        if case == "one_trimap_many_images":
            core.collect_jobs(tmp_path / "img", tmp_path / "t.png")
        elif case == "same_stem":
            write_image(tmp_path / "img" / "x.jpg", np.zeros((8, 8, 3), np.uint8))
            core.collect_jobs(tmp_path / "img")
        elif case == "missing_image":
            core.collect_jobs(tmp_path / "nope.png")
        else:
            core.collect_jobs(tmp_path / "img" / "x.png", tmp_path / "t.png", tmp_path / "t.png")
    assert fragment in str(info.value)


# ---- the loop with a stand-in matte function (no model: tests the loop itself) -----------------------
def test_loop_continues_after_a_broken_image_and_writes_nothing_for_it(tmp_path):
    images, trimaps, out = tmp_path / "images", tmp_path / "trimaps", tmp_path / "out"
    for name in ("a", "c"):
        _, _, trimap = make_photo(images, name, seed=3, size=(16, 16))
        write_image(trimaps / f"{name}.png", trimap)
    (images / "b.png").write_bytes(b"\x89PNG truncated")
    write_image(trimaps / "b.png", trimap)
    seen = []

    def matte(image01, trimap_u8):
        seen.append(image01.shape)
        return (trimap_u8 / 255.0).astype(np.float32)

    jobs = core.collect_jobs(images, trimaps)
    writer = ResultWriter(str(out), foreground_fn=lambda image, alpha: image)
    summary = core.predict(matte, jobs, writer, progress=False, stream=open(os.devnull, "w"))
    assert [r.job.name for r in summary.done] == ["a", "c"] and len(seen) == 2
    assert len(summary.failed) == 1 and str(images / "b.png") in summary.failed[0][1]
    assert sorted(os.listdir(out)) == ["a_alpha.png", "a_rgba.png", "c_alpha.png", "c_rgba.png"]


def test_failed_write_leaves_no_partial_outputs(tmp_path):
    # the cut-out cannot be written (its name is taken by a folder): the alpha written just before
    # must be removed again, so a photo's outputs are all there or none
    out = tmp_path / "out"
    os.makedirs(out / "x_rgba.png")
    job = core.Job(image_path="x.png", name="x")
    image = np.full((8, 8, 3), 0.5, np.float32)
    with pytest.raises(OSError):
        core.matte_and_save(lambda im, tri: np.full((8, 8), 0.5, np.float32), job,
                            ResultWriter(str(out), fg_estimate=False), image,
                            np.full((8, 8), 128, np.uint8))
    assert sorted(os.listdir(out)) == ["x_rgba.png"]
    assert not any(name.startswith(".tmp") for name in os.listdir(out))


# ---- make_trimap ---------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [3, 8])
def test_make_trimap_band_width(tmp_path, width):
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255  # subject on the left, a straight vertical edge between columns 31 and 32
    write_image(tmp_path / "person_mask.png", mask)
    tool = load_tool("make_trimap")
    assert tool.main(["--mask", str(tmp_path / "person_mask.png"), "--unknown_width", str(width),
                      "--save_path", str(tmp_path / "trimaps")]) == 0
    trimap = cv2.imread(str(tmp_path / "trimaps" / "person.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(trimap)) == {0, 128, 255}
    for row in trimap:
        unknown = np.where(row == 128)[0]
        # `width` pixels on each side of the edge
        assert unknown.min() == 32 - width and unknown.max() == 31 + width
        assert (row[:32 - width] == 255).all() and (row[32 + width:] == 0).all()


def test_make_trimap_rejects_an_empty_mask(tmp_path, capsys):
    write_image(tmp_path / "empty.png", np.zeros((16, 16), np.uint8))
    tool = load_tool("make_trimap")
    with pytest.raises(SystemExit) as info:
        tool.main(["--mask", str(tmp_path / "empty.png"), "--save_path", str(tmp_path / "t.png")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "empty.png" in err and "no edge" in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "t.png")


# ---- tools/predict.py in-process: errors before any matting --------------------------------------
def test_predict_without_trimap_says_how_to_make_one(tmp_path, capsys):
    make_photo(tmp_path, "photo", seed=4)
    tool = load_tool("predict")
    with pytest.raises(SystemExit) as info:
        tool.main(["--config", CONFIG, "--image_path", str(tmp_path / "photo.png"),
                   "--save_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "photo.png" in err and "no trimap" in err
    assert "--trimap_from_mask" in err and "make_trimap.py" in err
    assert not os.path.exists(tmp_path / "out")


def test_predict_size_mismatch_names_both_files(tmp_path, capsys):
    make_photo(tmp_path, "photo", seed=4, size=(64, 80))
    write_image(tmp_path / "tri.png", np.full((64, 64), 128, np.uint8))
    tool = load_tool("predict")
    with pytest.raises(SystemExit) as info:
        tool.main(["--config", CONFIG, "--image_path", str(tmp_path / "photo.png"),
                   "--trimap_path", str(tmp_path / "tri.png"), "--save_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "size mismatch" in err
    assert "photo.png" in err and "tri.png" in err and "80x64" in err and "64x64" in err
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


def test_predict_refuses_weights_for_a_classical_model(tmp_path, capsys):
    make_photo(tmp_path, "photo", seed=4)
    tool = load_tool("predict")
    with pytest.raises(SystemExit):
        tool.main(["--config", CONFIG, "--model_path", str(tmp_path / "w.pdparams"),
                   "--image_path", str(tmp_path / "photo.png"), "--save_dir", str(tmp_path / "o")])
    assert "has no weights to load" in capsys.readouterr().err


# ---- tools/predict.py as a subprocess --------------------------------------------------------------
def test_predict_folder_with_one_broken_image(tmp_path):
    images, trimaps, out = tmp_path / "images", tmp_path / "trimaps", tmp_path / "out"
    truth = {}
    for i, name in enumerate(("p0", "p1")):
        image, alpha, trimap = make_photo(images, name, seed=10 + i)
        write_image(trimaps / (f"{name}.png" if i == 0 else f"{name}_trimap.png"), trimap)
        truth[name] = (image, alpha, trimap)
    (images / "p2.jpg").write_bytes(b"this is not a jpeg")
    write_image(trimaps / "p2.png", trimap)
    result = run_tool("predict", "--config", CONFIG, "--image_path", images, "--trimap_path",
                      trimaps, "--save_dir", out, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "p2.jpg" in result.stderr and "1 of 3 image(s) failed" in result.stderr
    assert sorted(os.listdir(out)) == ["p0_alpha.png", "p0_rgba.png", "p1_alpha.png", "p1_rgba.png"]
    for name, (image, alpha, trimap) in truth.items():
        saved = cv2.imread(str(out / f"{name}_alpha.png"), cv2.IMREAD_UNCHANGED)
        assert saved.dtype == np.uint8 and saved.shape == alpha.shape
        pred = saved / 255.0
        assert (pred[trimap == 0] == 0).all() and (pred[trimap == 255] == 1).all()
        unknown = trimap == 128
        assert np.abs(pred - alpha)[unknown].mean() < 0.08  # a real matte, not a copy of the trimap
        rgba = cv2.imread(str(out / f"{name}_rgba.png"), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (*alpha.shape, 4) and np.array_equal(rgba[:, :, 3], saved)
        # colour of the cut-out (BGR on disk) matches the photo where the subject is opaque
        opaque = trimap == 255
        assert np.abs(rgba[:, :, 2::-1][opaque] / 255.0 - image[opaque]).max() < 0.03


def test_predict_from_mask_16bit(tmp_path):
    image, alpha, _ = make_photo(tmp_path, "photo", seed=20, size=(72, 64))
    write_image(tmp_path / "photo_mask.png", (alpha > 0.5).astype(np.uint8) * 255)
    out = tmp_path / "out"
    result = run_tool("predict", "--config", CONFIG, "--image_path", "photo.png",
                      "--trimap_from_mask", "photo_mask.png", "--unknown_width", "6",
                      "--alpha_16bit", "--save_dir", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"alpha: out{os.sep}photo_alpha.png" in result.stdout
    saved = cv2.imread(str(out / "photo_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint16 and saved.shape == alpha.shape
    assert len(np.unique(saved)) > 256  # really 16-bit values, not 8-bit ones scaled up
    assert cv2.imread(str(out / "photo_rgba.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    pred = read_alpha(out / "photo_alpha.png")
    assert np.abs(pred - alpha).mean() < 0.05


# ---- DIM: weights are required, and the exported Paddle Inference predictor runs ------------------
DIM_CONFIG = os.path.join(ROOT, "configs", "dim", "dim-vgg16.yml")


def test_predict_dim_without_weights_is_refused(tmp_path, capsys):
    _, _, trimap = make_photo(tmp_path, "photo", seed=4)
    write_image(tmp_path / "tri.png", trimap)
    tool = load_tool("predict")
    with pytest.raises(SystemExit) as info:
        tool.main(["--config", DIM_CONFIG, "--image_path", str(tmp_path / "photo.png"),
                   "--trimap_path", str(tmp_path / "tri.png"), "--save_dir", str(tmp_path / "o")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "no trained weights" in err and "--model_path" in err


def test_predict_dim_runs_through_the_exported_predictor(tmp_path, monkeypatch):
    import paddle
    from ppmatting.cvlibs.config import Config

    cache = tmp_path / "cache"
    monkeypatch.setenv("PPMATTING_CACHE_DIR", str(cache))
    paddle.seed(3)
    model = Config(DIM_CONFIG).model
    weights = tmp_path / "dim.pdparams"
    paddle.save(model.state_dict(), str(weights))
    _, _, trimap = make_photo(tmp_path, "photo", seed=30, size=(64, 96))
    write_image(tmp_path / "photo_trimap.png", trimap)
    args = ("--config", DIM_CONFIG, "--model_path", weights, "--image_path", "photo.png",
            "--trimap_path", "photo_trimap.png")
    result = run_tool("predict", *args, "--save_dir", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "via Paddle Inference" in result.stdout
    assert "exporting DIM to Paddle Inference and checking it" in result.stdout
    entries = os.listdir(cache / "exports")
    assert len(entries) == 1
    with open(cache / "exports" / entries[0] / "deploy.yaml", encoding="utf-8") as handle:
        check = __import__("yaml").safe_load(handle)["Deploy"]["check"]
    assert check["sizes"] == [[1, 256, 256]] and check["min_share_within"] >= 0.999
    saved = read_alpha(tmp_path / "out" / "photo_alpha.png")
    model.eval()
    expected = model.predict(read_image(tmp_path / "photo.png"), trimap)
    # the same weights give the same alpha through the static graph (8-bit rounding apart)
    assert np.abs(saved - expected).max() <= 1 / 255 + 1e-6
    assert (saved[trimap == 0] == 0).all() and (saved[trimap == 255] == 1).all()
    assert os.path.isfile(tmp_path / "out" / "photo_rgba.png")

    # the second call finds the checked export in the cache: no export, no check, same alpha
    result = run_tool("predict", *args, "--save_dir", "again", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exporting" not in result.stdout and entries[0] in result.stdout
    assert os.listdir(cache / "exports") == entries
    assert (read_alpha(tmp_path / "again" / "photo_alpha.png") == saved).all()
    # the key follows the weights' content, the config after --opts and Paddle's version
    from ppmatting.cvlibs.config import Config as Cfg
    from ppmatting.deploy.export_cache import export_key

    section = Cfg(DIM_CONFIG).dic["model"]
    key = export_key(section, weights)[0]
    assert entries == [key]
    other = tmp_path / "other.pdparams"
    other.write_bytes(weights.read_bytes()[:-1] + b"x")
    assert export_key(section, other)[0] != key
    assert export_key(Cfg(DIM_CONFIG, opts=["model.pad_multiple=64"]).dic["model"], weights)[0] != key

    # an export folder (tools/export.py's layout) as --model_path: no config needed
    from ppmatting.deploy.export import export_static
    from ppmatting.deploy.info import build_deploy_dict, write_deploy_yaml

    export_dir = tmp_path / "export"
    files = export_static(model, str(export_dir))
    write_deploy_yaml(str(export_dir), build_deploy_dict(model, files, output_name=None))
    tool = load_tool("predict")
    assert tool.main(["--model_path", str(export_dir), "--image_path", str(tmp_path / "photo.png"),
                      "--trimap_path", str(tmp_path / "photo_trimap.png"), "--save_dir",
                      str(tmp_path / "out2"), "--no_rgba"]) == 0
    assert os.listdir(tmp_path / "out2") == ["photo_alpha.png"]
    assert np.abs(read_alpha(tmp_path / "out2" / "photo_alpha.png") - expected).max() <= 1 / 255 + 1e-6
