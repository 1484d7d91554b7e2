"""Which engine runs an export: Paddle Inference or ONNX Runtime (``infer.py --backend``).

``auto`` (the default) picks ONNX Runtime when it can run the request at the same alpha, because it
was the faster fp32 engine for both DIM variants at 512 and 1024 px on this project's CPU
(benchmarks/bench_infer.py, docs/deploy.md): the export holds ``model.onnx`` (``tools/export.py
--format onnx``), onnxruntime is installed, and the options are CPU fp32. Anything else (bf16, a
GPU, TensorRT, an export without ONNX) goes to Paddle Inference.
"""
import importlib.util

from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions
from ppmatting.utils.errors import InputError

BACKENDS = ("auto", "paddle", "onnxruntime")


def resolve_backend(info, options=None, backend="auto"):
    """``(backend, reason)``: the engine ``backend`` stands for, and why (for the log line)."""
    options = options or PredictorOptions()
    if backend not in BACKENDS:
        raise InputError(f"--backend '{backend}': expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend, "asked for"
    if not info.onnx_file:
        return "paddle", "the export has no model.onnx"
    if importlib.util.find_spec("onnxruntime") is None:
        return "paddle", "onnxruntime is not installed"
    if options.device != "cpu" or options.use_trt or options.precision != "fp32":
        return "paddle", f"{options.device} {options.precision} runs on Paddle Inference"
    return "onnxruntime", "fastest fp32 engine here (docs/deploy.md)"


def create_predictor(info, options=None, backend="auto"):
    """A predictor for ``info`` on the engine :func:`resolve_backend` picks. Both engines have the
    same interface (``run``, ``preprocess``, ``postprocess``, ``predict``, ``predict_batch``,
    ``description``, ``notes``)."""
    name, reason = resolve_backend(info, options, backend)
    if name == "onnxruntime":
        from ppmatting.deploy.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor(info, options)
    else:
        predictor = MattingPredictor(info, options)
    predictor.backend_reason = reason
    return predictor
