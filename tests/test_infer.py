"""deploy/python/infer.py: an exported DIM mattes a folder of photos of mixed sizes.

The story: export a DIM, put photos of different sizes and formats in a folder with their trimaps
(``x.png`` or ``x_trimap.png``), run infer.py with batch size 2, and open the files it wrote.
"""
import os

import cv2
import numpy as np
import paddle
import pytest

import ppmatting  # noqa: F401
from ppmatting.deploy.export import export_model
from ppmatting.deploy.info import load_deploy_info
from ppmatting.deploy.predictor import MattingPredictor
from ppmatting.models.dim import dim_vgg16
from ppmatting.utils.io import read_image, read_trimap, write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_infer():
    from script_loader import load_script

    return load_script("deploy/python/infer.py")


infer = _load_infer()

# name -> (height, width, image extension, trimap file name); three share a padded size (64x64),
# so batch size 2 gives a full batch, a partial one, and single photos of other sizes
PHOTOS = {
    "cat": (64, 64, ".jpg", "cat.png"),
    "dog": (70, 90, ".png", "dog_trimap.png"),
    "owl": (64, 64, ".jpg", "owl.png"),
    "yak": (96, 80, ".bmp", "yak.png"),
    "elk": (60, 64, ".png", "elk.png"),
}


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory):
    paddle.seed(11)
    model = dim_vgg16()
    folder = tmp_path_factory.mktemp("infer_export")
    export_model(model, str(folder), check_shapes=[(1, 32, 32)], log=lambda line: None)
    return folder


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    images, trimaps = tmp_path / "images", tmp_path / "trimaps"
    for name, (height, width, ext, trimap_name) in PHOTOS.items():
        small = rng.random((height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
        write_image(str(images / f"{name}{ext}"), cv2.resize(small, (width, height)))
        trimap = np.zeros((height, width), np.uint8)
        trimap[height // 5:4 * height // 5, width // 5:4 * width // 5] = 128
        trimap[2 * height // 5:3 * height // 5, 2 * width // 5:3 * width // 5] = 255
        write_image(str(trimaps / trimap_name), trimap)
    return images, trimaps


def _read(path):
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None, f"{path} is not a readable image"
    return array


def test_folder_of_mixed_sizes_with_batch_size_2(deploy_dir, photos, tmp_path, capsys):
    images, trimaps = photos
    out = tmp_path / "out"
    assert infer.main(["--config", str(deploy_dir / "deploy.yaml"), "--image_path", str(images),
                       "--trimap_path", str(trimaps), "--save_dir", str(out),
                       "--batch_size", "2", "--background", "dodgerblue"]) == 0
    assert f"saved {len(PHOTOS)} result(s)" in capsys.readouterr().out
    predictor = MattingPredictor(load_deploy_info(str(deploy_dir)))
    for name, (height, width, ext, trimap_name) in PHOTOS.items():
        alpha = _read(out / f"{name}_alpha.png")
        rgba = _read(out / f"{name}_rgba.png")
        composite = _read(out / f"{name}_composite.png")
        assert alpha.shape == (height, width) and alpha.dtype == np.uint8
        assert rgba.shape == (height, width, 4)
        assert composite.shape == (height, width, 3)
        trimap_u8 = read_trimap(str(trimaps / trimap_name))
        assert (alpha[trimap_u8 == 0] == 0).all() and (alpha[trimap_u8 == 255] == 255).all()
        assert np.array_equal(rgba[:, :, 3], alpha)
        # the estimated foreground stays close to the photo where the subject is opaque
        photo = _read(images / f"{name}{ext}")
        opaque = alpha == 255
        assert np.abs(rgba[:, :, :3][opaque].astype(int) - photo[opaque]).mean() <= 3
        # where alpha is 0 the composite is the background colour (30, 144, 255), BGR on disk
        assert np.abs(composite[trimap_u8 == 0].astype(int) - [255, 144, 30]).max() <= 1
        # batching did not change anything: same as matting the photo alone
        image01 = read_image(str(images / f"{name}{ext}"))
        alone = np.round(predictor.predict(image01, trimap_u8) * 255)
        assert np.abs(alone - alpha.astype(np.float64)).max() <= 1, name


def test_missing_trimap_stops_with_its_name(deploy_dir, photos, tmp_path, capsys):
    images, trimaps = photos
    os.unlink(trimaps / "yak.png")
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--config", str(deploy_dir), "--image_path", str(images),
                    "--trimap_path", str(trimaps), "--save_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "yak.bmp" in err[0] and "no trimap" in err[0] and "yak_trimap.png" in err[0]
    assert not (tmp_path / "out").exists()  # nothing was computed


def test_single_photo_without_foreground_estimate_and_benchmark(deploy_dir, photos, tmp_path,
                                                                capsys):
    images, trimaps = photos
    out = tmp_path / "out"
    assert infer.main(["--config", str(deploy_dir), "--image_path", str(images / "dog.png"),
                       "--trimap_path", str(trimaps / "dog_trimap.png"), "--save_dir", str(out),
                       "--fg_estimate", "false", "--cpu_threads", "1", "--benchmark"]) == 0
    text = capsys.readouterr().out
    ms = {}
    for stage in ("pre-processing", "inference", "post-processing", "total"):
        line = next(line for line in text.splitlines() if line.strip().startswith(stage))
        ms[stage] = float(line.split()[-1])
        assert ms[stage] >= 0
    assert ms["inference"] > 0  # a VGG16 forward on 70x90 takes milliseconds, not 0.0
    # the three stages are the whole time (each printed to 0.1 ms)
    assert abs(ms["pre-processing"] + ms["inference"] + ms["post-processing"] - ms["total"]) <= 0.15
    assert "cpu threads 1" in text
    # without estimation the cut-out carries the photo's own colours
    photo = _read(images / "dog.png")
    rgba = _read(out / "dog_rgba.png")
    assert np.array_equal(rgba[:, :, :3], photo)
    assert not (out / "dog_composite.png").exists()


def test_unusable_precision_is_refused_before_running(deploy_dir, photos, tmp_path, capsys):
    images, trimaps = photos
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--config", str(deploy_dir), "--image_path", str(images),
                    "--trimap_path", str(trimaps), "--save_dir", str(tmp_path / "out"),
                    "--precision", "fp16"])
    assert exit_info.value.code == 2
    assert "fp16 on CPU" in capsys.readouterr().err
