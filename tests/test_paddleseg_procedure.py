"""PaddleSeg's DIM, run the way PaddleSeg runs it, through every route a user takes.

PaddleSeg's ``Matting/`` package is not on PyPI, so this file cannot import it. Instead it holds an
independent re-statement of PaddleSeg's procedure, written from PaddleSeg's source as plain
functional calls on the checkpoint's tensors (PaddleSeg ``Matting/ppmatting/``: ``models/dim.py``
forward / ``Up`` / ``Decoder`` / ``Refine``, ``models/backbone/vgg.py``, ``core/predict.py``,
``core/val.py``, ``transforms/transforms.py`` ``LimitLong`` / ``Normalize``;
``paddleseg.transforms.functional.resize_long`` and ``normalize``):

* the photo is read as 8-bit RGB, /255, then (x - 0.5) / 0.5; the trimap stays raw 0/128/255 and is
  divided by 255 inside the network; nothing is padded;
* LimitLong(3840): a photo whose long side exceeds it is resized (cv2 linear; the trimap nearest) so
  that side is 3840, each side ``int(round(side * scale))``; the alpha is resized back (bilinear);
* the network: five VGG16 blocks (bias-free 3x3 convs + ReLU, 2x2 max-pool that floors odd sizes),
  a 3x3 conv6 + ReLU; the decoder's 1x1 ``deconv6``, then per level bilinear resize to the skip's
  size, add the skip, 5x5 conv + BN + ReLU (and one more ReLU), a 5x5 ``alpha_conv`` + sigmoid;
  the refiner's three 3x3 conv + BN + ReLU and a 3x3 conv + BN + ReLU to one channel, added to the
  raw alpha, clipped to [0, 1] at evaluation;
* prediction saves ``uint8(alpha * 255)`` (truncation) with the trimap's known regions forced;
  evaluation scores ``round(alpha * 255)``.

Every route of ppmatting (``DIM.predict``, tools/predict.py's Paddle Inference fast path,
tools/val.py, tools/export.py + deploy/python/infer.py on both engines) must give that alpha on
sizes that are not multiples of 32: 77x100 (from the issue) and 95x63, which floors at every
pooling level in both directions (95 -> 47 -> 23 -> 11 -> 5 -> 2, 63 -> 31 -> 15 -> 7 -> 3 -> 1).
The same test with the old padding (``pad_multiple: 32``) fails, which shows it can fail.
"""
import os

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import yaml

import ppmatting  # noqa: F401 - fills the registries
from ppmatting.cvlibs.config import Config
from ppmatting.deploy.parity import compare_alphas
from ppmatting.models.decoders.paddleseg_decoder import SkipUpBlock
from ppmatting.transforms import LimitLong
from ppmatting.transforms.trimap import trimap_from_alpha
from ppmatting.utils.compose import composite
from ppmatting.utils.io import write_image
from ppmatting.utils.synthetic import make_foreground

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "dim", "dim-vgg16-paddleseg.yml")
PHOTOS = {"issue": (77, 100), "allodd": (95, 63)}
VGG16_BLOCKS = (2, 2, 3, 3, 3)
BN_EPSILON = 1e-5  # paddle.nn.BatchNorm2D's default, which PaddleSeg's ConvBNReLU uses


# ---- PaddleSeg's procedure, restated ------------------------------------------------------------
def _tensor(state, name):
    return paddle.to_tensor(state[name])


def _conv_bn_relu(x, state, prefix, padding):
    x = F.conv2d(x, _tensor(state, prefix + ".conv.weight"), padding=padding)
    x = F.batch_norm(x, _tensor(state, prefix + ".bn._mean"), _tensor(state, prefix + ".bn._variance"),
                     _tensor(state, prefix + ".bn.weight"), _tensor(state, prefix + ".bn.bias"),
                     training=False, epsilon=BN_EPSILON)
    return F.relu(x)


