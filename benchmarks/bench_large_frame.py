"""Classical matting on a synthetic 3840x2160 frame: time, memory estimate and peak memory.

The frame is a smooth random colour field; the trimap is a disc of foreground with a wavy
unknown ring about 100 px wide (435k unknown pixels). Each method runs in its own process so
that the peak resident memory (``ru_maxrss``) is that method's alone.

Usage: python benchmarks/bench_large_frame.py [--methods cf knn]
"""
import argparse
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"cf": "ClosedFormMatting", "knn": "KNNMatting"}


def make_frame(height=2160, width=3840, ring_half_width=49.5):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.random((height // 8, width // 8, 3)).astype(np.float32),
                             (0, 0), 2)
    image = cv2.resize(image, (width, height))
    image = (image - image.min()) / (image.max() - image.min())
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height / 2, xx - width / 2)
    angle = np.arctan2(yy - height / 2, xx - width / 2)
    trimap = np.zeros((height, width), np.uint8)
    trimap[radius < 700] = 255
    trimap[np.abs(radius - 700) < ring_half_width + 4 * np.sin(angle * 40)] = 128
    return image.astype(np.float64), trimap


def run_one(method):
    """In this process: matte the frame with ``method``; print one table row."""
    sys.path.insert(0, ROOT)
    from ppmatting.ml import methods as classical

    image, trimap = make_frame()
    model = getattr(classical, MODELS[method])()
    start = time.perf_counter()
    model.predict(image, trimap)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    info = model.last_info
    estimate_gib = info["estimated_bytes"] / 1024 ** 3
    print(f"{method:<6} {int((trimap == 128).sum()):>9} {estimate_gib:>13.1f} {peak_gib:>13.1f} "
          f"{seconds:>9.1f}  {info.get('solver', '-')}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["cf"], choices=list(MODELS))
    parser.add_argument("--one", choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one)
        return
    print(f"{'method':<6} {'unknown':>9} {'estimate GiB':>13} {'peak RSS GiB':>13} "
          f"{'seconds':>9}  solver")
    for method in args.methods:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--one", method], check=True)


if __name__ == "__main__":
    main()
