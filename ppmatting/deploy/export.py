"""Exporting a DIM to a Paddle Inference static graph (and ONNX), and checking the result.

* :func:`export_static` writes ``model.json`` + ``model.pdiparams`` (Paddle 3's PIR format) with
  named inputs ``img`` (N x 3 x H x W) and ``trimap`` (N x 1 x H x W), batch, height and width
  dynamic unless a fixed ``input_shape`` is asked for.
* :func:`check_parity` runs the saved graph through a :class:`MattingPredictor` and the
  dynamic-graph model on the same inputs and returns the largest alpha difference per size.
* :func:`export_onnx` / :func:`onnx_parity` convert the graph with paddle2onnx and check ONNX
  Runtime against the dynamic graph with the tie-robust criterion of :mod:`ppmatting.deploy.parity`.
* :func:`fast_predictor` exports a model to a temporary folder and returns a predictor over it:
  the fast path of ``tools/predict.py``.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from ppmatting.deploy.info import (DEPLOY_FILE, build_deploy_dict, load_deploy_info,
                                   write_deploy_yaml)
from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions, graph_ops
from ppmatting.core.loader import not_a_network_message
from ppmatting.utils.errors import InputError, PPMattingError

MODEL_PREFIX = "model"
PADDLE_FILES = ("model.json", "model.pdiparams")
ONNX_FILE = "model.onnx"
DEFAULT_TOLERANCE = 1e-4
# Three check sizes (N, H, W): a batch of two, and one size that is not a multiple of 32 (the
# graph is fed unpadded there, so the exported unpool / resize must follow the real size).
DEFAULT_CHECK_SHAPES = ((1, 128, 128), (2, 96, 160), (1, 100, 75))
ONNX_OPSET = 13


def _alpha_only(model):
    """A layer whose forward returns only the model's final alpha (the one graph output)."""
    import paddle

    class AlphaOutput(paddle.nn.Layer):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, img, trimap):
            return self.net(img, trimap)["alpha"]

    return AlphaOutput(model)


def input_specs(input_shape=None):
    """InputSpecs for ``img`` and ``trimap``; ``input_shape`` = (N, C, H, W) fixes them."""
    from paddle.static import InputSpec

    if input_shape is None:
        batch, height, width = None, None, None
    else:
        batch, channels, height, width = (int(v) for v in input_shape)
        if channels != 3:
            raise InputError(f"--input_shape: C must be 3 (the RGB image; the trimap is the "
                             f"second input), got {channels}")
        if min(batch, height, width) < 1:
            raise InputError(f"--input_shape: N, H and W must be positive, got {input_shape}")
    return [InputSpec([batch, 3, height, width], "float32", "img"),
            InputSpec([batch, 1, height, width], "float32", "trimap")]


def export_static(model, save_dir, input_shape=None):
    """Write the static graph of ``model`` (a DIM, put in eval mode) to ``save_dir``.

    Returns the names of the files Paddle wrote (``model.json``, ``model.pdiparams``). Raises
    :class:`PPMattingError` when the expected files did not appear (a Paddle that writes a
    different format).
    """
    import paddle

    os.makedirs(save_dir, exist_ok=True)
    for name in PADDLE_FILES:  # so that their presence afterwards proves this save wrote them
        if os.path.exists(os.path.join(save_dir, name)):
            os.unlink(os.path.join(save_dir, name))
    model.eval()
    wrapper = _alpha_only(model)
    wrapper.eval()
    static = paddle.jit.to_static(wrapper, input_spec=input_specs(input_shape), full_graph=True)
    paddle.jit.save(static, os.path.join(save_dir, MODEL_PREFIX))
    missing = [name for name in PADDLE_FILES if not os.path.isfile(os.path.join(save_dir, name))]
    if missing:
        found = sorted(n for n in os.listdir(save_dir) if n.startswith(MODEL_PREFIX + "."))
        raise PPMattingError(f"{save_dir}: paddle.jit.save wrote {found or 'nothing'}, not "
                             f"{', '.join(missing)} (Paddle {paddle.__version__})")
    return list(PADDLE_FILES)


