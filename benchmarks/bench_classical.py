"""ppmatting's classical matting against pymatting 1.1.16 on the same images, in one run.

For each method pair (ppmatting ClosedFormMatting vs pymatting ``estimate_alpha_cf``, KNNMatting vs
``estimate_alpha_knn``; ``--methods`` adds learning-based, random walk and large kernel) it prints
the median seconds per image of each, their ratio, and both mean SADs (SAD per the benchmark:
prediction forced to the trimap, quantised to 8 bits, sum |p - g| over trimap == 128, / 1000;
``ppmatting.metrics``).

Image sets: the bundled val set (data/matting_demo/val.txt) and ../shared/data/alphamatting-dev
(five real photographs, skipped when absent, ``--shared_dir`` to name it elsewhere; trimap and
alpha read as grayscale).

OpenBLAS is pinned to one thread before numpy loads (both libraries alike): on a 2-core machine
its threads only spin on the vector dot products inside conjugate gradients, which made pymatting's
``cg`` up to 10x slower whenever another process was busy. Each library runs once on a small image
first so that numba's compile/cache load is not timed. Runs alternate ppmatting / pymatting per
image, so load from other processes hits both.

Usage: python benchmarks/bench_classical.py [--methods cf knn lbdm rw lkm] [--repeat N]
       [--shared_dir DIR]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from ppmatting.metrics import compute_metrics  # noqa: E402
from ppmatting.ml import methods as classical  # noqa: E402
from ppmatting.utils.io import read_alpha, read_image, read_trimap  # noqa: E402

SHARED_SET = os.path.join(os.path.dirname(ROOT), "shared", "data", "alphamatting-dev")
VAL_LIST = os.path.join(ROOT, "data", "matting_demo", "val.txt")

# method key -> (ppmatting class, pymatting function name)
METHODS = {
    "cf": (classical.ClosedFormMatting, "estimate_alpha_cf"),
    "knn": (classical.KNNMatting, "estimate_alpha_knn"),
    "lbdm": (classical.LearningBasedMatting, "estimate_alpha_lbdm"),
    "rw": (classical.RandomWalkMatting, "estimate_alpha_rw"),
    "lkm": (classical.LargeKernelMatting, "estimate_alpha_lkm"),
}


def load_val_set():
    if not os.path.isfile(VAL_LIST):
        return []
    folder = os.path.dirname(VAL_LIST)
    items = []
    with open(VAL_LIST, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 3:
                image, alpha, trimap = (os.path.join(folder, p) for p in parts[:3])
                items.append((os.path.basename(image), image, alpha, trimap))
    return items


def load_shared_set(folder=SHARED_SET):
    if not os.path.isdir(os.path.join(folder, "image")):
        return []
    names = sorted(os.listdir(os.path.join(folder, "image")))
    return [(name, os.path.join(folder, "image", name), os.path.join(folder, "alpha", name),
             os.path.join(folder, "trimap", name)) for name in names if name.endswith(".png")]


def sad(pred01, gt01, trimap_u8):
    return compute_metrics(pred01, gt01, trimap_u8, metrics=["sad"])["sad"]


def timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def warm_up(pymatting):
    """Load numba's cached machine code (or compile it) outside the timed runs."""
    rng = np.random.default_rng(0)
    image = rng.random((40, 40, 3))
    trimap = np.zeros((40, 40), np.uint8)
    trimap[:, 20:] = 255
    trimap[:, 15:25] = 128
    for model_class, pym_name in METHODS.values():
        kwargs = {"radius": 2} if model_class is classical.LargeKernelMatting else {}
        model_class(**kwargs).predict(image, trimap)
        lkm_kwargs = {"laplacian_kwargs": {"radius": 2}} if pym_name == "estimate_alpha_lkm" else {}
        getattr(pymatting, pym_name)(image, trimap / 255.0, **lkm_kwargs)


def run_set(label, items, methods, repeat, pymatting):
    if not items:
        print(f"\n== {label}: not found, skipped")
        return
    print(f"\n== {label}: {len(items)} images")
    data = []
    for name, image_path, alpha_path, trimap_path in items:
        data.append((name, read_image(image_path).astype(np.float64), read_alpha(alpha_path),
                     read_trimap(trimap_path)))
    print(f"{'method':<6} {'ppm s/img':>10} {'pym s/img':>10} {'speed-up':>9} "
          f"{'ppm SAD':>9} {'pym SAD':>9} {'SAD diff':>9}")
    for key in methods:
        model_class, pym_name = METHODS[key]
        model = model_class()
        pym_function = getattr(pymatting, pym_name)
        ours_t, theirs_t, ours_s, theirs_s = [], [], [], []
        for name, image, gt, trimap in data:
            best_ours = best_theirs = float("inf")
            try:
                for _ in range(repeat):
                    ours, seconds = timed(model.predict, image, trimap)
                    best_ours = min(best_ours, seconds)
                    theirs, seconds = timed(pym_function, image,
                                            trimap.astype(np.float64) / 255.0)
                    best_theirs = min(best_theirs, seconds)
            except ValueError as err:  # pymatting's trimap_split on one-sided trimaps
                print(f"   {key:<4} {name:<16} not compared: pymatting raised "
                      f"'{err}'; ppmatting: {model.last_info.get('note', 'solved')}")
                continue
            ours_t.append(best_ours)
            theirs_t.append(best_theirs)
            ours_s.append(sad(ours, gt, trimap))
            theirs_s.append(sad(np.clip(theirs, 0, 1), gt, trimap))
            info = model.last_info
            print(f"   {key:<4} {name:<16} ppm {best_ours:7.2f}s SAD {ours_s[-1]:8.3f} "
                  f"[{info.get('solver', '-')}, {info.get('iterations', 0)} it] | pym "
                  f"{best_theirs:7.2f}s SAD {theirs_s[-1]:8.3f}", flush=True)
        ours_med, theirs_med = statistics.median(ours_t), statistics.median(theirs_t)
        ours_sad, theirs_sad = float(np.mean(ours_s)), float(np.mean(theirs_s))
        diff = 100.0 * (ours_sad - theirs_sad) / theirs_sad if theirs_sad else 0.0
        print(f"{key:<6} {ours_med:10.3f} {theirs_med:10.3f} {theirs_med / ours_med:8.2f}x "
              f"{ours_sad:9.3f} {theirs_sad:9.3f} {diff:+8.2f}%", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["cf", "knn"], choices=list(METHODS))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per image and library; the fastest counts (default 1)")
    parser.add_argument("--shared_dir", default=SHARED_SET,
                        help="the alphamatting-dev folder (image/, alpha/, trimap/)")
    args = parser.parse_args()
    import pymatting  # noqa: E402  (numba; loaded here, outside ppmatting)

    warm_up(pymatting)
    print(f"pymatting {pymatting.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, {os.cpu_count()} cores")
    run_set("bundled val set (data/matting_demo/val.txt)", load_val_set(), args.methods,
            args.repeat, pymatting)
    run_set(f"alphamatting-dev ({args.shared_dir})", load_shared_set(args.shared_dir), args.methods,
            args.repeat, pymatting)


if __name__ == "__main__":
    main()
