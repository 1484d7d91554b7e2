"""Which engine runs an export: Paddle Inference or ONNX Runtime (``infer.py --backend``).

The default is Paddle Inference: at equal alpha it was the faster fp32 engine for both DIM
variants at 512 and 1024 px on this project's CPU (benchmarks/bench_infer.py, docs/deploy.md
section 6), and it also runs bf16 and GPUs. ONNX Runtime runs the export's ``model.onnx``
(``tools/export.py --format onnx``) for deployments that want it; both engines share the pre- and
post-processing and write the same files.
"""
from ppmatting.deploy.predictor import MattingPredictor
from ppmatting.utils.errors import InputError

BACKENDS = ("paddle", "onnxruntime")
DEFAULT_BACKEND = "paddle"


def create_predictor(info, options=None, backend=DEFAULT_BACKEND):
    """A predictor for ``info`` (:class:`~ppmatting.deploy.info.DeployInfo`) on ``backend``.
    Both engines have the same interface (``run``, ``preprocess``, ``postprocess``, ``predict``,
    ``predict_batch``, ``description``, ``notes``)."""
    if backend == "onnxruntime":
        from ppmatting.deploy.onnx_predictor import OnnxPredictor

        return OnnxPredictor(info, options)
    if backend == "paddle":
        return MattingPredictor(info, options)
    raise InputError(f"--backend '{backend}': expected one of {', '.join(BACKENDS)}")
