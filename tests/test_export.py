"""tools/export.py: a DIM exported to Paddle Inference gives the dynamic graph's alpha.

The story: train (here: random weights saved as a .pdparams), export with the tool from another
working directory, read deploy.yaml, run the exported graph with a predictor at several sizes, and
compare with the dynamic-graph model. Both DIM variants; sizes 50-96 px to stay quick.
"""
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

import ppmatting  # noqa: F401
from ppmatting.cvlibs import manager
from ppmatting.core.loader import not_a_network_message
from ppmatting.deploy.export import check_inputs, dygraph_alpha, export_model
from ppmatting.deploy.info import load_deploy_info
from ppmatting.deploy.batching import ShapeBatcher
from ppmatting.deploy.predictor import (MattingPredictor, PredictorOptions, build_config,
                                        tensorrt_shape_ranges)
from ppmatting.models.dim import dim_vgg16, dim_vgg16_paddleseg
from ppmatting.utils.errors import ConfigError, PPMattingError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    "mmediting": (dim_vgg16, "configs/dim/dim-vgg16.yml"),
    "paddleseg": (dim_vgg16_paddleseg, "configs/dim/dim-vgg16-paddleseg.yml"),
}
CHECK_SIZES = ["64x64", "2x64x96", "50x70"]  # one not a multiple of 32
SIZES = [(1, 64, 64), (2, 64, 96), (1, 50, 70), (1, 96, 45)]


def _trained_like(variant, seed):
    """A network with random weights plus BN statistics that are not the identity (as after
    training), so that the BN folding done by the predictor is exercised."""
    paddle.seed(seed)
    model = VARIANTS[variant][0]()
    rng = np.random.default_rng(seed)
    for name, tensor in model.state_dict().items():
        if name.endswith("_mean"):
            tensor.set_value(rng.normal(0, 0.1, tensor.shape).astype("float32"))
        elif name.endswith("_variance"):
            tensor.set_value(rng.uniform(0.5, 2.0, tensor.shape).astype("float32"))
    model.eval()
    return model


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def exported(request, tmp_path_factory):
    variant = request.param
    work = tmp_path_factory.mktemp(f"export_{variant}")
    model = _trained_like(variant, seed=3)
    weights = work / "trained.pdparams"
    paddle.save(model.state_dict(), str(weights))
    save_dir = work / "out"
    # run the tool as a user would, from an unrelated working directory
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"),
         "--config", os.path.join(ROOT, VARIANTS[variant][1]), "--model_path", str(weights),
         "--save_dir", str(save_dir), "--check_sizes", *CHECK_SIZES],
        cwd=str(work), capture_output=True, text=True, timeout=600)
    return {"variant": variant, "model": model, "save_dir": save_dir, "proc": proc}


