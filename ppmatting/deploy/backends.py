"""Which engine runs an export: Paddle Inference or ONNX Runtime (``infer.py --backend``).

``auto`` (the default) picks ONNX Runtime when it can run the job and Paddle Inference otherwise.
At equal alpha (fp32; every pixel within 1/255 of Paddle's) ONNX Runtime was the faster CPU
engine for both DIM variants at 512 and 1024 px, 1.0-1.5x Paddle Inference's speed
(``python benchmarks/bench_infer.py``, docs/deploy.md section 6). It runs only the export's
``model.onnx`` (``tools/export.py --format onnx``), on CPU, in fp32; an export without it, a
machine without ``onnxruntime``, a GPU, TensorRT or bf16 (Paddle Inference's 2-2.7x faster
reduced precision on CPUs with AVX512-BF16) are Paddle Inference's. The choice and its reason are
printed; ``paddle`` or ``onnxruntime`` forces an engine. Both engines share the pre- and
post-processing and write the same files.
"""
import importlib.util

from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions
from ppmatting.utils.errors import InputError

BACKENDS = ("auto", "paddle", "onnxruntime")
DEFAULT_BACKEND = "auto"


def choose_backend(info, options=None):
    """``(backend, reason)`` for ``auto``: ``onnxruntime`` where it can run ``info``'s export with
    ``options`` (:class:`PredictorOptions`), else ``paddle``."""
    options = (options or PredictorOptions()).validate()
    if not info.onnx_file:
        return "paddle", "the export has no model.onnx (tools/export.py --format onnx adds it)"
    if options.device != "cpu" or options.use_trt:
        return "paddle", "GPU and TensorRT run on Paddle Inference"
    if options.precision != "fp32":
        return "paddle", f"{options.precision} runs on Paddle Inference"
    if importlib.util.find_spec("onnxruntime") is None:
        return "paddle", "onnxruntime is not installed (pip install -e .[onnx])"
    return "onnxruntime", "model.onnx on CPU in fp32: the faster fp32 engine (docs/deploy.md section 6)"


def create_predictor(info, options=None, backend=DEFAULT_BACKEND):
    """A predictor for ``info`` (:class:`~ppmatting.deploy.info.DeployInfo`) on ``backend``
    (``auto``, ``paddle`` or ``onnxruntime``); its ``backend_reason`` says why ``auto`` chose it.
    Both engines have the same interface (``run``, ``preprocess``, ``postprocess``, ``predict``,
    ``predict_batch``, ``description``, ``notes``, ``backend``)."""
    if backend not in BACKENDS:
        raise InputError(f"--backend '{backend}': expected one of {', '.join(BACKENDS)}")
    reason = "asked for"
    if backend == "auto":
        backend, reason = choose_backend(info, options)
    if backend == "onnxruntime":
        from ppmatting.deploy.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor(info, options)
    else:
        predictor = MattingPredictor(info, options)
    predictor.backend_reason = reason
    return predictor
