"""DIM-VGG16 cost on CPU: parameters, GFLOPs and seconds per image, both variants, stages 1 and 3.

    python benchmarks/bench_dim.py                       # 512 and 1024 px, one timed run each
    python benchmarks/bench_dim.py --sizes 320 --repeat 3

GFLOPs count the convolutions only (every other op is < 0.1% here), as 2 x multiply-accumulates,
measured with forward hooks on the actual input size. Time is dygraph eval-mode forward on random
input (weights do not change the cost), median of ``--repeat`` runs after ``--warmup`` runs
(``--warmup 0`` halves the wall time at 1024 px; the first run is then timed too).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024],
                        help="square input sizes in pixels (default: 512 1024)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per size (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--variants", nargs="+", default=["mmediting", "paddleseg"],
                        choices=["mmediting", "paddleseg"])
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 3], choices=[1, 3],
                        help="1: encoder-decoder; 3: with the refiner")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for Paddle (default: all cores)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or any(size < 32 for size in args.sizes):
        parser.error("--repeat must be >= 1, --warmup >= 0 and every size >= 32")
    return args


def conv_macs(model, run):
    """Multiply-accumulates of every Conv2D during ``run()``."""
    import numpy as np
    import paddle

    total = [0]

    def hook(layer, inputs, output):
        kernel = int(np.prod(layer.weight.shape[1:]))  # (Cin / groups) * kh * kw
        total[0] += int(np.prod(output.shape)) * kernel

    handles = [layer.register_forward_post_hook(hook) for layer in model.sublayers()
               if isinstance(layer, paddle.nn.Conv2D)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def main(argv=None):
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before Paddle starts its thread pool
    import numpy as np
    import paddle

    from ppmatting.models.dim import dim_vgg16, dim_vgg16_paddleseg

    paddle.set_device("cpu")
    rows = []
    for variant in args.variants:
        for stage in args.stages:
            build = dim_vgg16 if variant == "mmediting" else dim_vgg16_paddleseg
            model = build(refiner=stage == 3)
            model.eval()
            params = sum(int(np.prod(p.shape)) for p in model.parameters())
            for size in args.sizes:
                rng = np.random.default_rng(0)
                img = paddle.to_tensor(rng.standard_normal((1, 3, size, size)).astype(np.float32))
                trimap = paddle.to_tensor(
                    rng.choice([0.0, 128.0, 255.0], (1, 1, size, size)).astype(np.float32))

                def run():
                    with paddle.no_grad():
                        model(img, trimap)["alpha"].numpy()  # .numpy() waits for the result

                def timed(function):
                    start = time.perf_counter()
                    function()
                    return time.perf_counter() - start

                times = []
                if args.warmup:
                    macs = conv_macs(model, run)
                    for _ in range(args.warmup - 1):
                        run()
                else:  # the counting run is the first timed run (hooks cost microseconds)
                    result = {}
                    times.append(timed(lambda: result.update(macs=conv_macs(model, run))))
                    macs = result["macs"]
                while len(times) < args.repeat:
                    times.append(timed(run))
                rows.append((variant, stage, params, size, 2 * macs / 1e9, float(np.median(times))))
                print(f"  {variant} stage {stage} {size}x{size}: {rows[-1][-1]:.2f} s", flush=True)

    print(f"\nDIM-VGG16 on CPU ({args.threads} threads, dygraph, median of {args.repeat}, "
          f"{args.warmup} warm-up)")
    header = f"{'variant':<10} {'stage':>5} {'params':>12} {'size':>10} {'GFLOPs':>9} {'s/image':>8}"
    print(header)
    print("-" * len(header))
    for variant, stage, params, size, gflops, seconds in rows:
        print(f"{variant:<10} {stage:>5} {params:>12,} {f'{size}x{size}':>10} {gflops:>9.1f} "
              f"{seconds:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
