"""DIM-VGG16: the published network's shapes and sizes, prediction on any image size, the known
trimap regions, VGG16 ImageNet initialisation and the loader's one-line errors.

Inputs are 64-128 px: dygraph VGG16 on CPU is slow.
"""
import logging
import os
import pickle

import numpy as np
import paddle
import pytest

import ppmatting  # noqa: F401 - fills the registries
from ppmatting.cvlibs import manager
from ppmatting.cvlibs.config import Config
from ppmatting import weights
from ppmatting.models.decoders.unpool import unpool_like_max_pool
from ppmatting.models.dim import DIM, dim_vgg16, dim_vgg16_paddleseg
from ppmatting.models.backbones import VGG16, PaddleSegVGG16
from ppmatting.utils.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def count(layer):
    return sum(int(np.prod(p.shape)) for p in layer.parameters())


@pytest.fixture(scope="module")
def mm_model():
    paddle.seed(1)
    return dim_vgg16()


@pytest.fixture(scope="module")
def ps_model():
    paddle.seed(2)
    return dim_vgg16_paddleseg()


def make_inputs(height, width, seed=0):
    """A smooth-ish image and a trimap with all three regions."""
    rng = np.random.default_rng(seed)
    image01 = rng.random((height, width, 3)).astype(np.float32)
    trimap_u8 = np.full((height, width), 128, np.uint8)
    trimap_u8[: height // 3] = 0
    trimap_u8[-height // 4:] = 255
    return image01, trimap_u8


# ---- the network as published ---------------------------------------------------------------------

def test_parameter_counts_match_the_published_networks(mm_model, ps_model):
    # mmediting's published DIM checkpoints: 50 tensors, 26,276,802 values (counted from the
    # stage-3 file dim_stage3_v16_pln_1x1_1000k_comp1k_SAD-50.6_20200609_111851-647f24b6.pth).
    assert count(mm_model) == 26_276_802
    assert count(mm_model.backbone) == 14_977_920
    assert count(mm_model.decoder) == 11_222_081
    assert count(mm_model.refiner) == 76_801
    assert len(mm_model.state_dict()) == 50
    # Section 4: PaddleSeg's state dict, 61 tensors including batch-norm statistics.
    state = ps_model.state_dict()
    assert len(state) == 61
    assert sum(int(np.prod(v.shape)) for v in state.values()) == 28_372_356
    assert tuple(state["backbone.conv6.weight"].shape) == (512, 512, 3, 3)
    assert "backbone.conv1_1.bias" not in state


def test_contract_attributes_and_registries(mm_model):
    assert mm_model.is_network and mm_model.needs_trimap
    assert mm_model.input_mean == (0.485, 0.456, 0.406)
    assert mm_model.input_std == (0.229, 0.224, 0.225)
    assert mm_model.pad_multiple == 32
    assert mm_model.variant == "mmediting"
    assert tuple(mm_model.state_dict()["backbone.conv6.weight"].shape) == (512, 512, 1, 1)
    assert "DIM" in manager.MODELS
    for name in ("VGG16", "PaddleSegVGG16"):
        assert name in manager.BACKBONES
    for name in ("PlainDecoder", "PaddleSegDecoder"):
        assert name in manager.DECODERS
    for name in ("PlainRefiner", "PaddleSegRefiner"):
        assert name in manager.REFINERS


def test_configs_build_both_variants_and_stage1_has_no_refiner():
    full = Config(os.path.join(ROOT, "configs/dim/dim-vgg16.yml")).model
    assert count(full) == 26_276_802 and full.refiner.skip == "logit"
    stage1 = Config(os.path.join(ROOT, "configs/dim/dim-vgg16-stage1.yml"),
                    opts=["model.backbone.pretrained=null"]).model
    assert stage1.refiner is None and count(stage1) == 26_276_802 - 76_801
    seg = Config(os.path.join(ROOT, "configs/dim/dim-vgg16-paddleseg.yml")).model
    assert seg.variant == "paddleseg" and seg.input_mean == (0.5, 0.5, 0.5)
    alpha_skip = Config(os.path.join(ROOT, "configs/dim/dim-vgg16.yml"),
                        opts=["model.refiner.skip=alpha"]).model
    assert alpha_skip.refiner.skip == "alpha"


# ---- forward and predict ------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["mmediting", "paddleseg"])
@pytest.mark.parametrize("hw", [(64, 96), (70, 99)])
def test_forward_shapes_and_ranges(variant, hw, mm_model, ps_model):
    model = mm_model if variant == "mmediting" else ps_model
    model.eval()
    image01, trimap_u8 = make_inputs(*hw)
    img, trimap, _ = model.preprocess(image01, trimap_u8)
    # Forward on the unpadded size too: unpooling and upsampling follow the pre-pool sizes.
    for height, width in (hw, img.shape[2:]):
        with paddle.no_grad():
            out = model(paddle.to_tensor(img[:, :, :height, :width]),
                        paddle.to_tensor(trimap[:, :, :height, :width]))
        assert set(out) == {"alpha_pred", "alpha_refined", "alpha"}
        for value in out.values():
            assert tuple(value.shape) == (1, 1, height, width)
            assert float(value.min()) >= 0.0 and float(value.max()) <= 1.0
        alpha, pred = out["alpha"].numpy(), out["alpha_pred"].numpy()
        np.testing.assert_array_equal(alpha, out["alpha_refined"].numpy())  # the refined one
        assert np.abs(alpha - pred).max() > 1e-4 and pred.std() > 0  # both computed, not constant
    # the trimap is an input: another trimap, another alpha; the same one, the same alpha
    other = np.where(trimap == 128, 255.0, trimap).astype(np.float32)
    with paddle.no_grad():
        again = model(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()
        moved = model(paddle.to_tensor(img), paddle.to_tensor(other))["alpha"].numpy()
        first = model(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()
    np.testing.assert_array_equal(again, first)   # deterministic, so any change is the trimap's
    assert np.abs(moved - first).max() > 0


@pytest.mark.parametrize("variant", ["mmediting", "paddleseg"])
def test_predict_pads_crops_and_forces_known_regions(variant, mm_model, ps_model):
    model = mm_model if variant == "mmediting" else ps_model
    model.train()
    image01, trimap_u8 = make_inputs(70, 99, seed=3)
    alpha01 = model.predict(image01, trimap_u8)
    assert model.training, "predict must restore training mode"
    assert alpha01.shape == (70, 99) and alpha01.dtype == np.float32
    assert alpha01.min() >= 0.0 and alpha01.max() <= 1.0
    assert np.all(alpha01[trimap_u8 == 0] == 0.0)
    assert np.all(alpha01[trimap_u8 == 255] == 1.0)
    unknown = alpha01[trimap_u8 == 128]
    assert np.mean((unknown > 0) & (unknown < 1)) > 0.5  # the network's values, not forced ones

    # The same result by hand: the variant's published procedure (mmediting reflect-pads to
    # 96 x 128; PaddleSeg feeds 70 x 99 unpadded), forward in eval mode, crop.
    img, trimap, size = model.preprocess(image01, trimap_u8)
    padded = {"mmediting": (96, 128), "paddleseg": (70, 99)}[variant]
    assert img.shape == (1, 3) + padded and trimap.shape == (1, 1) + padded and size == (70, 99)
    if variant == "mmediting":
        np.testing.assert_array_equal(trimap[0, 0, 70:72, :99],
                                      trimap_u8[[68, 67], :].astype(np.float32))
    mean = np.asarray(model.input_mean, np.float32)
    std = np.asarray(model.input_std, np.float32)
    np.testing.assert_allclose(img[0, :, 5, 7], (image01[5, 7] - mean) / std, rtol=1e-6)
    model.eval()
    with paddle.no_grad():
        raw = model(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()[0, 0]
    expected = raw[:70, :99].copy()
    expected[trimap_u8 == 0] = 0
    expected[trimap_u8 == 255] = 1
    np.testing.assert_allclose(alpha01, expected, atol=1e-6)


def test_predict_rejects_mismatched_trimap(mm_model):
    image01, trimap_u8 = make_inputs(64, 64)
    with pytest.raises(InputError, match="trimap"):
        mm_model.predict(image01, trimap_u8[:, :60])


def test_unpooling_puts_values_back_at_the_max_positions_for_odd_sizes():
    x = paddle.to_tensor(np.random.default_rng(0).random((1, 2, 7, 9)).astype(np.float32))
    pooled, indices = paddle.nn.functional.max_pool2d(x, 2, 2, return_mask=True)
    restored = unpool_like_max_pool(pooled, x).numpy()
    assert restored.shape == (1, 2, 7, 9)
    source = x.numpy()
    for c in range(2):
        for i in range(3):
            for j in range(4):
                window = source[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                back = restored[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                assert back.max() == window.max() and np.count_nonzero(back) == 1
                assert np.argmax(back) == np.argmax(window)
    assert np.all(restored[0, :, 6, :] == 0) and np.all(restored[0, :, :, 8] == 0)


def test_refiner_skip_spaces_and_eval_clipping():
    paddle.seed(5)
    logit_model = dim_vgg16(refine_skip="logit")
    alpha_model = dim_vgg16(refine_skip="alpha")
    alpha_model.set_state_dict(logit_model.state_dict())
    img = paddle.to_tensor(np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32))
    trimap = paddle.full([1, 1, 64, 64], 128.0)
    for model in (logit_model, alpha_model):
        pred = model.refiner.refine_pred
        pred.weight.set_value(np.zeros(pred.weight.shape, np.float32))
        pred.bias.set_value(np.full([1], 2.0, np.float32))  # the correction is exactly +2
    logit_model.train()
    alpha_model.train()
    out_logit = logit_model(img, trimap)
    out_alpha = alpha_model(img, trimap)
    pred_alpha = out_logit["alpha_pred"].numpy()
    logit = np.log(pred_alpha / (1 - pred_alpha))
    # Published checkpoints: sigmoid(logit + correction).
    np.testing.assert_allclose(out_logit["alpha_refined"].numpy(), 1 / (1 + np.exp(-(logit + 2))),
                               atol=1e-5)
    # The paper: alpha + correction, raw (> 1) in training, clipped in eval.
    np.testing.assert_allclose(out_alpha["alpha_refined"].numpy(), pred_alpha + 2, atol=1e-5)
    assert float(out_alpha["alpha"].max()) > 1.0
    alpha_model.eval()
    with paddle.no_grad():
        assert float(alpha_model(img, trimap)["alpha"].min()) == 1.0


def test_stage1_network_returns_the_decoder_alpha():
    paddle.seed(6)
    model = DIM()  # defaults: VGG16 + PlainDecoder, no refiner
    model.eval()
    img = paddle.to_tensor(np.random.default_rng(6).standard_normal((1, 3, 64, 64)).astype(np.float32))
    with paddle.no_grad():
        out = model(img, paddle.full([1, 1, 64, 64], 128.0))
        logit, alpha_pred = model.decoder(*model.backbone(paddle.concat(
            [img, paddle.full([1, 1, 64, 64], 128.0 / 255.0)], axis=1)))
    assert set(out) == {"alpha_pred", "alpha"} and model.refiner is None
    np.testing.assert_array_equal(out["alpha"].numpy(), out["alpha_pred"].numpy())
    # the decoder's alpha, which is the sigmoid of its logit
    np.testing.assert_allclose(out["alpha"].numpy(), alpha_pred.numpy(), atol=1e-6)
    np.testing.assert_allclose(alpha_pred.numpy(), 1 / (1 + np.exp(-logit.numpy())), atol=1e-6)


# ---- VGG16 ImageNet initialisation ------------------------------------------------------------------

VISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
CONV_SHAPES = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256),
               (512, 256), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
OURS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
        "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
FC6_OUT = 512  # the real fc6 has 4096 outputs; 512 is all conv6 uses and keeps the file at 51 MB


def vgg_imagenet_state(torch_order, seed=0):
    """VGG16 ImageNet weights in paddle.vision / torchvision naming with a reduced fc6."""
    rng = np.random.default_rng(seed)
    state = {}
    for index, (cout, cin) in zip(VISION_CONVS, CONV_SHAPES):
        state[f"features.{index}.weight"] = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
        state[f"features.{index}.bias"] = rng.standard_normal(cout).astype(np.float32)
    fc6 = rng.standard_normal((FC6_OUT, 25088)).astype(np.float32)  # (out, in)
    state["classifier.0.weight"] = fc6 if torch_order else np.ascontiguousarray(fc6.T)
    state["classifier.0.bias"] = rng.standard_normal(FC6_OUT).astype(np.float32)
    state["classifier.6.weight"] = rng.standard_normal((4, 10)).astype(np.float32)
    return state, fc6


def test_vgg16_init_from_paddle_vision_layout(tmp_path, caplog):
    state, fc6 = vgg_imagenet_state(torch_order=False)
    path = str(tmp_path / "vgg16.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, path)
    caplog.set_level(logging.INFO, logger="ppmatting.weights")
    backbone = VGG16(pretrained=path)
    params = {k: v.numpy() for k, v in backbone.state_dict().items()}
    for index, ours in zip(VISION_CONVS, OURS):
        weight = params[f"{ours}.weight"]
        source = state[f"features.{index}.weight"]
        np.testing.assert_array_equal(weight[:, :source.shape[1]], source)
        np.testing.assert_array_equal(params[f"{ours}.bias"], state[f"features.{index}.bias"])
    assert params["conv1_1.weight"].shape == (64, 4, 3, 3)
    assert np.all(params["conv1_1.weight"][:, 3] == 0)  # trimap channel starts at zero
    # conv6 (1x1) = fc6 at the centre of the 7x7 pool-5 grid: input index c*49 + 3*7 + 3.
    for out_unit, channel in [(0, 0), (17, 300), (511, 511)]:
        assert params["conv6.weight"][out_unit, channel, 0, 0] == fc6[out_unit, channel * 49 + 24]
    np.testing.assert_array_equal(params["conv6.bias"], state["classifier.0.bias"][:512])
    log = caplog.text
    assert "trimap" in log and "classifier.0.weight" in log and "skipping classifier.6.weight" in log
    os.remove(path)


def test_vgg16_init_from_torchvision_layout_into_paddleseg_encoder(tmp_path, caplog):
    state, fc6 = vgg_imagenet_state(torch_order=True, seed=1)
    path = str(tmp_path / "vgg16_torchvision.pkl")
    with open(path, "wb") as handle:
        pickle.dump(state, handle)
    caplog.set_level(logging.INFO, logger="ppmatting.weights")
    backbone = PaddleSegVGG16(pretrained=path)
    params = {k: v.numpy() for k, v in backbone.state_dict().items()}
    assert "conv1_1.bias" not in params
    np.testing.assert_array_equal(params["conv3_2.weight"], state["features.12.weight"])
    # PaddleSeg's 3x3 conv6: fc6 reshaped to (out, 512, 7, 7), taps [2:5, 2:5].
    kernel = params["conv6.weight"]
    assert kernel.shape == (512, 512, 3, 3)
    for out_unit, channel, i, j in [(0, 0, 0, 0), (5, 77, 1, 2), (511, 511, 2, 2)]:
        assert kernel[out_unit, channel, i, j] == fc6[out_unit, channel * 49 + (2 + i) * 7 + (2 + j)]
    assert "skipping features.0.bias" in caplog.text  # no conv bias in this layout
    assert "skipping classifier.0.bias" in caplog.text
    os.remove(path)


def test_vgg16_init_through_a_url_uses_the_download_cache(tmp_path, monkeypatch):
    from local_http import Route, serve
    rng = np.random.default_rng(2)
    state = {f"features.{i}.weight": rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
             for i, (cout, cin) in zip(VISION_CONVS, CONV_SHAPES)}
    path = str(tmp_path / "vgg16_nofc.pdparams")
    paddle.save(state, path)
    monkeypatch.setenv("PPMATTING_CACHE", str(tmp_path / "cache"))
    with open(path, "rb") as handle:
        body = handle.read()
    with serve({"/models/vgg16.pdparams": Route(body)}) as server:
        url = server.base + "/models/vgg16.pdparams"
        paddle.seed(3)
        backbone = VGG16(pretrained=url)
        VGG16(pretrained=url)  # the second time from the cache
        assert server.requests == ["/models/vgg16.pdparams"]
    np.testing.assert_array_equal(backbone.conv5_3.weight.numpy(), state["features.28.weight"])
    assert np.any(backbone.conv6.weight.numpy() != 0)  # no fc6: conv6 keeps its initialisation


def test_vgg16_init_rejects_batch_norm_vgg_and_missing_convs(tmp_path):
    path = str(tmp_path / "vgg16_bn.pdparams")
    paddle.save({"features.0.weight": np.zeros((64, 3, 3, 3), np.float32),
                 "features.1.weight": np.ones(64, np.float32)}, path)
    with pytest.raises(InputError, match="batch norm"):
        VGG16(pretrained=path)
    path = str(tmp_path / "vgg16_part.pdparams")
    paddle.save({"features.0.weight": np.zeros((64, 3, 3, 3), np.float32)}, path)
    with pytest.raises(InputError, match="features.2.weight"):
        VGG16(pretrained=path)


# ---- loading errors ---------------------------------------------------------------------------------

def test_checkpoint_of_the_other_variant_is_refused(tmp_path, ps_model):
    path = str(tmp_path / "paddleseg_dim.pdparams")
    paddle.save(ps_model.state_dict(), path)
    with pytest.raises(InputError) as info:
        weights.load_weights(dim_vgg16(refiner=False), path)
    message = str(info.value)
    assert "\n" not in message and path in message
    assert "PaddleSeg" in message and "dim-vgg16-paddleseg.yml" in message
    os.remove(path)


def test_vgg_imagenet_file_given_as_dim_checkpoint_gets_a_hint(tmp_path, mm_model):
    path = str(tmp_path / "vgg.pdparams")
    paddle.save({"features.0.weight": np.zeros((64, 3, 3, 3), np.float32)}, path)
    with pytest.raises(InputError, match="backbone.pretrained"):
        weights.load_weights(mm_model, path)


def test_pickle_with_code_is_refused_before_it_runs(tmp_path, mm_model):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = str(tmp_path / "evil.pdparams")
    with open(path, "wb") as handle:
        pickle.dump({"backbone.conv1_1.weight": Exploit()}, handle)
    with pytest.raises(InputError, match="system"):
        weights.load_weights(mm_model, path)
    assert not marker.exists()


def test_broken_pth_is_a_one_line_error_without_torch(tmp_path, monkeypatch, mm_model):
    path = tmp_path / "dim.pth"
    path.write_bytes(b"PK\x03\x04 not really")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(InputError, match="dim.pth: not a readable zip archive") as info:
        weights.load_weights(mm_model, str(path))
    assert "\n" not in str(info.value)


def test_missing_file_is_a_one_line_error(mm_model):
    with pytest.raises(InputError, match="not found"):
        weights.load_weights(mm_model, "/nonexistent/dim.pdparams")


# ---- export with dynamic height and width -----------------------------------------------------------

class AlphaOnly(paddle.nn.Layer):
    """Export wrapper: one output tensor (a dict output's order is not part of the saved model)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, img, trimap):
        return self.model(img, trimap)["alpha"]


@pytest.mark.parametrize("variant,onednn", [("mmediting", False), ("paddleseg", True)])
def test_export_with_dynamic_size_matches_dygraph(variant, onednn, tmp_path):
    from paddle import inference
    from paddle.static import InputSpec

    paddle.seed(7)
    model = dim_vgg16() if variant == "mmediting" else dim_vgg16_paddleseg()
    model.eval()
    static = paddle.jit.to_static(
        AlphaOnly(model), full_graph=True,
        input_spec=[InputSpec([None, 3, None, None], "float32", "img"),
                    InputSpec([None, 1, None, None], "float32", "trimap")])
    prefix = str(tmp_path / "model")
    paddle.jit.save(static, prefix)
    assert os.path.exists(prefix + ".json") and os.path.exists(prefix + ".pdiparams")

    config = inference.Config(prefix + ".json", prefix + ".pdiparams")
    config.disable_gpu()
    if onednn:
        config.enable_mkldnn()
        # Without this the bilinear resize fails under oneDNN: "ConvertPirAttribute2RuntimeAttribute
        # not support [pir::ArrayAttribute<pir::DoubleAttribute>]" (Paddle 3.3).
        config.delete_pass("onednn_placement_pass")
    else:
        config.disable_mkldnn()
    predictor = inference.create_predictor(config)
    for hw in [(64, 96), (70, 99)]:
        image01, trimap_u8 = make_inputs(*hw, seed=hw[1])
        img, trimap, _ = model.preprocess(image01, trimap_u8)
        img, trimap = img[:, :, :hw[0], :hw[1]], trimap[:, :, :hw[0], :hw[1]]  # odd sizes too
        for name, array in zip(predictor.get_input_names(), (img, trimap)):
            handle = predictor.get_input_handle(name)
            handle.reshape(array.shape)
            handle.copy_from_cpu(np.ascontiguousarray(array))
        predictor.run()
        exported = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        with paddle.no_grad():
            expected = model(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()
        assert exported.shape == (1, 1) + hw
        np.testing.assert_allclose(exported, expected, atol=1e-4)
