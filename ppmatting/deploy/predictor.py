"""A Paddle Inference predictor for an exported DIM, built from a few options.

What works on Paddle 3.3.1 (checked on this project's CPU machine; see docs/deploy.md):

* The exported graph is a PIR program, ``model.json`` + ``model.pdiparams``.
* CPU + oneDNN runs the convolutions 4-5x faster than Paddle's plain CPU kernels. The oneDNN
  *placement* pass, which moves every remaining op onto oneDNN kernels, breaks ``bilinear_interp``
  (PaddleSeg's decoder): its empty ``scale`` attribute (an array of doubles) is rejected at run time
  with "ConvertPirAttribute2RuntimeAttribute not support
  [pir::ArrayAttribute<pir::DoubleAttribute>]".
  For graphs with an interpolation op the placement pass is deleted; the oneDNN fusion passes still
  turn every conv (+ bias + BN + ReLU) into a oneDNN ``fused_conv2d``, which is where the time goes.
  ``config.set_onednn_op`` does not help: the PIR pipeline ignores it.
* ``enable_memory_optim()`` is never called: with a PIR program the predictor looks up the result
  of the old-IR ``memory_optimize_pass`` that never ran and fails ("Not find predictor_id 0 and
  pass_name memory_optimize_pass"). The PIR executor reuses buffers through its inplace pass anyway.
* bf16 (``enable_onednn_bfloat16``) runs where the CPU has AVX512-BF16; ``enable_onednn_int8`` on a
  float graph changes nothing (int8 needs a quantised model), so int8 on CPU is refused.
* GPU: memory pool and precision through ``enable_use_gpu``; TensorRT through Paddle 3's PIR-TRT
  converter (``paddle.tensorrt``) with dynamic shape ranges for BOTH inputs, ``img`` and
  ``trimap``. No GPU here: those paths are written from Paddle's API, not run.
"""
import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ppmatting.deploy.info import INPUT_NAMES
from ppmatting.utils.errors import InputError, PPMattingError

DEVICES = ("cpu", "gpu")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass
class PredictorOptions:
    """How to run the exported graph.

    device: ``cpu`` or ``gpu``. cpu_threads: math-library threads (default: all cores).
    enable_mkldnn: oneDNN on CPU. precision: ``fp32``; ``bf16`` (CPU with oneDNN, or GPU);
    ``fp16`` (GPU); ``int8`` (GPU with TensorRT). use_trt: TensorRT on GPU. gpu_id,
    gpu_mem_mb: the GPU and its initial memory pool. trt_min_hw / trt_opt_hw / trt_max_hw and
    trt_max_batch: TensorRT's dynamic shape range (after padding). trt_cache_dir: where the
    TensorRT-converted program is kept (default: beside deploy.yaml). onednn_cache_capacity:
    how many input shapes oneDNN keeps kernels and buffers for. Each kept shape holds about its
    activation memory (measured: +200 MB per 512x512 shape in bf16, never returned), so the
    default is 1: a new shape rebuilds its kernels (10-20% of one run) instead of piling up
    memory when photo sizes vary.
    """
    device: str = "cpu"
    cpu_threads: Optional[int] = None
    enable_mkldnn: bool = True
    precision: str = "fp32"
    use_trt: bool = False
    gpu_id: int = 0
    gpu_mem_mb: int = 500
    trt_min_hw: Tuple[int, int] = (64, 64)
    trt_opt_hw: Tuple[int, int] = (512, 512)
    trt_max_hw: Tuple[int, int] = (2048, 2048)
    trt_max_batch: int = 1
    trt_cache_dir: Optional[str] = None
    onednn_cache_capacity: int = 1

    def validate(self):
        if self.device not in DEVICES:
            raise InputError(f"device '{self.device}': expected one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision '{self.precision}': expected one of "
                             f"{', '.join(PRECISIONS)}")
        if self.cpu_threads is not None and int(self.cpu_threads) < 1:
            raise InputError(f"cpu_threads must be at least 1, got {self.cpu_threads}")
        for name in ("trt_min_hw", "trt_opt_hw", "trt_max_hw"):
            hw = getattr(self, name)
            if len(hw) != 2 or min(int(v) for v in hw) < 1:
                raise InputError(f"{name} must be two positive numbers (H, W), got {hw}")
        if not (all(a <= b for a, b in zip(self.trt_min_hw, self.trt_opt_hw))
                and all(a <= b for a, b in zip(self.trt_opt_hw, self.trt_max_hw))):
            raise InputError(f"TensorRT shapes must satisfy min <= opt <= max, got "
                             f"{self.trt_min_hw}, {self.trt_opt_hw}, {self.trt_max_hw}")
        return self

    @property
    def threads(self):
        return int(self.cpu_threads) if self.cpu_threads else (os.cpu_count() or 1)


