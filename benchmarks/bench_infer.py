"""DIM inference speed on this CPU: dynamic graph, Paddle Inference and ONNX Runtime, same run.

    python benchmarks/bench_infer.py                      # 512 and 1024 px, both variants
    python benchmarks/bench_infer.py --variants mmediting --sizes 512 --unpool_ab

For each variant and size it times one image (batch 1) through
  * the dynamic-graph model (``model(img, trimap)`` under ``no_grad``; skip with --no_dygraph),
  * Paddle Inference (infer.py's ``MattingPredictor``): fp32 (oneDNN), and bf16 where the CPU has
    AVX512-BF16 (else an int8 row that says why Paddle cannot run it on a float graph),
  * ONNX Runtime on the same export's ``model.onnx`` (infer.py's ``--backend onnxruntime``
    session): fp32; int8 (static QDQ quantisation of the convolutions with
    ``onnxruntime.quantization.quantize_static``, per-channel weights, calibrated on four
    synthetic 128 px inputs); fp16 (``onnxruntime.transformers.float16``, inputs and output kept
    float32). A path that does not run on this CPU prints why.
  * with --unpool_ab (the paper's variant): Paddle Inference fp32 and bf16 of the same network
    traced with the portable unpooling that its ONNX graph uses
    (``ppmatting.models.decoders.unpool.unpool_like_max_pool``), to compare with the Paddle graph's
    ``max_unpool2d`` scatter.

It prints seconds per image (wall clock, and the child's CPU seconds, which a busy machine disturbs
less; the fastest of --rounds rounds; in each round every engine is built in
its own child process, warmed up on the size and timed once, so one engine's memory is held at a
time and a change in the machine's load hits every engine alike), the speed-up over Paddle fp32, how the alpha
compares with Paddle fp32 (largest difference, and share of pixels within 1/255 as
``ppmatting.deploy.parity.compare_alphas`` counts it), the convolution GFLOP (multiply-add = 2),
the achieved GFLOP/s and, measured just before each size, a float32 matrix-multiply GFLOP/s as the
machine's yardstick.

Goals (issues 7 and 13): Paddle fp32 >= 3x faster than the dynamic graph; bf16 >= 1.5x faster than
fp32 with alpha within 0.01; infer.py's default engine is the faster fp32 one at equal alpha.

Weights are random (no published weights here); alpha differences with random weights may not
represent trained ones. For PaddleSeg's variant the batch-norm statistics are first set from one
synthetic image (running stats = that image's batch statistics, as training leaves them), so its
activations have trained-like scales; the paper's variant has no batch norm.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

# thread counts must be in the environment before numpy / paddle load their math libraries
_THREADS = str(os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

GOAL_PREDICTOR_SPEEDUP = 3.0
GOAL_REDUCED_SPEEDUP = 1.5
GOAL_REDUCED_ALPHA = 0.01
BASE = "paddle fp32"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--variants", nargs="+", choices=("mmediting", "paddleseg"),
                        default=["mmediting", "paddleseg"])
    parser.add_argument("--rounds", type=int, default=2,
                        help="timed runs per engine and size, each after a fresh build and one "
                             "warm-up run; the fastest is reported (the dynamic graph runs once)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--no_dygraph", action="store_true",
                        help="skip the (slow) dynamic-graph rows")
    parser.add_argument("--no_onnx", action="store_true", help="skip the ONNX Runtime rows")
    parser.add_argument("--_engine", help=argparse.SUPPRESS)  # child process: one timed engine
    parser.add_argument("--_inputs", help=argparse.SUPPRESS)
    parser.add_argument("--_alpha", help=argparse.SUPPRESS)
    parser.add_argument("--unpool_ab", action="store_true",
                        help="add Paddle fp32/bf16 rows of the paper's network traced with the "
                             "portable unpooling of its ONNX graph")
    return parser.parse_args(argv)


def matmul_gflops(n=2048, repeats=5):
    """Best float32 n x n matrix-multiply rate (numpy / its BLAS), GFLOP/s."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def conv_flops(model, size):
    """Convolution FLOPs of one forward pass at size x size (multiply-add = 2), counted from the
    output shapes seen by forward hooks on every Conv2D (at a small size, scaled by area: every
    layer's output area is proportional to the input area when size is a multiple of 32)."""
    import paddle

    probe = 64
    total = [0]

    def hook(layer, inputs, output):
        out_c, out_h, out_w = output.shape[1], output.shape[2], output.shape[3]
        kernel = layer.weight.shape  # [out, in / groups, kh, kw]
        total[0] += 2 * out_c * out_h * out_w * kernel[1] * kernel[2] * kernel[3]

    handles = [layer.register_forward_post_hook(hook) for layer in model.sublayers()
               if isinstance(layer, paddle.nn.Conv2D)]
    try:
        from ppmatting.deploy.export import check_inputs, dygraph_alpha
        dygraph_alpha(model, *check_inputs(model, 1, probe, probe))
    finally:
        for handle in handles:
            handle.remove()
    return total[0] * (size / probe) ** 2


