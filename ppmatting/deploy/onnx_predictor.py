"""ONNX Runtime as a second engine for an exported DIM (``deploy/python/infer.py --backend
onnxruntime``).

:class:`OnnxPredictor` runs ``model.onnx`` (written by ``tools/export.py --format onnx`` next to
the Paddle files and named in ``deploy.yaml``) behind the interface of
:class:`~ppmatting.deploy.predictor.MattingPredictor`: ``run(img, trimap)`` on network inputs,
``preprocess`` / ``postprocess`` / ``predict`` / ``predict_batch`` in the zoo's ranges, and
``description`` / ``notes`` for logs. It inherits everything but the engine from
``MattingPredictor``, so pre- and post-processing, the fixed-shape checks and batching are the same
code for both engines, and a wrapper written for one (tiling) works on the other.

What runs here (onnxruntime 1.32, CPU execution provider): fp32, with ``--cpu_threads`` as the
intra-op thread count. ORT's reduced-precision CPU paths are measured in benchmarks/bench_infer.py
(static int8 needs calibration photos; docs/deploy.md) but not offered here.
"""
import os

import numpy as np

from ppmatting.deploy.info import INPUT_NAMES
from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions
from ppmatting.utils.errors import ConfigError, PPMattingError

INSTALL_HINT = "pip install onnxruntime==1.32.0 (or the project's extra: pip install -e .[onnx])"


def import_onnxruntime():
    """The ``onnxruntime`` module, or :class:`PPMattingError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise PPMattingError(f"the onnxruntime backend needs ONNX Runtime: {INSTALL_HINT}") from None
    return onnxruntime


def session_options(options):
    """``(onnxruntime.SessionOptions, notes)`` for :class:`PredictorOptions` ``options``.

    Only what ONNX Runtime's CPU provider can honour is accepted; the rest is refused with the
    reason (one line), as the Paddle backend refuses settings it cannot run.
    """
    ort = import_onnxruntime()
    options = (options or PredictorOptions()).validate()
    if options.device != "cpu":
        raise PPMattingError("--backend onnxruntime runs on CPU here (the onnxruntime package has "
                             "no GPU provider); use --backend paddle for --device gpu")
    if options.use_trt:
        raise PPMattingError("--use_trt is a Paddle Inference GPU option; use --backend paddle")
    if options.precision != "fp32":
        raise PPMattingError(f"--precision {options.precision} with --backend onnxruntime: only "
                             f"fp32 is offered (ORT's int8 needs a model quantised with "
                             f"calibration photos; see docs/deploy.md); use fp32, or --backend "
                             f"paddle --precision bf16")
    session = ort.SessionOptions()
    session.intra_op_num_threads = options.threads
    session.inter_op_num_threads = 1  # one graph at a time: all cores go to the convolutions
    session.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session.log_severity_level = 3  # errors only
    notes = [f"cpu threads {options.threads}", "fp32", "graph optimisation all"]
    return session, notes


def create_session(onnx_file, options=None):
    """An ``onnxruntime.InferenceSession`` on CPU for ``onnx_file``, checked to take ``img`` and
    ``trimap``. Returns ``(session, notes)``. A missing or unreadable file is a
    :class:`ConfigError` naming it."""
    ort = import_onnxruntime()
    if not os.path.isfile(onnx_file):
        raise ConfigError(f"{onnx_file}: ONNX file not found (tools/export.py --format onnx "
                          f"writes it)")
    sess_options, notes = session_options(options)
    try:
        session = ort.InferenceSession(onnx_file, sess_options=sess_options,
                                       providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{onnx_file}: ONNX Runtime cannot load it ({first[:300]})") from None
    names = [item.name for item in session.get_inputs()]
    if sorted(names) != sorted(INPUT_NAMES):
        raise ConfigError(f"{onnx_file}: the graph's inputs are {names}, expected img and trimap "
                          f"(re-export with tools/export.py --format onnx)")
    return session, notes


class OnnxPredictor(MattingPredictor):
    """Runs ``deploy.yaml``'s ``model.onnx`` with ONNX Runtime; same interface and same pre- and
    post-processing as :class:`~ppmatting.deploy.predictor.MattingPredictor`.

    Args:
        info: :class:`~ppmatting.deploy.info.DeployInfo` of an export made with ``--format onnx``.
        options: :class:`~ppmatting.deploy.predictor.PredictorOptions`; ``cpu_threads`` sets ORT's
            intra-op threads. GPU, TensorRT and precisions other than fp32 are refused.

    ``run(img, trimap)``: img float32 N x 3 x H x W normalised, trimap float32 N x 1 x H x W raw
    0/128/255 -> alpha float32 N x 1 x H x W in [0, 1].
    """

    backend = "onnxruntime"

    def __init__(self, info, options=None):  # pylint: disable=super-init-not-called
        # The parent's __init__ builds a Paddle Inference predictor; this engine replaces it.
        if not info.onnx_file:
            raise ConfigError(f"{info.path}: this export has no ONNX file; re-export with "
                              f"tools/export.py --format onnx (or use --backend paddle)")
        self.info = info
        self.options = (options or PredictorOptions()).validate()
        self.session, self.notes = create_session(info.onnx_file, self.options)
        self.output_name = self.session.get_outputs()[0].name

    @property
    def description(self):
        return f"{self.info.model_name} ({self.info.variant}) via ONNX Runtime: " + \
            ", ".join(self.notes)

    def _run_once(self, img, trimap):
        return self.session.run([self.output_name], {"img": np.ascontiguousarray(img, np.float32),
                                                     "trimap": np.ascontiguousarray(trimap,
                                                                                    np.float32)})[0]