# ---- facts about the graph -----------------------------------------------------------------------
_OP_NAME = re.compile(r'"#"\s*:\s*"\d+\.([A-Za-z0-9_]+)"')


def graph_ops(model_file):
    """Set of op type names in a PIR ``model.json`` (``conv2d``, ``unpool``, ``bilinear_interp``,
    ...); attribute/type tags of the file format come along and do no harm."""
    with open(model_file, "r", encoding="utf-8") as handle:
        return set(_OP_NAME.findall(handle.read()))


def has_interpolation(ops):
    """The resize ops that share ``bilinear_interp``'s attribute set (``scale`` as a double array),
    which oneDNN's placement pass cannot hand to the kernel on Paddle 3.3.1."""
    return any(name.endswith("_interp") or name.endswith("_interp_v2") for name in ops)


def cpu_supports_bf16():
    """(usable, fast): bf16 kernels exist (AVX512) / the CPU has native AVX512-BF16."""
    from paddle.base import core

    try:
        return bool(core.supports_bfloat16()), bool(core.supports_bfloat16_fast_performance())
    except AttributeError:  # older builds without the probes
        return False, False


# ---- Config --------------------------------------------------------------------------------------
def _cpu_config(config, options, ops, notes):
    from paddle.base import core

    if options.precision in ("fp16", "int8"):
        why = ("Paddle Inference has no fp16 CPU kernels" if options.precision == "fp16" else
               "oneDNN int8 needs a quantised graph (PaddleSlim); on this float export "
               "enable_onednn_int8 changes nothing")
        raise PPMattingError(f"precision {options.precision} on CPU: {why}; use fp32, or bf16 "
                             f"on a CPU with AVX512-BF16")
    config.disable_glog_info()  # before the bf16 switch, which logs otherwise
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(options.threads)
    notes.append(f"cpu threads {options.threads}")
    use_onednn = options.enable_mkldnn and core.is_compiled_with_onednn()
    if options.enable_mkldnn and not use_onednn:
        notes.append("oneDNN requested but this Paddle build has none")
    if not use_onednn:
        config.disable_onednn()
        if options.precision == "bf16":
            raise PPMattingError("precision bf16 on CPU runs through oneDNN; drop "
                                 "--enable_mkldnn false")
        notes.append("oneDNN off")
        return
    config.enable_onednn()
    config.set_onednn_cache_capacity(int(options.onednn_cache_capacity))
    if has_interpolation(ops):
        # Paddle 3.3.1: the placement pass puts bilinear_interp on oneDNN, whose kernel cannot
        # take the op's `scale` attribute (ArrayAttribute<DoubleAttribute>) -> NotImplementedError
        # at the first run. Without it the fused convs still run on oneDNN.
        config.delete_pass("onednn_placement_pass")
        notes.append("oneDNN on (convs; placement pass off: it breaks bilinear_interp)")
    else:
        notes.append("oneDNN on")
    if options.precision == "bf16":
        usable, fast = cpu_supports_bf16()
        if not usable:
            raise PPMattingError("precision bf16: this CPU has no AVX512, so oneDNN has no bf16 "
                                 "kernels; use fp32")
        config.enable_onednn_bfloat16()
        notes.append("bf16" + ("" if fast else " (emulated: no AVX512-BF16, likely slower)"))


def tensorrt_shape_ranges(options, fixed_batch=None, fixed_hw=None):
    """TensorRT's dynamic shape range for BOTH graph inputs.

    Returns ``{"img": (min, opt, max), "trimap": (min, opt, max)}`` with shapes ``[N, C, H, W]``;
    the two inputs share batch, height and width and differ only in channels (3 and 1). A
    forgotten ``trimap`` range is what breaks TensorRT engines built for one input only.
    """
    batch_max = int(fixed_batch or options.trt_max_batch)
    batch_min = int(fixed_batch or 1)
    if fixed_hw:
        lo = opt = hi = tuple(int(v) for v in fixed_hw)
    else:
        lo, opt, hi = options.trt_min_hw, options.trt_opt_hw, options.trt_max_hw
    ranges = {}
    for name, channels in (("img", 3), ("trimap", 1)):
        ranges[name] = ([batch_min, channels, int(lo[0]), int(lo[1])],
                        [batch_min, channels, int(opt[0]), int(opt[1])],
                        [batch_max, channels, int(hi[0]), int(hi[1])])
    return ranges