def calibrate_batch_norm(model, seed=0, size=128):
    """Set every BatchNorm's running statistics to the batch statistics of one synthetic image
    (momentum 0 for one train-mode pass), the scale training would leave."""
    import paddle
    from ppmatting.deploy.export import check_inputs

    norms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)]
    if not norms:
        return 0
    saved = [layer._momentum for layer in norms]
    for layer in norms:
        layer._momentum = 0.0
    model.train()
    img, trimap = check_inputs(model, 1, size, size, seed=seed)
    with paddle.no_grad():
        model(paddle.to_tensor(img), paddle.to_tensor(trimap))
    for layer, momentum in zip(norms, saved):
        layer._momentum = momentum
    model.eval()
    return len(norms)


def build_model(variant, seed=0):
    import paddle
    from ppmatting.models.dim import dim_vgg16, dim_vgg16_paddleseg

    paddle.seed(seed)
    model = dim_vgg16() if variant == "mmediting" else dim_vgg16_paddleseg()
    calibrate_batch_norm(model, seed)
    model.eval()
    return model


def export_folder(model, with_onnx, portable=False):
    """Export ``model`` (and its ONNX file, as tools/export.py writes it) to a temporary folder;
    ``portable``: trace the Paddle graph with the ONNX graph's unpooling. Returns (folder, info)."""
    from ppmatting.deploy.export import export_static, write_onnx
    from ppmatting.deploy.info import build_deploy_dict, load_deploy_info, write_deploy_yaml
    from ppmatting.models.decoders.unpool import portable_unpooling

    folder = tempfile.mkdtemp(prefix="bench-infer-")
    if portable:
        with portable_unpooling(model):
            files = export_static(model, folder)
    else:
        files = export_static(model, folder)
    onnx_file = write_onnx(model, folder) if with_onnx else None
    write_deploy_yaml(folder, build_deploy_dict(model, files + ([onnx_file] if onnx_file else []),
                                                output_name=None, onnx_file=onnx_file))
    return folder, load_deploy_info(folder)