def paddleseg_forward(state, img, trimap):
    """PaddleSeg's DIM in eval mode. state: ppmatting's names -> numpy arrays; img float32
    1 x 3 x H x W normalised; trimap float32 1 x 1 x H x W raw. Returns alpha 1 x 1 x H x W."""
    size = img.shape[2:]
    x = paddle.concat([img, trimap / 255.0], axis=1)
    skips = []
    for block, convs in enumerate(VGG16_BLOCKS, 1):
        for index in range(1, convs + 1):
            weight = _tensor(state, f"backbone.conv{block}_{index}.weight")
            x = F.relu(F.conv2d(x, weight, padding=1))
        skips.append(x)
        x = F.max_pool2d(x, kernel_size=2, stride=2)
    x = F.relu(F.conv2d(x, _tensor(state, "backbone.conv6.weight"), padding=1))
    x = F.conv2d(x, _tensor(state, "decoder.deconv6.weight"))
    for level in range(5, 0, -1):
        skip = skips[level - 1]
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False) + skip
        x = F.relu(_conv_bn_relu(x, state, f"decoder.deconv{level}.conv", 2))
    alpha_raw = F.sigmoid(F.conv2d(x, _tensor(state, "decoder.alpha_conv.weight"), padding=2))
    alpha_raw = F.interpolate(alpha_raw, size=size, mode="bilinear", align_corners=False)
    refine = paddle.concat([img, alpha_raw], axis=1)
    for index in (1, 2, 3):
        refine = _conv_bn_relu(refine, state, f"refiner.conv{index}", 1)
    refine = _conv_bn_relu(refine, state, "refiner.alpha_pred", 1)
    alpha = F.interpolate(refine + alpha_raw, size=size, mode="bilinear", align_corners=False)
    return paddle.clip(alpha, 0.0, 1.0)