def convert_for_tensorrt(info, options):
    """Convert the exported program with Paddle 3's PIR-TRT converter (``paddle.tensorrt``).

    Returns ``(model_file, params_file)`` of the converted program, cached under
    ``options.trt_cache_dir`` (default: a folder beside deploy.yaml named after the precision and
    shape range). Needs a CUDA + TensorRT build of Paddle. Written from Paddle's API
    (python/paddle/tensorrt/export.py: ``Input``, ``TensorRTConfig``, ``convert``); not run here.
    """
    try:
        from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert
    except ImportError:
        raise PPMattingError("--use_trt needs a Paddle build with TensorRT (paddle.tensorrt); "
                             "this one has none") from None
    ranges = tensorrt_shape_ranges(options, info.fixed_batch, info.fixed_hw)
    lo, hi = ranges["img"][0], ranges["img"][2]
    tag = f"trt_{options.precision}_{lo[2]}x{lo[3]}-{hi[2]}x{hi[3]}_b{hi[0]}"
    folder = options.trt_cache_dir or os.path.join(info.folder, tag)
    prefix = os.path.join(folder, "model")
    if os.path.isfile(prefix + ".json") and os.path.isfile(prefix + ".pdiparams"):
        return prefix + ".json", prefix + ".pdiparams"
    os.makedirs(folder, exist_ok=True)
    # warm-up data in the inputs' real ranges: normalised RGB around 0, trimap 0..255
    value_range = {"img": (-2.0, 2.0), "trimap": (0.0, 255.0)}
    inputs = [Input(min_input_shape=tuple(ranges[name][0]),
                    optim_input_shape=tuple(ranges[name][1]),
                    max_input_shape=tuple(ranges[name][2]), input_data_type="float32",
                    input_range=value_range[name], name=name)
              for name in INPUT_NAMES]
    precision = {"fp32": PrecisionMode.FP32, "fp16": PrecisionMode.FP16,
                 "bf16": PrecisionMode.BF16, "int8": PrecisionMode.INT8}[options.precision]
    trt_config = TensorRTConfig(inputs=inputs, precision_mode=precision, save_model_dir=prefix)
    convert(info.model_file, trt_config)
    return prefix + ".json", prefix + ".pdiparams"


def _gpu_config(info, options, notes):
    import paddle
    from paddle import inference

    if not paddle.is_compiled_with_cuda():
        raise PPMattingError("--device gpu: this Paddle build has no CUDA (the paddlepaddle CPU "
                             "package); install paddlepaddle-gpu or use --device cpu")
    if options.use_trt:
        model_file, params_file = convert_for_tensorrt(info, options)
        config = inference.Config(model_file, params_file)
        # precision lives in the converted TensorRT engines; the rest of the graph runs fp32
        config.enable_use_gpu(int(options.gpu_mem_mb), int(options.gpu_id))
        notes.append(f"gpu {options.gpu_id}, pool {options.gpu_mem_mb} MB, TensorRT "
                     f"{options.precision} (dynamic shapes for img and trimap)")
        return config
    if options.precision == "int8":
        raise PPMattingError("precision int8 on GPU needs TensorRT: add --use_trt")
    precision = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half,
                 "bf16": inference.PrecisionType.Bfloat16}[options.precision]
    config = inference.Config(info.model_file, info.params_file)
    # the memory pool: initial size in MB, grown on demand
    config.enable_use_gpu(int(options.gpu_mem_mb), int(options.gpu_id), precision)
    notes.append(f"gpu {options.gpu_id}, pool {options.gpu_mem_mb} MB, {options.precision}")
    return config


def build_config(info, options=None):
    """``paddle.inference.Config`` for ``info`` (a :class:`~ppmatting.deploy.info.DeployInfo`).

    Returns ``(config, notes)``; ``notes`` lists the settings that were applied, for logs.
    """
    from paddle import inference

    options = (options or PredictorOptions()).validate()
    notes = []
    ops = graph_ops(info.model_file)
    if options.device == "gpu":
        config = _gpu_config(info, options, notes)
    else:
        if options.use_trt:
            raise PPMattingError("--use_trt needs --device gpu (TensorRT is an NVIDIA GPU engine)")
        config = inference.Config(info.model_file, info.params_file)
        _cpu_config(config, options, ops, notes)
    config.switch_ir_optim(True)
    # enable_memory_optim() deliberately not called: it fails for PIR programs (module docstring)
    config.disable_glog_info()
    return config, notes


