"""The paper's DIM in ONNX: the exportable unpooling, tools/export.py --format onnx, the ONNX
Runtime engine and deploy/python/infer.py --backend onnxruntime.

The story: a user trained the paper's DIM (here: random weights saved as a .pdparams), exports it
with ``--format onnx`` from another folder, and mattes a folder of photos with ONNX Runtime; the
files are the ones the Paddle engine writes. The unpooling tests run without the optional extra;
the rest skip (with the reason) only when paddle2onnx / onnxruntime are not installed.
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import yaml

import ppmatting  # noqa: F401 - fills the registries
from ppmatting.deploy.export import check_inputs, dygraph_alpha
from ppmatting.deploy.info import load_deploy_info
from ppmatting.deploy.parity import compare_alphas
from ppmatting.models.decoders.unpool import (portable_unpooling, unpool_like_max_pool,
                                              unpool_with_indices)
from ppmatting.models.dim import dim_vgg16
from ppmatting.utils.errors import ConfigError, PPMattingError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "dim", "dim-vgg16.yml")


# ---- the unpooling (no extra needed) ------------------------------------------------------------
@pytest.mark.parametrize("hw", [(8, 8), (9, 7), (33, 64), (77, 100), (2, 3), (3, 2)])
@pytest.mark.parametrize("ties", [False, True])
def test_unpooling_equals_max_unpool2d_bit_for_bit(hw, ties):
    """Random features; with ``ties`` rounded to integers and ReLU'd, so most windows hold equal
    values (the zeros of dead ReLUs, flat photo regions) and the tie rule decides."""
    rng = np.random.default_rng(hw[0] * 100 + hw[1] + ties)
    skip = rng.standard_normal((2, 3) + hw).astype(np.float32)
    if ties:
        skip = np.maximum(np.round(skip), 0.0)
    skip = paddle.to_tensor(skip)
    pooled, indices = F.max_pool2d(skip, 2, 2, return_mask=True)
    x = paddle.to_tensor(rng.standard_normal(pooled.shape).astype(np.float32))
    expected = unpool_with_indices(x, indices, skip).numpy()
    got = unpool_like_max_pool(x, skip).numpy()
    assert got.shape == expected.shape == (2, 3) + hw
    assert np.array_equal(got, expected)
    if ties:
        assert (skip.numpy()[:, :, 0, 0] == skip.numpy()[:, :, 0, 1]).any()  # ties did occur


def test_paper_network_gives_the_same_alpha_with_either_unpooling():
    """The ONNX graph is traced with the portable unpooling, the Paddle graph with the scatter."""
    paddle.seed(21)
    model = dim_vgg16()
    model.eval()
    assert model.decoder.portable_unpool is False
    for batch, height, width in [(1, 64, 64), (1, 50, 70)]:
        img, trimap = check_inputs(model, batch, height, width, seed=height)
        scatter = dygraph_alpha(model, img, trimap)
        with portable_unpooling(model) as switched:
            assert switched == 1 and model.decoder.portable_unpool is True
            portable = dygraph_alpha(model, img, trimap)
        assert np.array_equal(portable, scatter)
    assert model.decoder.portable_unpool is False


# ---- export, engine, infer.py (the optional extra) ----------------------------------------------
@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    pytest.importorskip("paddle2onnx", reason="the optional extra .[onnx] is not installed")
    pytest.importorskip("onnxruntime", reason="the optional extra .[onnx] is not installed")
    work = tmp_path_factory.mktemp("onnx_export")
    paddle.seed(22)
    model = dim_vgg16()
    model.eval()
    weights = work / "trained.pdparams"
    paddle.save(model.state_dict(), str(weights))
    save_dir = work / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"), "--config", CONFIG,
         "--model_path", str(weights), "--save_dir", str(save_dir), "--format", "onnx",
         "--check_sizes", "2x64x64", "50x70"],
        cwd=str(work), capture_output=True, text=True, timeout=600)
    # every test below needs the export: report the tool's own output if it failed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"model": model, "save_dir": save_dir, "proc": proc, "work": work}


def test_export_tool_writes_and_checks_the_papers_onnx(onnx_export):
    proc, save_dir = onnx_export["proc"], onnx_export["save_dir"]
    checks = [line for line in proc.stdout.splitlines() if "ONNX Runtime check" in line]
    assert len(checks) == 2 and all("within 1/255" in line for line in checks)
    assert "1x3x50x70" in proc.stdout and "2x3x64x64" in proc.stdout
    with open(save_dir / "deploy.yaml", encoding="utf-8") as handle:
        deploy = yaml.safe_load(handle)["Deploy"]
    assert deploy["onnx"] == "model.onnx" and "model.onnx" in deploy["files"]
    assert deploy["variant"] == "mmediting" and deploy["preprocess"]["pad_multiple"] == 32
    assert deploy["check"]["onnx"]["min_share_within"] >= 0.999
    assert deploy["check"]["onnx"]["max_alpha_diff"] <= 0.1
    assert not any(name.startswith(".") for name in os.listdir(save_dir))  # no temporary left
    # the Paddle graph keeps the fast scatter; only the ONNX graph has the portable unpooling
    from ppmatting.deploy.predictor import graph_ops
    assert "unpool" in graph_ops(str(save_dir / "model.json"))


def test_onnx_predictor_runs_like_the_paddle_predictor(onnx_export):
    from ppmatting.deploy.onnx_predictor import OnnxPredictor
    from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions

    model = onnx_export["model"]
    info = load_deploy_info(str(onnx_export["save_dir"]))
    engine = OnnxPredictor(info, PredictorOptions(cpu_threads=1))
    assert "via ONNX Runtime" in engine.description and "cpu threads 1" in engine.notes
    # a size the export never checked, padded to 32 as the deployed graph always is
    img, trimap = check_inputs(model, 2, 96, 64, seed=5)
    got = engine.run(img, trimap)
    assert got.shape == (2, 1, 96, 64)
    parity = compare_alphas(dygraph_alpha(model, img, trimap), got)
    assert parity.ok, parity.describe()
    # the zoo call shape and batching, against the Paddle engine on the same export
    paddle_engine = MattingPredictor(info)
    rng = np.random.default_rng(6)
    pairs = []
    for height, width in [(40, 40), (70, 45), (40, 40)]:
        trimap_u8 = np.full((height, width), 128, np.uint8)
        trimap_u8[:5] = 0
        trimap_u8[-5:] = 255
        pairs.append((rng.random((height, width, 3)).astype(np.float32), trimap_u8))
    for (image01, trimap_u8), alpha01 in zip(pairs, engine.predict_batch(pairs, batch_size=2)):
        assert alpha01.shape == trimap_u8.shape
        assert (alpha01[trimap_u8 == 0] == 0).all() and (alpha01[trimap_u8 == 255] == 1).all()
        parity = compare_alphas(paddle_engine.predict(image01, trimap_u8), alpha01)
        assert parity.ok, parity.describe()


def test_infer_onnxruntime_writes_the_paddle_backends_files(onnx_export, tmp_path, capsys):
    from test_infer import infer

    images, trimaps = tmp_path / "images", tmp_path / "trimaps"
    images.mkdir()
    trimaps.mkdir()
    rng = np.random.default_rng(7)
    for name, (height, width) in {"fox": (64, 64), "emu": (50, 70), "gnu": (64, 64)}.items():
        small = rng.random((height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
        cv2.imwrite(str(images / f"{name}.png"),
                    (cv2.resize(small, (width, height)) * 255).astype(np.uint8))
        trimap = np.zeros((height, width), np.uint8)
        trimap[height // 5:4 * height // 5, width // 5:4 * width // 5] = 128
        trimap[2 * height // 5:3 * height // 5, 2 * width // 5:3 * width // 5] = 255
        cv2.imwrite(str(trimaps / f"{name}.png"), trimap)
    outputs = {}
    for backend in ("onnxruntime", "paddle", None):  # None: the default, auto
        out = tmp_path / str(backend)
        chosen = ["--backend", backend] if backend else []
        assert infer.main(["--config", str(onnx_export["save_dir"] / "deploy.yaml"),
                           "--image_path", str(images), "--trimap_path", str(trimaps),
                           "--save_dir", str(out), "--batch_size", "2", "--cpu_threads", "1",
                           "--background", "white"] + chosen) == 0
        text = capsys.readouterr().out
        assert "saved 3 result(s)" in text
        # auto takes ONNX Runtime for this CPU fp32 job on an export with model.onnx
        engine = "Paddle Inference" if backend == "paddle" else "ONNX Runtime"
        assert f"via {engine}" in text
        if backend is None:
            assert "backend onnxruntime (model.onnx on CPU in fp32: the faster fp32 engine" in text
        else:
            assert f"backend {backend} (asked for)" in text
        outputs[backend or "auto"] = out
    for name in ("fox", "emu", "gnu"):
        files = {backend: sorted(os.listdir(folder)) for backend, folder in outputs.items()}
        assert files["onnxruntime"] == files["paddle"] == files["auto"]
        ort_alpha = cv2.imread(str(outputs["onnxruntime"] / f"{name}_alpha.png"), 0)
        paddle_alpha = cv2.imread(str(outputs["paddle"] / f"{name}_alpha.png"), 0)
        parity = compare_alphas(paddle_alpha / 255.0, ort_alpha / 255.0)
        assert parity.ok, (name, parity.describe())
        composite = cv2.imread(str(outputs["onnxruntime"] / f"{name}_composite.png"))
        assert composite.shape[:2] == ort_alpha.shape


def test_onnxruntime_refusals_are_one_line(onnx_export, tmp_path, capsys):
    from test_infer import infer

    photo, trimap = tmp_path / "a.png", tmp_path / "a_trimap.png"
    cv2.imwrite(str(photo), np.full((32, 32, 3), 90, np.uint8))
    cv2.imwrite(str(trimap), np.full((32, 32), 128, np.uint8))
    common = ["--image_path", str(photo), "--trimap_path", str(trimap),
              "--save_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--config", str(onnx_export["save_dir"]), "--backend", "onnxruntime",
                    "--precision", "bf16"] + common)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only fp32" in err[0] and "--backend paddle" in err[0]

    # an export made without --format onnx
    paddle_only = tmp_path / "paddle_only"
    paddle_only.mkdir()
    for name in ("model.json", "model.pdiparams"):
        os.link(onnx_export["save_dir"] / name, paddle_only / name)
    with open(onnx_export["save_dir"] / "deploy.yaml", encoding="utf-8") as handle:
        deploy = yaml.safe_load(handle)
    del deploy["Deploy"]["onnx"]
    (paddle_only / "deploy.yaml").write_text(yaml.safe_dump(deploy), encoding="utf-8")
    with pytest.raises(SystemExit):
        infer.main(["--config", str(paddle_only), "--backend", "onnxruntime"] + common)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ONNX file" in err[0] and "--format onnx" in err[0]
    assert not (tmp_path / "out").exists()

    # a damaged model.onnx is named, not a traceback from inside ONNX Runtime
    from ppmatting.deploy.onnx_predictor import OnnxPredictor

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.json", "model.pdiparams", "deploy.yaml"):
        os.link(onnx_export["save_dir"] / name, broken / name)
    (broken / "model.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ConfigError, match="model.onnx: ONNX Runtime cannot load it"):
        OnnxPredictor(load_deploy_info(str(broken)))
    # an ONNX file is data (no code); a handed-over one may still point its weights at files
    # outside its folder: ONNX Runtime refuses, and the error names the file
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4],
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        weight.external_data.add(key=key, value=value)
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    graph = helper.make_graph(
        [helper.make_node("Add", ["img", "w"], ["alpha"])], "escape",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("trimap", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [4])], [weight])
    (broken / "model.onnx").write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    with pytest.raises(ConfigError, match="model.onnx: ONNX Runtime cannot load it.*escapes"):
        OnnxPredictor(load_deploy_info(str(broken)))
    with pytest.raises(PPMattingError, match="on CPU"):
        from ppmatting.deploy.onnx_predictor import session_options
        from ppmatting.deploy.predictor import PredictorOptions
        session_options(PredictorOptions(device="gpu"))


def test_infer_onnxruntime_tiles_like_the_paddle_backend(onnx_export, tmp_path, capsys):
    """Tiling is engine-independent: the ONNX Runtime engine runs a photo's tiles through the
    same plan and batcher, and its tiled alpha matches the Paddle engine's tiled alpha."""
    from test_infer import infer

    height, width = 64, 200
    rng = np.random.default_rng(9)
    small = rng.random((height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    cv2.imwrite(str(tmp_path / "wide.png"),
                (cv2.resize(small, (width, height)) * 255).astype(np.uint8))
    trimap = np.zeros((height, width), np.uint8)
    trimap[8:56, 20:180] = 128
    trimap[24:40, 60:140] = 255
    cv2.imwrite(str(tmp_path / "wide_trimap.png"), trimap)
    alphas = {}
    for backend in ("onnxruntime", "paddle"):
        out = tmp_path / backend
        assert infer.main(["--config", str(onnx_export["save_dir"]), "--backend", backend,
                           "--image_path", str(tmp_path / "wide.png"),
                           "--trimap_path", str(tmp_path / "wide_trimap.png"),
                           "--save_dir", str(out), "--cpu_threads", "1", "--batch_size", "2",
                           "--tiling", "on", "--tile_size", "64", "--tile_margin", "32",
                           "--fg_estimate", "false"]) == 0
        text = capsys.readouterr().out
        assert "tile" in text.lower(), text
        alphas[backend] = cv2.imread(str(out / "wide_alpha.png"), 0) / 255.0
    assert alphas["onnxruntime"].shape == (height, width)
    assert (alphas["onnxruntime"][trimap == 255] == 1).all()
    assert (alphas["onnxruntime"][trimap == 0] == 0).all()
    parity = compare_alphas(alphas["paddle"], alphas["onnxruntime"])
    assert parity.ok, parity.describe()


def test_auto_backend_takes_onnxruntime_only_where_it_can_run_the_job(monkeypatch):
    from types import SimpleNamespace

    from ppmatting.deploy import backends
    from ppmatting.deploy.predictor import PredictorOptions

    with_onnx, paddle_only = SimpleNamespace(onnx_file="model.onnx"), SimpleNamespace(onnx_file=None)
    assert backends.choose_backend(with_onnx)[0] == "onnxruntime"
    assert backends.choose_backend(paddle_only) == (
        "paddle", "the export has no model.onnx (tools/export.py --format onnx adds it)")
    assert backends.choose_backend(with_onnx, PredictorOptions(precision="bf16")) == (
        "paddle", "bf16 runs on Paddle Inference")
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    assert backends.choose_backend(with_onnx)[1].startswith("onnxruntime is not installed")
    with pytest.raises(backends.InputError, match="--backend 'tensorrt': expected one of auto"):
        backends.create_predictor(with_onnx, None, "tensorrt")


def test_onnx_is_checked_at_the_sizes_the_deployed_graph_receives():
    from types import SimpleNamespace

    from ppmatting.deploy.export import deployed_sizes

    padded, unpadded = SimpleNamespace(pad_multiple=32), SimpleNamespace(pad_multiple=1)
    shapes = [(2, 64, 64), (1, 50, 70), (1, 300, 225), (1, 64, 64)]
    assert deployed_sizes(padded, shapes + [(1, 64, 90)]) == [(2, 64, 64), (1, 64, 96), (1, 320, 256),
                                                          (1, 64, 64)]  # 64x90 -> 64x96: once
    assert deployed_sizes(unpadded, shapes) == shapes  # PaddleSeg's graph gets odd sizes
    assert deployed_sizes(padded, [(1, 50, 70)], input_shape=(1, 3, 50, 70)) == [(1, 50, 70)]