def test_export_tool_succeeds_and_reports_the_difference(exported):
    proc = exported["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "largest alpha difference" in line]
    assert lines, proc.stdout
    reported = float(re.search(r"dynamic graph: ([0-9.e+-]+);", lines[0]).group(1))
    assert 0 <= reported <= 1e-4
    share = float(re.search(r"/255: ([0-9.]+)%", lines[0]).group(1))
    assert share >= 99.9
    # one check line per size, the odd size included
    assert "1x3x50x70" in proc.stdout and "2x3x64x96" in proc.stdout


def test_deploy_yaml_names_the_files_that_exist(exported):
    save_dir = exported["save_dir"]
    with open(save_dir / "deploy.yaml", encoding="utf-8") as handle:
        deploy = yaml.safe_load(handle)["Deploy"]
    assert deploy["model"] == "model.json" and deploy["params"] == "model.pdiparams"
    assert deploy["files"] and all((save_dir / name).is_file() for name in deploy["files"])
    assert not (save_dir / "model.pdmodel").exists()  # Paddle 3 writes no .pdmodel
    inputs = {entry["name"]: entry for entry in deploy["inputs"]}
    assert inputs["img"]["shape"] == [-1, 3, -1, -1]
    assert inputs["trimap"]["shape"] == [-1, 1, -1, -1]
    assert "128" in inputs["trimap"]["meaning"]
    model = exported["model"]
    assert deploy["model_name"] == "DIM" and deploy["variant"] == exported["variant"]
    assert deploy["preprocess"]["mean"] == pytest.approx(list(model.input_mean))
    assert deploy["preprocess"]["std"] == pytest.approx(list(model.input_std))
    # each variant's published procedure: mmediting pads to 32, PaddleSeg feeds the image unpadded
    assert deploy["preprocess"]["pad_multiple"] == {"mmediting": 32, "paddleseg": 1}[
        exported["variant"]]
    assert deploy["preprocess"]["procedure"] == model.procedure
    assert deploy["check"]["max_alpha_diff"] <= 1e-4
    info = load_deploy_info(str(save_dir))
    assert info.output_name and os.path.isfile(info.model_file)


def test_predictor_matches_dygraph_at_several_sizes(exported):
    model = exported["model"]
    predictor = MattingPredictor(load_deploy_info(str(exported["save_dir"])))
    assert predictor.predictor.get_input_names() == ["img", "trimap"]
    for index, (batch, height, width) in enumerate(SIZES):
        img, trimap = check_inputs(model, batch, height, width, seed=10 + index)
        expected = dygraph_alpha(model, img, trimap)
        got = predictor.run(img, trimap)
        assert got.shape == (batch, 1, height, width)
        assert np.abs(got - expected).max() <= 1e-4, (batch, height, width)
    # the zoo call shape, with padding to 32 and crop back, agrees with DIM.predict
    rng = np.random.default_rng(0)
    image01 = rng.random((45, 70, 3)).astype(np.float32)
    trimap_u8 = np.zeros((45, 70), np.uint8)
    trimap_u8[10:35, 15:55] = 128
    trimap_u8[18:27, 28:42] = 255
    alpha01 = predictor.predict(image01, trimap_u8)
    assert alpha01.shape == (45, 70)
    assert np.abs(alpha01 - model.predict(image01, trimap_u8)).max() <= 1e-4
    assert (alpha01[trimap_u8 == 255] == 1).all() and (alpha01[trimap_u8 == 0] == 0).all()


def test_predict_batch_equals_one_by_one(exported):
    predictor = MattingPredictor(load_deploy_info(str(exported["save_dir"])))
    rng = np.random.default_rng(1)
    pairs = []
    for height, width in [(40, 40), (64, 50), (33, 60), (40, 40), (64, 64)]:
        trimap = np.full((height, width), 128, np.uint8)
        trimap[:4] = 0
        pairs.append((rng.random((height, width, 3)).astype(np.float32), trimap))
    batched = predictor.predict_batch(pairs, batch_size=2)
    for (image01, trimap), alpha in zip(pairs, batched):
        assert alpha.shape == trimap.shape
        assert np.abs(alpha - predictor.predict(image01, trimap)).max() <= 1e-5


def test_onednn_placement_avoided_only_where_it_breaks(exported):
    config, notes = build_config(load_deploy_info(str(exported["save_dir"])), PredictorOptions())
    text = "; ".join(notes)
    assert "oneDNN on" in text
    # PaddleSeg's decoder resizes bilinearly: the placement pass must be off for it
    assert ("placement pass off" in text) == (exported["variant"] == "paddleseg")


def test_failed_parity_writes_no_deploy_yaml(tmp_path):
    model = _trained_like("mmediting", seed=5)
    exact = {"within": 0.0, "min_share": 1.0, "max_diff": 0.0,
             "max_mean": 0.0}  # float rounding already fails
    with pytest.raises(PPMattingError, match=r"differs from the dynamic graph at 1x3x32x32: .*"
                                             r"pixels within 0/255 \(need 100.00%\)"):
        export_model(model, str(tmp_path), check_shapes=[(1, 32, 32)], criterion=exact,
                     log=lambda line: None)
    assert (tmp_path / "model.json").is_file()
    assert not (tmp_path / "deploy.yaml").exists()


def test_fixed_input_shape_export(tmp_path):
    model = _trained_like("paddleseg", seed=6)
    info = export_model(model, str(tmp_path), input_shape=(1, 3, 64, 64), log=lambda line: None)
    assert info.input_shapes["img"] == [1, 3, 64, 64]
    assert info.input_shapes["trimap"] == [1, 1, 64, 64]
    assert info.check["sizes"] == [[1, 64, 64]]
    predictor = MattingPredictor(info)
    img, trimap = check_inputs(model, 1, 96, 96)
    with pytest.raises(PPMattingError, match="exported for 64x64"):
        predictor.run(img, trimap)
    # a batch of 3 on a batch-1 graph runs in chunks
    img, trimap = check_inputs(model, 3, 64, 64, seed=4)
    got = predictor.run(img, trimap)
    assert got.shape == (3, 1, 64, 64)
    assert np.abs(got - dygraph_alpha(model, img, trimap)).max() <= 1e-4


def test_classical_model_is_not_exported(tmp_path):
    classical = [name for name, cls in manager.MODELS.components_dict.items()
                 if getattr(cls, "is_network", True) is False]
    assert classical, "no classical model registered"
    config = tmp_path / "classical.yml"
    config.write_text(f"model:\n  type: {classical[0]}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export.py"),
                           "--config", str(config), "--save_dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "not a neural network" in message
    assert classical[0] in message and "tools/predict.py" in message
    assert not (tmp_path / "out" / "model.json").exists()


def test_not_a_network_message_names_the_config():
    class Fake:
        is_network = False

    assert "cfg.yml: Fake is a classical matting method" in not_a_network_message(Fake(), "cfg.yml")
    with pytest.raises(PPMattingError, match="not a neural network"):
        export_model(Fake(), "unused", config_path="cfg.yml")


def test_deploy_yaml_naming_a_missing_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.pdiparams").write_bytes(b"")
    (tmp_path / "deploy.yaml").write_text(
        "Deploy:\n  model: model.pdmodel\n  params: model.pdiparams\n"
        "  preprocess: {mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], pad_multiple: 32}\n"
        "  inputs: [{name: img, shape: [-1, 3, -1, -1]}, {name: trimap, shape: [-1, 1, -1, -1]}]\n",
        encoding="utf-8")
    with pytest.raises(ConfigError, match="names model.pdmodel, which is not in"):
        load_deploy_info(str(tmp_path / "deploy.yaml"))


def test_tensorrt_ranges_cover_image_and_trimap():
    options = PredictorOptions(device="gpu", use_trt=True, trt_min_hw=(64, 96),
                               trt_opt_hw=(512, 512), trt_max_hw=(1024, 2048), trt_max_batch=4)
    ranges = tensorrt_shape_ranges(options)
    assert sorted(ranges) == ["img", "trimap"]
    assert ranges["img"] == ([1, 3, 64, 96], [1, 3, 512, 512], [4, 3, 1024, 2048])
    assert ranges["trimap"] == ([1, 1, 64, 96], [1, 1, 512, 512], [4, 1, 1024, 2048])
    fixed = tensorrt_shape_ranges(options, fixed_batch=2, fixed_hw=(320, 320))
    assert fixed["trimap"] == ([2, 1, 320, 320],) * 3


def test_unsupported_settings_fail_with_a_reason(exported):
    info = load_deploy_info(str(exported["save_dir"]))
    with pytest.raises(PPMattingError, match="no fp16 CPU kernels"):
        build_config(info, PredictorOptions(precision="fp16"))
    with pytest.raises(PPMattingError, match="quantised"):
        build_config(info, PredictorOptions(precision="int8"))
    with pytest.raises(PPMattingError, match="needs --device gpu"):
        build_config(info, PredictorOptions(use_trt=True))
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(PPMattingError, match="no CUDA"):
            build_config(info, PredictorOptions(device="gpu"))


def test_shape_batcher_runs_full_batches_of_one_shape_and_keeps_partial_ones():
    calls = []

    def run(img, trimap):
        calls.append(img.shape)
        return img[:, :1] * 2 + trimap  # a value per item, to check every result's row

    batcher = ShapeBatcher(run, batch_size=2)
    shapes = [(64, 64), (96, 64), (64, 64), (64, 64), (96, 64)]
    finished = []
    for index, (height, width) in enumerate(shapes):
        img = np.full((1, 3, height, width), index, np.float32)
        finished += batcher.add(index, img, np.zeros((1, 1, height, width), np.float32))
    assert len(batcher) == 1
    finished += batcher.flush()
    assert calls == [(2, 3, 64, 64), (2, 3, 96, 64), (1, 3, 64, 64)]
    assert [key for key, _ in finished] == [0, 2, 1, 4, 3]
    for key, alpha in finished:
        assert alpha.shape == (1, 1) + shapes[key] and (alpha == 2 * key).all()


@pytest.mark.parametrize("variant", ["paddleseg", "mmediting"])
def test_onnx_export_of_both_variants(variant, tmp_path):
    """Both variants convert (the paper's decoder unpools with plain operators) and ONNX Runtime
    matches the dynamic graph by the tie-robust criterion; deploy.yaml names the file and the
    result. tests/test_onnx.py covers the engine, infer.py and the unpooling itself."""
    pytest.importorskip("paddle2onnx", reason="the optional extra .[onnx] is not installed")
    pytest.importorskip("onnxruntime", reason="the optional extra .[onnx] is not installed")
    model = _trained_like(variant, seed=7)
    lines = []
    info = export_model(model, str(tmp_path), check_shapes=[(1, 64, 64), (1, 50, 70)],
                        fmt="onnx", log=lines.append)
    assert info.onnx_file and os.path.isfile(info.onnx_file)
    assert "model.onnx" in info.files
    assert info.check["onnx"]["min_share_within"] >= 0.999
    assert info.check["onnx"]["max_alpha_diff"] <= 0.1
    assert info.check["onnx"]["criterion"]["min_share"] == pytest.approx(0.95)
    assert info.check["onnx"]["criterion"]["max_mean"] == pytest.approx(0.002)
    assert sum("ONNX Runtime check" in line for line in lines) == 2