# ---- ONNX Runtime's reduced-precision files ------------------------------------------------------
def quantize_int8(model, onnx_file, folder):
    """Static int8 (QDQ) quantisation of the convolutions, calibrated on four synthetic 128 px
    inputs; returns the new file."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from ppmatting.deploy.export import check_inputs

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.feeds = [dict(zip(("img", "trimap"), check_inputs(model, 1, 128, 128, seed=s)))
                          for s in range(4)]

        def get_next(self):
            return self.feeds.pop() if self.feeds else None

    target = os.path.join(folder, "model_int8.onnx")
    quantize_static(onnx_file, target, Calibration(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return target


def convert_fp16(onnx_file, folder):
    """The model with float16 weights and activations (inputs and output stay float32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    target = os.path.join(folder, "model_fp16.onnx")
    onnx.save(convert_float_to_float16(onnx.load(onnx_file), keep_io_types=True), target)
    return target


# ---- engines -------------------------------------------------------------------------------------
# Each timed run happens in a child process (this script with --_engine), so that one engine's
# memory (weights, oneDNN kernels, ORT's arena: over 2 GB at 1024 px) is given back before the next
# is built, and a crash or a missing kernel in one engine is reported as that row's note.
def reduced_precision():
    """('bf16', None) when the CPU runs bf16 natively, else ('int8', why it cannot run)."""
    from ppmatting.deploy.predictor import cpu_supports_bf16

    usable, fast = cpu_supports_bf16()
    if usable and fast:
        return "bf16", None
    return "int8", ("Paddle Inference runs oneDNN int8 only on a quantised graph (PaddleSlim "
                    "PTQ/QAT); the float export is unchanged by enable_onednn_int8")


def engines_for(variant, model, args, folders):
    """[(label, spec or None, why skipped)]; ``spec`` tells :func:`run_engine` what to build."""
    reduced, reduced_skip = reduced_precision()
    folder, info = export_folder(model, with_onnx=not args.no_onnx)
    folders.append(folder)

    def paddle_spec(where, precision):
        return {"engine": "paddle", "folder": where, "precision": precision}

    engines = [(BASE, paddle_spec(folder, "fp32"), None),
               (f"paddle {reduced}", None if reduced_skip else paddle_spec(folder, reduced),
                reduced_skip)]
    if args.unpool_ab and variant == "mmediting":
        ab_folder, _ = export_folder(model, with_onnx=False, portable=True)
        folders.append(ab_folder)
        engines += [("paddle fp32 portable-unpool", paddle_spec(ab_folder, "fp32"), None),
                    (f"paddle {reduced} portable-unpool",
                     None if reduced_skip else paddle_spec(ab_folder, reduced), reduced_skip)]
    if args.no_onnx:
        return engines
    engines.append(("onnxruntime fp32", {"engine": "onnxruntime", "onnx": info.onnx_file}, None))
    for label, make in (("onnxruntime int8", lambda: quantize_int8(model, info.onnx_file, folder)),
                        ("onnxruntime fp16", lambda: convert_fp16(info.onnx_file, folder))):
        try:
            path = make()
        except Exception as err:  # a path this ORT / CPU cannot prepare: say why, keep going
            engines.append((label, None, f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"))
            continue
        engines.append((label, {"engine": "onnxruntime", "onnx": path}, None))
    return engines


def run_engine(spec, inputs_file, alpha_file, threads):
    """In the child: build the engine ``spec`` names, run it once to warm up (kernels and memory
    plans for this shape), time one run, save the alpha. Returns the seconds."""
    from ppmatting.deploy.info import load_deploy_info
    from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions

    data = np.load(inputs_file)
    img, trimap = data["img"], data["trimap"]
    if spec["engine"] == "paddle":
        engine = MattingPredictor(load_deploy_info(spec["folder"]),
                                  PredictorOptions(cpu_threads=threads,
                                                   precision=spec["precision"]))
        run = engine.run
    else:
        from ppmatting.deploy.export import onnx_runner

        run = onnx_runner(spec["onnx"], PredictorOptions(cpu_threads=threads))
    run(img, trimap)
    start, cpu_start = time.perf_counter(), time.process_time()
    alpha = run(img, trimap)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    np.save(alpha_file, alpha)
    return seconds, cpu_seconds


def time_engine(spec, inputs_file, work, threads):
    """Run :func:`run_engine` in a child process. Returns (seconds, cpu seconds, alpha) or raises
    RuntimeError with the child's last line."""
    import json
    import subprocess

    alpha_file = os.path.join(work, "alpha.npy")
    command = [sys.executable, os.path.abspath(__file__), "--_engine", json.dumps(spec),
               "--_inputs", inputs_file, "--_alpha", alpha_file]
    if threads:
        command += ["--threads", str(threads)]
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SECONDS ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {tail[:240]}")
    _, seconds, cpu_seconds = lines[-1].split()
    return float(seconds), float(cpu_seconds), np.load(alpha_file)


def bench_variant(variant, args, rows):
    from ppmatting.deploy.export import check_inputs, dygraph_alpha
    from ppmatting.deploy.parity import compare_alphas

    model = build_model(variant)
    folders = []
    try:
        engines = engines_for(variant, model, args, folders)
        if not args.no_dygraph:
            dygraph_alpha(model, *check_inputs(model, 1, 64, 64))  # first-call overhead
        for size in args.sizes:
            matmul = matmul_gflops()
            flops = conv_flops(model, size)
            img, trimap = check_inputs(model, 1, size, size, seed=size)
            inputs_file = os.path.join(folders[0], f"inputs_{size}.npz")
            np.savez(inputs_file, img=img, trimap=trimap)
            base = dict(variant=variant, size=size, gflop=flops / 1e9, matmul=matmul)
            best, cpu, alphas, failed = {}, {}, {}, {}
            for _ in range(max(1, args.rounds)):
                for label, spec, skip in engines:
                    if spec is None or label in failed:
                        continue
                    try:
                        seconds, cpu_seconds, alpha = time_engine(spec, inputs_file, folders[0],
                                                                  args.threads)
                    except RuntimeError as err:  # e.g. an ORT kernel missing on this CPU
                        failed[label] = str(err)
                        continue
                    if seconds < best.get(label, float("inf")):
                        best[label] = seconds
                    cpu[label] = min(cpu_seconds, cpu.get(label, float("inf")))
                    alphas[label] = alpha
            reference = alphas.get(BASE)
            if not args.no_dygraph:
                seconds, alpha = time_run(lambda: dygraph_alpha(model, img, trimap))
                rows.append(dict(base, path="dygraph", seconds=seconds,
                                 parity=compare_alphas(reference, alpha)))
            for label, spec, skip in engines:
                if label in best:
                    rows.append(dict(base, path=label, seconds=best[label], cpu=cpu[label],
                                     parity=compare_alphas(reference, alphas[label])))
                else:
                    rows.append(dict(base, path=label, seconds=None, parity=None,
                                     note=skip or failed.get(label)))
            print_rows([r for r in rows if r["variant"] == variant and r["size"] == size],
                       header=(size == args.sizes[0] and variant == args.variants[0]))
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def time_run(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def print_rows(rows, header=False):
    if header:
        print(f"{'variant':10s} {'size':>5s} {'engine':28s} {'s/image':>8s} {'cpu s':>7s} "
              f"{'speed-up':>16s} {'max|dA|':>9s} {'<=1/255':>9s} {'GFLOP':>6s} {'GFLOP/s':>8s} "
              f"{'matmul':>7s}")
    by_path = {row["path"]: row for row in rows}
    fp32 = by_path.get(BASE)
    for row in rows:
        if row["seconds"] is None:
            print(f"{row['variant']:10s} {row['size']:5d} {row['path']:28s} {'-':>8s}   "
                  f"skipped: {row.get('note')}", flush=True)
            continue
        if row["path"] == "dygraph":
            speed = "1.00x"
        elif row["path"] == BASE:
            dyg = by_path.get("dygraph")
            speed = f"{dyg['seconds'] / row['seconds']:.2f}x vs dyg" if dyg else "1.00x"
        else:
            speed = f"{fp32['seconds'] / row['seconds']:.2f}x vs fp32"
        parity = row["parity"]
        cpu = f"{row['cpu']:7.2f}" if row.get("cpu") is not None else f"{'-':>7s}"
        print(f"{row['variant']:10s} {row['size']:5d} {row['path']:28s} {row['seconds']:8.2f} {cpu} "
              f"{speed:>16s} {parity.max_diff:9.2e} {parity.share_within:9.4%} "
              f"{row['gflop']:6.0f} {row['gflop'] / row['seconds']:8.1f} {row['matmul']:7.1f}",
              flush=True)


def goals(rows):
    lines = []
    groups = {}
    for row in rows:
        groups.setdefault((row["variant"], row["size"]), {})[row["path"]] = row
    for (variant, size), paths in groups.items():
        fp32 = paths[BASE]
        dyg = paths.get("dygraph")
        if dyg:
            ratio = dyg["seconds"] / fp32["seconds"]
            lines.append(f"{variant} {size}px: Paddle fp32 {ratio:.2f}x faster than dygraph "
                         f"(goal >= {GOAL_PREDICTOR_SPEEDUP:g}x): "
                         f"{'met' if ratio >= GOAL_PREDICTOR_SPEEDUP else 'NOT met'}")
        for path in ("paddle bf16", "paddle int8"):
            low = paths.get(path)
            if low and low["seconds"]:
                ratio = fp32["seconds"] / low["seconds"]
                ok_speed = ratio >= GOAL_REDUCED_SPEEDUP
                ok_alpha = low["parity"].max_diff <= GOAL_REDUCED_ALPHA
                lines.append(f"{variant} {size}px: {path} {ratio:.2f}x faster than fp32 (goal >= "
                             f"{GOAL_REDUCED_SPEEDUP:g}x): {'met' if ok_speed else 'NOT met'}; "
                             f"max alpha difference {low['parity'].max_diff:.2e} (goal <= "
                             f"{GOAL_REDUCED_ALPHA:g}): {'met' if ok_alpha else 'NOT met'}")
        ort = paths.get("onnxruntime fp32")
        if ort and ort["seconds"]:
            equal = ort["parity"].ok
            faster = "onnxruntime" if ort["seconds"] < fp32["seconds"] else "paddle"
            lines.append(f"{variant} {size}px: onnxruntime fp32 {fp32['seconds'] / ort['seconds']:.2f}x "
                         f"the speed of Paddle fp32, alpha {'equal' if equal else 'NOT equal'} by "
                         f"compare_alphas ({ort['parity'].describe()}); faster fp32 engine: "
                         f"{faster}")
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args._engine:
        import json
        seconds, cpu_seconds = run_engine(json.loads(args._engine), args._inputs, args._alpha,
                                          args.threads)
        print(f"SECONDS {seconds} {cpu_seconds}")
        return 0
    import paddle

    from ppmatting.deploy.predictor import cpu_supports_bf16

    usable, fast = cpu_supports_bf16()
    versions = f"Paddle {paddle.__version__}"
    if not args.no_onnx:
        import onnxruntime
        versions += f", onnxruntime {onnxruntime.__version__}"
    print(f"{versions}, {os.cpu_count()} CPU(s), threads {args.threads or os.cpu_count()}, "
          f"AVX512-BF16 {'yes' if fast else 'no'}, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; random weights (alpha differences "
          f"may not represent trained weights)", flush=True)
    rows = []
    for variant in args.variants:
        bench_variant(variant, args, rows)
    print()
    for line in goals(rows):
        print(line)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