# ---- inputs for the checks -----------------------------------------------------------------------
def check_inputs(model, batch, height, width, seed=0):
    """Realistic network inputs: a smooth random photo normalised with the model's statistics and
    a trimap with a foreground blob, an unknown band around it and background elsewhere.
    Returns (img float32 N x 3 x H x W, trimap float32 N x 1 x H x W)."""
    import cv2

    rng = np.random.default_rng(seed)
    mean = np.asarray(model.input_mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(model.input_std, np.float32).reshape(1, 3, 1, 1)
    images, trimaps = [], []
    for _ in range(batch):
        small = rng.random((max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
        photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        photo = np.clip(photo + rng.normal(0, 0.03, photo.shape), 0, 1).astype(np.float32)
        yy, xx = np.mgrid[:height, :width]
        cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
        radius = np.hypot((yy - cy) / height, (xx - cx) / width)
        trimap = np.where(radius < 0.2, 255, np.where(radius < 0.32, 128, 0)).astype(np.float32)
        images.append(photo.transpose(2, 0, 1))
        trimaps.append(trimap[None])
    img = (np.stack(images) - mean) / std
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(np.stack(trimaps))


def dygraph_alpha(model, img, trimap):
    """The dynamic-graph model's final alpha for network inputs (numpy in, numpy out)."""
    import paddle

    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()


def alpha_pairs(model, run_fn, shapes, seed=0):
    """For each (N, H, W) in ``shapes``: ``((N, H, W), alpha_dygraph, alpha_exported)`` on the
    same :func:`check_inputs`. ``run_fn(img, trimap) -> alpha`` is the exported graph (a
    predictor's or ONNX Runtime's ``run``); a wrong output shape is a :class:`PPMattingError`."""
    for index, (batch, height, width) in enumerate(shapes):
        img, trimap = check_inputs(model, batch, height, width, seed=seed + index)
        expected = dygraph_alpha(model, img, trimap)
        got = np.asarray(run_fn(img, trimap))
        if got.shape != expected.shape:
            raise PPMattingError(f"exported graph returned shape {got.shape} for input "
                                 f"{img.shape}; the dynamic graph returns {expected.shape}")
        yield (batch, height, width), expected, got


def check_parity(model, run_fn, shapes=DEFAULT_CHECK_SHAPES, seed=0):
    """Largest |alpha_static - alpha_dygraph| for each (N, H, W) in ``shapes``.

    ``run_fn(img, trimap) -> alpha`` is the exported graph (a predictor's ``run``). Returns
    ``[((N, H, W), max_diff), ...]``.
    """
    return [(shape, float(np.abs(got - expected).max()))
            for shape, expected, got in alpha_pairs(model, run_fn, shapes, seed)]


def parse_check_sizes(texts, input_shape=None):
    """``["128x128", "2x96x160"]`` (HxW or NxHxW) -> [(N, H, W), ...]; with a fixed
    ``input_shape`` the only valid size is that one."""
    if input_shape is not None:
        return [(int(input_shape[0]), int(input_shape[2]), int(input_shape[3]))]
    if not texts:
        return list(DEFAULT_CHECK_SHAPES)
    shapes = []
    for text in texts:
        try:
            parts = [int(v) for v in str(text).lower().split("x")]
        except ValueError:
            parts = []
        if len(parts) == 2:
            parts = [1] + parts
        if len(parts) != 3 or min(parts) < 1:
            raise InputError(f"--check_sizes '{text}': expected HxW or NxHxW, e.g. 100x75")
        shapes.append(tuple(parts))
    return shapes


# ---- ONNX ----------------------------------------------------------------------------------------
# optimize_tool="onnxoptimizer": paddle2onnx's default (Polygraphy's constant folding) takes ~20 s
# on the paper's graph and ~1 s with onnxoptimizer; ONNX Runtime runs both files equally fast.
_P2O_SCRIPT = ("import sys, paddle2onnx\n"
               "paddle2onnx.export(sys.argv[1], sys.argv[2], save_file=sys.argv[3], "
               "opset_version=int(sys.argv[4]), enable_onnx_checker=True, "
               "optimize_tool='onnxoptimizer')\n")


def export_onnx(save_dir, opset=ONNX_OPSET, graph_dir=None):
    """Convert ``graph_dir/model.json`` (default: ``save_dir``'s) to ``save_dir/model.onnx`` with
    paddle2onnx.

    paddle2onnx aborts the whole process (SIGABRT) on an operator it cannot convert, so it runs in
    a child process, and the file appears only when the conversion finished. Returns the file name
    written. Raises :class:`PPMattingError` with the reason when it fails. Use :func:`write_onnx`
    for a model: the paper's DIM needs its ONNX graph traced with portable unpooling.
    """
    import importlib.util

    if importlib.util.find_spec("paddle2onnx") is None:
        raise PPMattingError("--format onnx needs paddle2onnx and onnxruntime: "
                             "pip install paddle2onnx==2.1.0 onnxruntime==1.32.0 "
                             "(or the project's extra: pip install -e .[onnx])")
    graph_dir = graph_dir or save_dir
    model_file = os.path.join(graph_dir, "model.json")
    params_file = os.path.join(graph_dir, "model.pdiparams")
    target = os.path.join(save_dir, ONNX_FILE)
    partial = os.path.join(save_dir, ".tmp-" + ONNX_FILE)
    if os.path.exists(target):  # an earlier export's file must not pass for this one's
        os.unlink(target)
    proc = subprocess.run([sys.executable, "-c", _P2O_SCRIPT, model_file, params_file, partial,
                           str(int(opset))], capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(partial):
        if os.path.exists(partial):
            os.unlink(partial)
        detail = [line for line in (proc.stderr + proc.stdout).splitlines()
                  if "ERROR" in line or "not supported" in line.lower()]
        raise PPMattingError(f"{model_file}: paddle2onnx failed (exit {proc.returncode})"
                             + (f": {detail[-1].strip()}" if detail else "")
                             + f"; the Paddle Inference export in {save_dir} is unaffected")
    os.replace(partial, target)
    return ONNX_FILE


def write_onnx(model, save_dir, input_shape=None, opset=ONNX_OPSET):
    """``save_dir/model.onnx`` for ``model``; returns the file name.

    The paper's decoder unpools with Paddle's ``max_unpool2d`` and the pool indices, which
    paddle2onnx cannot convert, so its ONNX graph is traced with the portable unpooling
    (``ppmatting.models.decoders.unpool``: the same tensor from operators every exporter knows)
    into a temporary folder beside the export and converted from there; the Paddle graph keeps
    the faster scatter. PaddleSeg's variant does not unpool: its Paddle graph in ``save_dir`` is
    converted as it is.
    """
    from ppmatting.models.decoders.unpool import portable_unpooling

    with portable_unpooling(model) as switched:
        if not switched and os.path.isfile(os.path.join(save_dir, "model.json")):
            return export_onnx(save_dir, opset)
        graph_dir = tempfile.mkdtemp(prefix=".onnx-graph-", dir=save_dir)
        try:
            export_static(model, graph_dir, input_shape)
            return export_onnx(save_dir, opset, graph_dir=graph_dir)
        finally:
            shutil.rmtree(graph_dir, ignore_errors=True)


def onnx_runner(onnx_file, options=None):
    """``run(img, trimap) -> alpha`` through ONNX Runtime on CPU (the session
    :class:`~ppmatting.deploy.onnx_predictor.OnnxPredictor` uses)."""
    from ppmatting.deploy.onnx_predictor import create_session

    session, _ = create_session(onnx_file, options)
    output = session.get_outputs()[0].name

    def run(img, trimap):
        return session.run([output], {"img": np.ascontiguousarray(img, np.float32),
                                      "trimap": np.ascontiguousarray(trimap, np.float32)})[0]

    return run


def onnx_parity(model, run_fn, shapes, seed=0):
    """ONNX Runtime against the dynamic graph with the tie-robust criterion
    (:func:`ppmatting.deploy.parity.compare_alphas` over every output pixel, default thresholds).

    A plain max-difference test fails the paper's DIM for no real reason: ORT's convolutions round
    differently from Paddle's, so a 2x2 window whose two largest values are a rounding step apart
    can pick the other maximum, and the pixels that unpooled value reaches move by up to a few
    hundredths while all others agree to ~1e-6. Returns ``[((N, H, W), Parity), ...]``.
    """
    from ppmatting.deploy.parity import compare_alphas

    return [(shape, compare_alphas(expected, got))
            for shape, expected, got in alpha_pairs(model, run_fn, shapes, seed)]


def _export_and_check_onnx(model, save_dir, shapes, options, log, input_shape=None):
    """Write ``model.onnx`` beside the Paddle export and check it; returns (file name, summary
    for deploy.yaml's ``check``). On a failed check the file is removed and
    :class:`PPMattingError` says by how much it differs."""
    onnx_file = write_onnx(model, save_dir, input_shape)
    path = os.path.join(save_dir, onnx_file)
    try:
        results = onnx_parity(model, onnx_runner(path, options), shapes)
    except Exception:
        os.unlink(path)
        raise
    for (batch, height, width), parity in results:
        log(f"  ONNX Runtime check {batch}x3x{height}x{width}: {parity.describe()}")
    failed = [(shape, parity) for shape, parity in results if not parity.ok]
    if failed:
        os.unlink(path)
        (batch, height, width), parity = failed[0]
        raise PPMattingError(f"{path}: ONNX Runtime differs from the dynamic graph at "
                             f"{batch}x3x{height}x{width}: {parity.describe()}; removed")
    worst_share = min(parity.share_within for _, parity in results)
    worst_max = max(parity.max_diff for _, parity in results)
    log(f"wrote {path}; ONNX Runtime (CPU) matches the dynamic graph: at least "
        f"{worst_share:.4%} of pixels within 1/255, largest difference {worst_max:.3g}")
    summary = {"onnx_max_alpha_diff": worst_max, "onnx_min_share_within": worst_share,
               "onnx_criterion": {key: value for key, value in results[0][1].as_dict().items()
                                  if key in ("within", "min_share", "max_allowed")}}
    return onnx_file, summary


# ---- the whole export ----------------------------------------------------------------------------
def export_model(model, save_dir, input_shape=None, check_shapes=None,
                 tolerance=DEFAULT_TOLERANCE, fmt="paddle", config_path=None, weights=None,
                 options=None, log=print):
    """Export, check against the dynamic graph, and write deploy.yaml.

    ``fmt`` is ``paddle`` or ``onnx`` (ONNX is converted from the Paddle export, so both are
    written). ``log`` receives progress lines. Returns the loaded
    :class:`~ppmatting.deploy.info.DeployInfo`. Raises :class:`PPMattingError` when the largest
    alpha difference exceeds ``tolerance`` (deploy.yaml is then not written, so a failed export
    cannot be deployed by mistake).
    """
    if not getattr(model, "is_network", False):
        raise PPMattingError(not_a_network_message(model, config_path or "the config"))
    if fmt not in ("paddle", "onnx"):
        raise InputError(f"--format '{fmt}': expected paddle or onnx")
    shapes = [tuple(s) for s in (check_shapes or parse_check_sizes(None, input_shape))]
    stale = os.path.join(save_dir, DEPLOY_FILE)
    if os.path.exists(stale):
        os.unlink(stale)  # a deploy.yaml must never describe files from an earlier export
    files = export_static(model, save_dir, input_shape)
    log(f"wrote {', '.join(os.path.join(save_dir, f) for f in files)}")

    # load exactly what was written, through the same predictor infer.py builds
    probe = build_deploy_dict(model, files, output_name=None, input_shape=input_shape,
                              config_path=config_path, weights=weights)
    write_deploy_yaml(save_dir, probe)
    try:
        predictor = MattingPredictor(load_deploy_info(save_dir), options or PredictorOptions())
        log(f"predictor: {', '.join(predictor.notes)}")
        results = check_parity(model, predictor.run, shapes)
    finally:
        os.unlink(stale)
    worst = max(diff for _, diff in results)
    for (batch, height, width), diff in results:
        log(f"  check {batch}x3x{height}x{width}: max |alpha_static - alpha_dygraph| = {diff:.3g}")
    log(f"largest alpha difference from the dynamic graph: {worst:.3g} (tolerance {tolerance:g})")
    if not worst <= tolerance:
        raise PPMattingError(f"{save_dir}: the exported graph differs from the dynamic graph by "
                             f"{worst:.3g} > {tolerance:g}; deploy.yaml not written")
    check = {"max_alpha_diff": worst, "tolerance": float(tolerance),
             "sizes": [list(s) for s, _ in results], "predictor": list(predictor.notes)}
    common = dict(output_name=predictor.output_name, input_shape=input_shape,
                  config_path=config_path, weights=weights)
    # the Paddle export is complete and checked: describe it now, so that a failing ONNX
    # conversion below leaves a deployable folder
    path = write_deploy_yaml(save_dir, build_deploy_dict(model, files, check=check, **common))
    log(f"wrote {path}")

    if fmt == "onnx":
        # ORT is checked in fp32 with the threads asked for (precision options are Paddle's)
        ort_options = PredictorOptions(cpu_threads=getattr(options, "cpu_threads", None))
        onnx_file, onnx_check = _export_and_check_onnx(model, save_dir, shapes, ort_options, log,
                                                       input_shape)
        check.update(onnx_check)
        path = write_deploy_yaml(save_dir, build_deploy_dict(
            model, files + [onnx_file], onnx_file=onnx_file, check=check, **common))
        log(f"updated {path} (adds {onnx_file})")
    return load_deploy_info(path)


def fast_predictor(model, options=None, check_shape=(1, 64, 64), tolerance=DEFAULT_TOLERANCE):
    """A :class:`MattingPredictor` for an in-memory DIM: exports it to a temporary folder, builds
    the predictor (which reads the files once), checks one small size against the dynamic graph,
    and removes the folder. ``predictor.predict(image01, trimap_u8)`` then replaces
    ``model.predict`` at several times the speed on CPU.
    """
    folder = tempfile.mkdtemp(prefix="ppmatting-export-")
    try:
        files = export_static(model, folder)
        write_deploy_yaml(folder, build_deploy_dict(model, files, output_name=None))
        predictor = MattingPredictor(load_deploy_info(folder), options or PredictorOptions())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if check_shape:
        [(_, diff)] = check_parity(model, predictor.run, [check_shape])
        if not diff <= tolerance:
            raise PPMattingError(f"the exported predictor differs from the dynamic graph by "
                                 f"{diff:.3g} > {tolerance:g}")
    return predictor
