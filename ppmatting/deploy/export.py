"""Exporting a DIM to a Paddle Inference static graph (and ONNX), and checking the result.

* :func:`export_static` writes ``model.json`` + ``model.pdiparams`` (Paddle 3's PIR format) with
  named inputs ``img`` (N x 3 x H x W) and ``trimap`` (N x 1 x H x W), batch, height and width
  dynamic unless a fixed ``input_shape`` is asked for.
* :func:`check_parity` runs the saved graph through a :class:`MattingPredictor` and the
  dynamic-graph model on the same inputs and compares the alphas with the tie-robust criterion of
  :func:`ppmatting.deploy.parity.compare_alphas` (a share of pixels within 1/255 and a bounded
  maximum), per size.
* :func:`export_checked` = :func:`export_static` + that check + ``deploy.yaml``: what
  ``tools/export.py`` and the export cache (:mod:`ppmatting.deploy.export_cache`, behind
  ``tools/predict.py``, ``bg_replace.py`` and ``val.py``) both run.
* :func:`write_onnx` / :func:`onnx_runner` do the same through paddle2onnx and ONNX Runtime (the
  paper's decoder is traced with portable unpooling for ONNX; see :func:`write_onnx`).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from ppmatting.deploy.info import (DEPLOY_FILE, build_deploy_dict, load_deploy_info,
                                   write_deploy_yaml)
from ppmatting.deploy.parity import (DEFAULT_MAX_DIFF, DEFAULT_MAX_MEAN, DEFAULT_MIN_SHARE,
                                     DEFAULT_WITHIN, compare_alphas)
from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions
from ppmatting.core.loader import not_a_network_message
from ppmatting.utils.errors import InputError, PPMattingError

MODEL_PREFIX = "model"
PADDLE_FILES = ("model.json", "model.pdiparams")
ONNX_FILE = "model.onnx"
# Check sizes (N, H, W): one of a realistic size, a batch of two, and one size that is not a
# multiple of 32 (the graph is fed unpadded there, so the exported unpool / resize must follow the
# real size). None is small: a near-tie max-pool flip in the deepest pooling spreads over the whole
# of a small image (at 64x64 one flip moved 27% of the pixels; at 128 px and more at most 3%:
# docs/deploy.md section 7), while a real difference moves most pixels at any size.
DEFAULT_CHECK_SHAPES = ((1, 256, 256), (2, 160, 224), (1, 300, 225))
# The export cache's check: the realistic size alone (run once per weights).
CACHE_CHECK_SHAPES = ((1, 256, 256),)
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


def parity_criterion(within=DEFAULT_WITHIN, min_share=DEFAULT_MIN_SHARE,
                     max_diff=DEFAULT_MAX_DIFF, max_mean=DEFAULT_MAX_MEAN):
    """The keyword arguments of :func:`~ppmatting.deploy.parity.compare_alphas`, checked."""
    if not (float(within) >= 0 and 0 < float(min_share) <= 1 and float(max_diff) >= 0
            and float(max_mean) >= 0):
        raise InputError(f"parity check: need within >= 0, 0 < min_share <= 1, max_diff >= 0 and "
                         f"max_mean >= 0; got {within:g}, {min_share:g}, {max_diff:g}, "
                         f"{max_mean:g}")
    return {"within": float(within), "min_share": float(min_share), "max_diff": float(max_diff),
            "max_mean": float(max_mean)}


def check_parity(model, run_fn, shapes=DEFAULT_CHECK_SHAPES, seed=0, criterion=None):
    """Compare ``run_fn`` (the exported graph, e.g. a predictor's ``run``) with the dynamic graph
    on realistic inputs of each (N, H, W) in ``shapes``.

    Returns ``[((N, H, W), Parity), ...]`` (:class:`~ppmatting.deploy.parity.Parity`: share of
    pixels within ``within``, max and mean difference, and ``ok``).
    """
    criterion = criterion or parity_criterion()
    results = []
    for index, (batch, height, width) in enumerate(shapes):
        img, trimap = check_inputs(model, batch, height, width, seed=seed + index)
        expected = dygraph_alpha(model, img, trimap)
        got = np.asarray(run_fn(img, trimap))
        if got.shape != expected.shape:
            raise PPMattingError(f"exported graph returned shape {got.shape} for input "
                                 f"{img.shape}; the dynamic graph returns {expected.shape}")
        results.append(((batch, height, width), compare_alphas(expected, got, **criterion)))
    return results


def parity_failure(what, results):
    """The one-line error for the first failed size of ``results``, or None when all pass."""
    for (batch, height, width), parity in results:
        if not parity.ok:
            return (f"{what} differs from the dynamic graph at {batch}x3x{height}x{width}: "
                    f"{parity.describe()}")
    return None


def _log_parity(log, engine, results):
    for (batch, height, width), parity in results:
        log(f"  {engine} check {batch}x3x{height}x{width}: {parity.describe()}")


def _check_record(results, criterion):
    """What deploy.yaml records of a passed check."""
    return {"criterion": dict(criterion), "sizes": [list(s) for s, _ in results],
            "max_alpha_diff": max(p.max_diff for _, p in results),
            "min_share_within": min(p.share_within for _, p in results)}


def parse_check_sizes(texts, input_shape=None):
    """``["128x128", "2x160x224"]`` (HxW or NxHxW) -> [(N, H, W), ...]; with a fixed
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
            raise InputError(f"--check_sizes '{text}': expected HxW or NxHxW, e.g. 300x225")
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


def deployed_sizes(model, shapes, input_shape=None):
    """``shapes`` rounded up to the model's ``pad_multiple``: the sizes its deployed graph is fed
    (``preprocess`` pads every photo and tile to that multiple). The ONNX check uses these: for the
    paper's network (padded to 32) ONNX Runtime was seen to return a wrong alpha at a size that is
    not a multiple of 32 (a 50x70 input, 1 of 8 exports of the same weights, its 64x64 check
    exact), sizes infer.py never gives it. A fixed ``input_shape`` is kept as it is."""
    multiple = int(getattr(model, "pad_multiple", 1) or 1)
    if input_shape is not None or multiple <= 1:
        return list(shapes)
    rounded = []
    for batch, height, width in shapes:
        size = (batch, -(-height // multiple) * multiple, -(-width // multiple) * multiple)
        if size not in rounded:
            rounded.append(size)
    return rounded


# ---- the whole export ----------------------------------------------------------------------------
def export_checked(model, save_dir, input_shape=None, check_shapes=None, criterion=None,
                   config_path=None, weights=None, options=None, log=None):
    """Export ``model`` to Paddle Inference in ``save_dir``, check the saved graph against the
    dynamic graph (:func:`check_parity`) and, when it passes, write deploy.yaml with the check's
    numbers. Returns ``(files, predictor, check)``.

    Raises :class:`PPMattingError` saying what differed when the check fails; deploy.yaml is then
    not written, so a failed export cannot be deployed by mistake.
    """
    log = log or (lambda line: None)
    criterion = criterion or parity_criterion()
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
        results = check_parity(model, predictor.run, shapes, criterion=criterion)
    finally:
        os.unlink(stale)
    _log_parity(log, "Paddle Inference", results)
    failure = parity_failure(f"{save_dir}: the exported Paddle Inference graph", results)
    if failure:
        raise PPMattingError(f"{failure}; deploy.yaml not written. The export does not compute "
                             f"the same network: report it with the Paddle version, or run the "
                             f"dynamic graph (--dygraph)")
    check = dict(_check_record(results, criterion), predictor=list(predictor.notes))
    log(f"largest alpha difference from the dynamic graph: {check['max_alpha_diff']:.3g}; "
        f"smallest share of pixels within {criterion['within'] * 255:.3g}/255: "
        f"{check['min_share_within']:.4%} (criterion: share >= {criterion['min_share']:.2%}, "
        f"mean <= {criterion['max_mean']:g}, "
        f"max <= {criterion['max_diff']:g})")
    write_deploy_yaml(save_dir, build_deploy_dict(
        model, files, check=check, output_name=predictor.output_name, input_shape=input_shape,
        config_path=config_path, weights=weights))
    return files, predictor, check


def export_model(model, save_dir, input_shape=None, check_shapes=None, criterion=None,
                 fmt="paddle", config_path=None, weights=None, options=None, log=print):
    """Export, check against the dynamic graph, and write deploy.yaml (:func:`export_checked`).

    ``fmt`` is ``paddle`` or ``onnx`` (ONNX is converted from the Paddle export, so both are
    written). ``criterion``: :func:`parity_criterion` keywords. ``log`` receives progress lines.
    Returns the loaded :class:`~ppmatting.deploy.info.DeployInfo`. Raises
    :class:`PPMattingError` when a check fails.
    """
    if not getattr(model, "is_network", False):
        raise PPMattingError(not_a_network_message(model, config_path or "the config"))
    if fmt not in ("paddle", "onnx"):
        raise InputError(f"--format '{fmt}': expected paddle or onnx")
    criterion = criterion or parity_criterion()
    shapes = [tuple(s) for s in (check_shapes or parse_check_sizes(None, input_shape))]
    files, predictor, check = export_checked(model, save_dir, input_shape, shapes, criterion,
                                             config_path, weights, options, log)
    path = os.path.join(save_dir, DEPLOY_FILE)
    log(f"wrote {path}")

    if fmt == "onnx":
        common = dict(output_name=predictor.output_name, input_shape=input_shape,
                      config_path=config_path, weights=weights)
        onnx_file = write_onnx(model, save_dir, input_shape)
        onnx_path = os.path.join(save_dir, onnx_file)
        # ORT is checked in fp32 with the threads asked for (precision options are Paddle's)
        ort_options = PredictorOptions(cpu_threads=getattr(options, "cpu_threads", None))
        onnx_shapes = deployed_sizes(model, shapes, input_shape)
        if onnx_shapes != shapes:
            log(f"  ONNX Runtime is checked at the padded sizes the deployed graph receives "
                f"(pad_multiple {model.pad_multiple})")
        try:
            onnx_results = check_parity(model, onnx_runner(onnx_path, ort_options), onnx_shapes,
                                        criterion=criterion)
        except Exception:
            os.unlink(onnx_path)
            raise
        _log_parity(log, "ONNX Runtime", onnx_results)
        failure = parity_failure(f"{onnx_path}: ONNX Runtime", onnx_results)
        if failure:
            os.unlink(onnx_path)
            raise PPMattingError(f"{failure}; removed")
        record = _check_record(onnx_results, criterion)
        log(f"wrote {onnx_path}; ONNX Runtime (CPU) matches the dynamic graph: at least "
            f"{record['min_share_within']:.4%} of pixels within {criterion['within'] * 255:.3g}/255, "
            f"largest difference {record['max_alpha_diff']:.3g}")
        check["onnx"] = record  # criterion, sizes, max_alpha_diff, min_share_within
        path = write_deploy_yaml(save_dir, build_deploy_dict(
            model, files + [onnx_file], onnx_file=onnx_file, check=check, **common))
        log(f"updated {path} (adds {onnx_file})")
    return load_deploy_info(path)
