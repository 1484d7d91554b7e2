r"""Matte photos with an exported DIM through Paddle Inference (CPU or GPU) or ONNX Runtime (CPU).

    python deploy/python/infer.py --config output/export/deploy.yaml \
        --image_path photos/ --trimap_path trimaps/ --save_dir output/infer --batch_size 2

--image_path is an image, a folder of images or a .txt list (``image [trimap]`` per line, paths
relative to the list); --trimap_path is a trimap file (one photo) or a folder. Trimaps are matched
to photos by file name: photo ``x.jpg`` takes ``x.png`` or ``x_trimap.png``. A photo without a
trimap stops the run before anything is computed.

For each photo ``x`` it writes ``x_alpha.png`` (8-bit matte), ``x_rgba.png`` (the foreground colour
with the alpha; estimated with --fg_estimate true, the default, else the photo's own colours) and,
with --background (a colour such as white, #1e90ff or 30,144,255, an image file, or blur:12),
``x_composite.png``.

Photos of any size are accepted. Batches hold photos of the same padded size only, so each alpha
equals the one-photo result; the last batch of a size may be smaller than --batch_size. Large
photos: --tiling auto (default) runs the whole image when it fits the memory budget
(--max_memory_gb) and is not slower, else tiles guided by the trimap (--tile_size,
--tile_margin; tiles of one shape are batched by --batch_size too); see docs/deploy.md.

--backend: auto (default) runs ONNX Runtime on the export's model.onnx (tools/export.py --format
onnx) when the job is CPU fp32 and onnxruntime is installed (the faster fp32 engine here,
docs/deploy.md section 6), else Paddle Inference; it prints which and why. paddle or onnxruntime
forces one. Both give the same alpha and write the same files.

CPU: --cpu_threads, --enable_mkldnn (oneDNN, default on), --precision fp32 or bf16 (AVX512-BF16).
GPU: --device gpu --gpu_mem MB, --precision fp16, --use_trt with --trt_min_shape / --trt_opt_shape /
--trt_max_shape (dynamic shapes for both inputs, img and trimap). --benchmark prints the
pre-processing, inference and post-processing milliseconds per photo.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ppmatting.utils.cli import add_tiling_arguments, hw, str2bool  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402


def parse_args(argv=None):
    from ppmatting.deploy.backends import BACKENDS, DEFAULT_BACKEND
    from ppmatting.deploy.predictor import DEVICES, PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True,
                        help="deploy.yaml written by tools/export.py (or its folder)")
    parser.add_argument("--image_path", required=True,
                        help="an image, a folder of images, or a .txt list")
    parser.add_argument("--trimap_path", default=None,
                        help="a trimap (one photo) or a folder of trimaps named like the photos")
    parser.add_argument("--save_dir", default="output/infer", help="output folder")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                        help="auto (default: onnxruntime for CPU fp32 when the export has "
                             "model.onnx and onnxruntime is installed, else paddle), paddle "
                             "(Paddle Inference) or onnxruntime (CPU fp32)")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--cpu_threads", type=int, default=None,
                        help="CPU math threads (default: all cores)")
    parser.add_argument("--enable_mkldnn", type=str2bool, nargs="?", const=True, default=True,
                        help="oneDNN on CPU (default true)")
    parser.add_argument("--use_trt", type=str2bool, nargs="?", const=True, default=False,
                        help="TensorRT (GPU only)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32; bf16 (CPU with AVX512-BF16, or GPU); fp16 (GPU); int8 (GPU "
                             "with TensorRT)")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--benchmark", action="store_true",
                        help="print pre-processing / inference / post-processing ms per photo")
    parser.add_argument("--background", default=None,
                        help="also write <name>_composite.png on this background: a colour name, "
                             "#rrggbb, r,g,b, an image file or blur:SIGMA")
    parser.add_argument("--fg_estimate", type=str2bool, nargs="?", const=True, default=True,
                        help="estimate the foreground colour for the RGBA and composite "
                             "(default true; false uses the photo's colours)")
    parser.add_argument("--gpu_id", type=int, default=0)
    parser.add_argument("--gpu_mem", type=int, default=500,
                        help="initial GPU memory pool in MB")
    parser.add_argument("--trt_min_shape", type=hw, default=(64, 64), metavar="HxW")
    parser.add_argument("--trt_opt_shape", type=hw, default=(512, 512), metavar="HxW")
    parser.add_argument("--trt_max_shape", type=hw, default=(2048, 2048), metavar="HxW")
    add_tiling_arguments(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size must be at least 1, got {args.batch_size}")
    return args


def collect_pairs(image_path, trimap_path):
    """Jobs pairing every photo with its trimap; a photo without one is an error here, before
    the predictor is built."""
    from ppmatting.core.predict import collect_jobs

    jobs = collect_jobs(image_path, trimap_path)
    missing = [job for job in jobs if job.problem or not job.trimap_path]
    if missing:
        first = missing[0]
        reason = first.problem or (f"{first.image_path}: no trimap; give --trimap_path (a file "
                                   f"or a folder with {first.name}.png or "
                                   f"{first.name}_trimap.png)")
        more = f" ({len(missing)} of {len(jobs)} photos have no trimap)" if len(missing) > 1 else ""
        raise InputError(reason + more)
    return jobs


class Timer:
    """Milliseconds per photo for the three stages."""

    def __init__(self):
        self.ms = {"pre": 0.0, "infer": 0.0, "post": 0.0}
        self.count = 0

    def add(self, stage, seconds):
        self.ms[stage] += seconds * 1000.0

    def report(self, batch_size):
        count = max(1, self.count)
        lines = [f"benchmark: {self.count} photo(s), batch size {batch_size}, ms per photo "
                 f"(after one untimed warm-up run per input shape)"]
        labels = {"pre": "pre-processing  (read, normalise, pad)",
                  "infer": "inference       (predictor.run)",
                  "post": "post-processing (crop, foreground, composite, write)"}
        for stage, label in labels.items():
            lines.append(f"  {label:54s} {self.ms[stage] / count:10.1f}")
        lines.append(f"  {'total':54s} {sum(self.ms.values()) / count:10.1f}")
        return "\n".join(lines)


def run(predictor, jobs, writer, batch_size=1, timer=None, warmup=False, log=print,
        tiling=None):
    """Matte every job through ``ppmatting.deploy.tiling.TiledMatting``: photos that run whole
    wait in a queue per padded size until a batch is full (or the input ends), so memory holds at
    most ``batch_size`` photos per distinct size; a photo too large for the memory budget runs in
    tiles, batched the same way. ``tiling``: :class:`~ppmatting.deploy.tiling.TilingOptions`.

    ``warmup``: run each new input shape once untimed first (oneDNN builds its kernels on the
    first run of a shape), for --benchmark. Returns {name: {kind: path}}.
    """
    from ppmatting.core.predict import read_job
    from ppmatting.deploy.engines import spec_for_predictor
    from ppmatting.deploy.tiling import TiledMatting, TilingOptions

    timer = timer or Timer()
    options = tiling or TilingOptions()
    options.batch_size = batch_size
    tiled = TiledMatting(predictor, spec_for_predictor(predictor), options, log=log,
                         timer=timer.add, warmup=warmup)
    written = {}

    def save(finished):
        for (name, image01), alpha01 in finished:
            start = time.perf_counter()
            written[name] = writer.save(name, image01, alpha01).paths
            timer.add("post", time.perf_counter() - start)
            timer.count += 1
            log(f"{name}: {written[name]['alpha']}")

    for job in jobs:
        start = time.perf_counter()
        image01, trimap_u8 = read_job(job)
        timer.add("pre", time.perf_counter() - start)
        save(tiled.submit((job.name, image01), image01, trimap_u8))
    save(tiled.flush())
    return written


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    from ppmatting.deploy.backends import create_predictor
    from ppmatting.deploy.info import load_deploy_info
    from ppmatting.deploy.predictor import PredictorOptions

    info = load_deploy_info(args.config)
    jobs = collect_pairs(args.image_path, args.trimap_path)
    background = None
    if args.background:
        from ppmatting.apps.background import parse_background
        background = parse_background(args.background)
    options = PredictorOptions(device=args.device, cpu_threads=args.cpu_threads,
                               enable_mkldnn=args.enable_mkldnn, precision=args.precision,
                               use_trt=args.use_trt, gpu_id=args.gpu_id, gpu_mem_mb=args.gpu_mem,
                               trt_min_hw=args.trt_min_shape, trt_opt_hw=args.trt_opt_shape,
                               trt_max_hw=args.trt_max_shape, trt_max_batch=args.batch_size)
    predictor = create_predictor(info, options, args.backend)
    print(f"{len(jobs)} photo(s); backend {predictor.backend} ({predictor.backend_reason}): "
          f"{predictor.description}", flush=True)
    from ppmatting.core.writer import Composite, ResultWriter
    composites = [Composite(background, "{name}_composite.png")] if background else []
    writer = ResultWriter(args.save_dir, composites=composites, fg_estimate=args.fg_estimate)
    timer = Timer()
    if args.benchmark and args.fg_estimate:
        import numpy as np
        # the foreground estimator compiles (numba) on its first call: keep that out of the timing
        writer.foreground(np.zeros((8, 8, 3), np.float32), np.full((8, 8), 0.5, np.float32))
    from ppmatting.deploy.tiling import tiling_options
    written = run(predictor, jobs, writer, args.batch_size, timer, warmup=args.benchmark,
                  tiling=tiling_options(args))
    print(f"saved {len(written)} result(s) to {args.save_dir}")
    if args.benchmark:
        print(timer.report(args.batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