def paddleseg_alpha(state, rgb_u8, trimap_u8, max_long=3840):
    """PaddleSeg's float alpha (H x W, before saving) for an 8-bit RGB photo and its trimap."""
    height, width = trimap_u8.shape
    scale = max_long / max(height, width)
    image, trimap = rgb_u8, trimap_u8
    if scale < 1:
        new_w, new_h = int(round(width * scale)), int(round(height * scale))
        image = cv2.resize(rgb_u8, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        trimap = cv2.resize(trimap_u8, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    img = ((image.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    with paddle.no_grad():
        alpha = paddleseg_forward(state, paddle.to_tensor(np.ascontiguousarray(img)),
                                  paddle.to_tensor(trimap.astype(np.float32)[None, None]))
        alpha = F.interpolate(alpha, size=[height, width], mode="bilinear")  # reverse_transform
    return alpha.numpy()[0, 0]


def forced(alpha_u8, trimap_u8):
    out = alpha_u8.copy()
    out[trimap_u8 == 0] = 0
    out[trimap_u8 == 255] = 255
    return out


def paddleseg_predict_png(alpha01, trimap_u8):
    """What PaddleSeg's predict writes: truncated to uint8, then the trimap forced."""
    return forced((alpha01 * 255).astype(np.uint8), trimap_u8)


def paddleseg_val_png(alpha01, trimap_u8):
    """What PaddleSeg's evaluation scores (and saves): rounded, the trimap forced."""
    return forced(np.round(alpha01 * 255).astype(np.uint8), trimap_u8)


# ---- data and weights ---------------------------------------------------------------------------
def _photo(height, width, seed):
    rng = np.random.default_rng(seed)
    fg01, alpha01 = make_foreground("hair", (height, width), rng)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    bg01 = np.stack([xx / width, yy / height, np.full_like(xx, 0.3)], axis=2)
    rgb_u8 = np.round(composite(fg01, alpha01, bg01) * 255).astype(np.uint8)
    return rgb_u8, np.round(alpha01 * 255).astype(np.uint8), trimap_from_alpha(alpha01, 7, 7)


def _trained_like_weights(model, rgb_u8, trimap_u8):
    """Seeded random weights with batch-norm statistics as training leaves them (one train-mode
    pass with momentum 0 sets them to that image's batch statistics) and a refiner whose
    correction is small, as a trained one's is; otherwise random weights saturate alpha at 1."""
    norms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)]
    for layer in norms:
        layer._momentum = 0.0
    img, trimap, _ = model.preprocess(rgb_u8.astype(np.float32) / 255.0, trimap_u8)
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(img), paddle.to_tensor(trimap))
    model.eval()
    model.refiner.alpha_pred.bn.weight.set_value(np.full([1], 0.05, np.float32))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("paddleseg_procedure")
    paddle.seed(13)
    model = Config(CONFIG).model
    assert model.pad_multiple == 1, "the PaddleSeg config must feed images unpadded"
    photos = {name: _photo(height, width, seed=height) for name, (height, width) in PHOTOS.items()}
    calibration_rgb_u8, _, calibration_trimap_u8 = _photo(128, 128, seed=0)
    _trained_like_weights(model, calibration_rgb_u8, calibration_trimap_u8)
    weights = work / "dim-paddleseg-trained-like.pdparams"
    paddle.save(model.state_dict(), str(weights))
    state = {name: tensor.numpy() for name, tensor in model.state_dict().items()}
    for folder in ("image", "alpha", "trimap"):
        os.makedirs(work / folder)
    lines = []
    for name, (rgb_u8, alpha_u8, trimap_u8) in photos.items():
        write_image(str(work / "image" / f"{name}.png"), rgb_u8)
        write_image(str(work / "alpha" / f"{name}.png"), alpha_u8)
        write_image(str(work / "trimap" / f"{name}.png"), trimap_u8)
        lines.append(f"image/{name}.png alpha/{name}.png trimap/{name}.png")
    (work / "val.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = {name: paddleseg_alpha(state, rgb_u8, trimap_u8)
                for name, (rgb_u8, _, trimap_u8) in photos.items()}
    for name, alpha01 in expected.items():  # sanity: the weights give a real, unsaturated matte
        unknown = alpha01[photos[name][2] == 128]
        assert 0.2 < unknown.mean() < 0.95 and np.mean((unknown > 0.02) & (unknown < 0.98)) > 0.5
    return {"work": work, "model": model, "weights": weights, "state": state, "photos": photos,
            "expected": expected}


def _read_u8(path):
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None and array.dtype == np.uint8, path
    return array


def _assert_png_is_paddlesegs(png_u8, alpha01, trimap_u8, what):
    """A saved 8-bit alpha holds PaddleSeg's alpha: within one level of PaddleSeg's own saved file
    everywhere, and equal to PaddleSeg's rounded value for 99.9% of the pixels (the engines differ
    by ~1e-6, which moves a value across a rounding boundary now and then)."""
    rounded = paddleseg_val_png(alpha01, trimap_u8).astype(int)
    truncated = paddleseg_predict_png(alpha01, trimap_u8).astype(int)
    assert png_u8.shape == trimap_u8.shape, what
    assert np.abs(png_u8.astype(int) - truncated).max() <= 1, what
    assert np.abs(png_u8.astype(int) - rounded).max() <= 1, what
    assert np.mean(png_u8.astype(int) == rounded) >= 0.999, what


# ---- the routes ---------------------------------------------------------------------------------
def test_predict_equals_paddlesegs_network_on_the_unpadded_image(setup):
    for name, (rgb_u8, _, trimap_u8) in setup["photos"].items():
        alpha01 = setup["model"].predict(rgb_u8.astype(np.float32) / 255.0, trimap_u8)
        unknown = trimap_u8 == 128
        np.testing.assert_allclose(alpha01[unknown], setup["expected"][name][unknown], atol=1e-5)


def test_padding_to_32_would_fail_this_test(setup):
    """The procedure the config used before (reflect-pad to 32) moves most unknown pixels."""
    model = setup["model"]
    model.pad_multiple = 32
    rgb_u8, _, trimap_u8 = setup["photos"]["issue"]
    try:
        alpha01 = model.predict(rgb_u8.astype(np.float32) / 255.0, trimap_u8)
        parity = compare_alphas(setup["expected"]["issue"], alpha01, mask=trimap_u8 == 128)
        assert not parity.ok and parity.share_within < 0.5, parity.describe()
    finally:
        model.pad_multiple = 1
    assert "NOT PaddleSeg's" in Config(CONFIG, opts=["model.pad_multiple=32"]).model.procedure


def test_decoder_follows_the_skip_sizes_where_pooling_floors(setup):
    model = setup["model"]
    seen = []
    hooks = [layer.register_forward_post_hook(lambda layer, inputs, out: seen.append(
        (tuple(inputs[1].shape[2:]), tuple(out.shape[2:]))))
        for layer in model.decoder.sublayers() if isinstance(layer, SkipUpBlock)]
    rgb_u8, _, trimap_u8 = setup["photos"]["allodd"]
    try:
        img, trimap, size = model.preprocess(rgb_u8.astype(np.float32) / 255.0, trimap_u8)
        with paddle.no_grad():
            out = model(paddle.to_tensor(img), paddle.to_tensor(trimap))
    finally:
        for hook in hooks:
            hook.remove()
    assert img.shape[2:] == (95, 63) and size == (95, 63)  # not padded
    # deepest level first: each block's output has its skip's (pre-pool) size, pooling floored
    assert seen == [((5, 3), (5, 3)), ((11, 7), (11, 7)), ((23, 15), (23, 15)),
                    ((47, 31), (47, 31)), ((95, 63), (95, 63))]
    assert tuple(out["alpha"].shape) == (1, 1, 95, 63)


def test_predict_tool_writes_paddlesegs_alpha(setup, tmp_path):
    """tools/predict.py's default path (the model exported to Paddle Inference on the fly)."""
    from test_predict import load_tool

    work = setup["work"]
    assert load_tool("predict").main([
        "--config", CONFIG, "--model_path", str(setup["weights"]),
        "--image_path", str(work / "image"), "--trimap_path", str(work / "trimap"),
        "--save_dir", str(tmp_path), "--no_rgba", "--quiet"]) == 0
    for name, (_, _, trimap_u8) in setup["photos"].items():
        _assert_png_is_paddlesegs(_read_u8(tmp_path / f"{name}_alpha.png"),
                                  setup["expected"][name], trimap_u8, f"predict {name}")


def test_val_tool_follows_paddlesegs_evaluation_including_the_long_side_limit(setup, tmp_path):
    """tools/val.py with the config's val transforms (LoadImages, LimitLong). A limit of 96 px
    (3840 in the config; the same code) shrinks the 77x100 photo to 74x96 and leaves the 95x63
    one alone, so both paths of PaddleSeg's evaluation are compared."""
    from test_predict import load_tool

    work = setup["work"]
    config = tmp_path / "paddleseg-val.yml"
    config.write_text(yaml.safe_dump({
        "_base_": CONFIG,
        "val_dataset": {"type": "MattingDataset", "dataset_root": str(work), "file_list": "val.txt",
                        "list_format": "image", "mode": "val",
                        "transforms": [{"type": "LoadImages"},
                                       {"type": "LimitLong", "max_long": 96}]}}), encoding="utf-8")
    save_dir = tmp_path / "val"
    assert load_tool("val").main(["--config", str(config), "--model_path", str(setup["weights"]),
                                  "--save_dir", str(save_dir), "--save_results", "--quiet"]) == 0
    assert LimitLong(96).target_hw(77, 100) == (74, 96)
    for name, (rgb_u8, _, trimap_u8) in setup["photos"].items():
        saved = _read_u8(save_dir / "results" / f"{name}.png")
        if name == "allodd":  # unchanged by the limit: PaddleSeg's alpha itself
            _assert_png_is_paddlesegs(saved, setup["expected"][name], trimap_u8, f"val {name}")
            continue
        # Shrunk: PaddleSeg resizes the 8-bit photo, ppmatting the float one, and they resize the
        # alpha back with Paddle / cv2 bilinear: the same matte up to rounding, except in a band
        # of about two pixels along the unknown region's edge. There PaddleSeg interpolates the
        # network's raw output from the known side, while ppmatting's zoo call has already set
        # the known side to 0 / 1 at the reduced size (docs/dim.md); away from it they agree.
        limited = paddleseg_val_png(paddleseg_alpha(setup["state"], rgb_u8, trimap_u8, 96),
                                    trimap_u8)
        unknown = (trimap_u8 == 128).astype(np.uint8)
        interior = cv2.erode(unknown, np.ones((5, 5), np.uint8)) > 0
        parity = compare_alphas(limited / 255.0, saved / 255.0, mask=interior, min_share=0.99,
                                max_diff=3 / 255)  # 8-bit vs float photo resize, then rounding
        assert parity.ok, parity.describe()
        full = paddleseg_val_png(setup["expected"][name], trimap_u8)
        assert not np.array_equal(saved, full)  # the limit did act


def test_export_and_infer_give_paddlesegs_alpha_on_both_engines(setup, tmp_path, capsys):
    """tools/export.py's code path (Paddle Inference + ONNX), deploy.yaml, then infer.py with each
    engine: deploy.yaml says 'unpadded' and both engines write PaddleSeg's alpha."""
    from ppmatting.deploy.export import export_model
    from test_infer import infer

    pytest.importorskip("paddle2onnx", reason="the optional extra .[onnx] is not installed")
    pytest.importorskip("onnxruntime", reason="the optional extra .[onnx] is not installed")
    work, save_dir = setup["work"], tmp_path / "export"
    info = export_model(setup["model"], str(save_dir), check_shapes=[(1, 95, 63)], fmt="onnx",
                        config_path=CONFIG, weights=str(setup["weights"]), log=lambda line: None)
    assert info.pad_multiple == 1 and info.onnx_file
    with open(save_dir / "deploy.yaml", encoding="utf-8") as handle:
        deploy = yaml.safe_load(handle)["Deploy"]
    assert deploy["preprocess"]["pad_multiple"] == 1
    assert deploy["preprocess"]["procedure"].startswith("unpadded, as in PaddleSeg's")
    for backend in ("paddle", "onnxruntime"):
        out = tmp_path / backend
        assert infer.main(["--config", str(save_dir), "--image_path", str(work / "image"),
                           "--trimap_path", str(work / "trimap"), "--save_dir", str(out),
                           "--backend", backend, "--fg_estimate", "false"]) == 0
        assert f"backend {backend} (asked for):" in capsys.readouterr().out
        for name, (_, _, trimap_u8) in setup["photos"].items():
            _assert_png_is_paddlesegs(_read_u8(out / f"{name}_alpha.png"),
                                      setup["expected"][name], trimap_u8, f"{backend} {name}")


def test_long_side_limit_matches_paddlesegs_rounding():
    """LimitLong's sizes follow paddleseg.transforms.functional.resize_long:
    int(round(side * max_long / long_side)); at or below the limit nothing changes."""
    limit = LimitLong(3840)
    assert limit.target_hw(4000, 3000) == (3840, 2880)
    assert limit.target_hw(3333, 5000) == (2560, 3840)  # 2559.74 rounds up
    assert limit.target_hw(2160, 3840) == (2160, 3840)
    assert limit.target_hw(7, 5) == (7, 5)
    with pytest.raises(ValueError, match="max_long"):
        LimitLong(0)