# ---- the predictor -------------------------------------------------------------------------------
class MattingPredictor:
    """Runs an exported DIM with the same pre/post-processing as ``DIM.predict``.

    Args:
        info: :class:`~ppmatting.deploy.info.DeployInfo` (from ``load_deploy_info``).
        options: :class:`PredictorOptions`.

    ``predict(image01, trimap_u8) -> alpha01`` has the zoo-model call shape, so it can stand in
    for ``model.predict`` anywhere (``tools/predict.py``'s fast path).
    """

    is_network = True
    needs_trimap = True
    backend = "paddle"

    def __init__(self, info, options=None):
        from paddle import inference

        self.info = info
        self.options = (options or PredictorOptions()).validate()
        self.config, self.notes = build_config(info, self.options)
        self.predictor = inference.create_predictor(self.config)
        names = list(self.predictor.get_input_names())
        missing = [name for name in INPUT_NAMES if name not in names]
        if missing:
            raise PPMattingError(f"{info.model_file}: the graph's inputs are {names}, expected "
                                 f"img and trimap (re-export with tools/export.py)")
        self.output_name = self.predictor.get_output_names()[0]

    @property
    def description(self):
        return f"{self.info.model_name} ({self.info.variant}) via Paddle Inference: " + \
            ", ".join(self.notes)

    def run(self, img, trimap):
        """Raw graph call. img float32 N x 3 x H x W (normalised), trimap float32 N x 1 x H x W
        (0/128/255) -> alpha float32 N x 1 x H x W in [0, 1]."""
        img = np.ascontiguousarray(img, dtype=np.float32)
        trimap = np.ascontiguousarray(trimap, dtype=np.float32)
        if img.ndim != 4 or img.shape[1] != 3 or trimap.shape != (img.shape[0], 1) + img.shape[2:]:
            raise ValueError(f"expected img N x 3 x H x W and trimap N x 1 x H x W, got "
                             f"{img.shape} and {trimap.shape}")
        fixed = self.info.fixed_hw
        if fixed and tuple(img.shape[2:]) != fixed:
            raise InputError(f"{self.info.path}: the graph was exported for {fixed[1]}x{fixed[0]} "
                             f"(WxH) inputs, got {img.shape[3]}x{img.shape[2]}; re-export without "
                             f"--input_shape for any size")
        batch = self.info.fixed_batch
        if batch and img.shape[0] != batch:
            # a fixed-batch graph: run in chunks of its batch, the last one filled up with copies
            outputs = []
            for start in range(0, img.shape[0], batch):
                chunk_img, chunk_trimap = img[start:start + batch], trimap[start:start + batch]
                real = chunk_img.shape[0]
                if real < batch:
                    fill = np.repeat(chunk_img[-1:], batch - real, axis=0)
                    chunk_img = np.concatenate([chunk_img, fill])
                    fill = np.repeat(chunk_trimap[-1:], batch - real, axis=0)
                    chunk_trimap = np.concatenate([chunk_trimap, fill])
                outputs.append(self._run_once(chunk_img, chunk_trimap)[:real])
            return np.concatenate(outputs)
        return self._run_once(img, trimap)

    def _run_once(self, img, trimap):
        self.predictor.get_input_handle("img").copy_from_cpu(img)
        self.predictor.get_input_handle("trimap").copy_from_cpu(trimap)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()

    def preprocess(self, image01, trimap_u8):
        """-> (img 1x3xHpxWp, trimap 1x1xHpxWp, (h, w)), exactly as ``DIM.preprocess``."""
        from ppmatting.models.dim import preprocess

        return preprocess(image01, trimap_u8, self.info.mean, self.info.std,
                          self.info.pad_multiple)

    @staticmethod
    def postprocess(alpha, trimap_u8, size):
        from ppmatting.models.dim import postprocess

        return postprocess(alpha, trimap_u8, size)

    def predict(self, image01, trimap_u8):
        """image01 float32 H x W x 3 in [0, 1], trimap_u8 uint8 H x W -> alpha01 float32 H x W."""
        img, trimap, size = self.preprocess(image01, trimap_u8)
        return self.postprocess(self.run(img, trimap), trimap_u8, size)

    def predict_batch(self, pairs, batch_size=1):
        """Matte several photos: ``pairs`` = [(image01, trimap_u8), ...] -> [alpha01, ...].

        Photos share a batch only with photos of the same padded size
        (:class:`~ppmatting.deploy.batching.ShapeBatcher`), so every alpha equals what
        :meth:`predict` gives for that photo alone.
        """
        from ppmatting.deploy.batching import ShapeBatcher

        batcher = ShapeBatcher(self.run, batch_size)
        finished = []
        for index, (image01, trimap_u8) in enumerate(pairs):
            img, trimap, size = self.preprocess(image01, trimap_u8)
            finished += batcher.add((index, size), img, trimap)
        finished += batcher.flush()
        results = [None] * len(pairs)
        for (index, size), alpha in finished:
            results[index] = self.postprocess(alpha, pairs[index][1], size)
        return results
