"""Time ppmatting's metrics against the straightforward reference implementations.

    python benchmarks/bench_metrics.py [--size 2048] [--unknown 0.30] [--repeat 3] [--seed 0]

Makes a synthetic size x size matte (a soft-edged blob with a noisy, hair-like transition band;
the trimap's unknown region covers about ``--unknown`` of the image), a prediction that differs
from it by smooth noise, speckles and a few missing/extra blobs (so Conn has several components),
then scores it with the fast metrics (``ppmatting.metrics``) and with
``ppmatting.metrics.reference`` in the same run. Prints seconds per metric (best of ``--repeat``
for both), the speed ratio and the largest difference in value; the last row times all four fast
metrics from the raw arrays (prepare included) against the sum of the four reference functions.
Exit code 1 if any value differs by more than 1e-6.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _timing, also when imported

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from _timing import best_time  # noqa: E402  (beside this script)
from ppmatting.metrics import build_metrics, prepare_pair  # noqa: E402
from ppmatting.metrics.reference import REFERENCE_METRICS, reference_prepare  # noqa: E402

TOLERANCE = 1e-6


def synthetic_case(size=2048, unknown_fraction=0.30, seed=0):
    """Return (pred01 float32, gt_u8 uint8, trimap_u8 uint8), all size x size, with about
    ``unknown_fraction`` of the pixels unknown (trimap == 128)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = size / 2.0
    # A wobbly disc: radius modulated by angle, so the edge is not a perfect circle.
    angle = np.arctan2(yy - centre, xx - centre)
    radius = size * (0.30 + 0.04 * np.sin(5 * angle) + 0.02 * np.cos(13 * angle))
    dist = np.hypot(yy - centre, xx - centre) - radius
    # Transition width: wide where the noise says "hair", narrow elsewhere.
    noise = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), size / 200.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    # Band half-width chosen so the unknown band (|dist| <= band + margin, margin = 0.15 band)
    # covers the wanted share: area ~ circumference * 2 * 1.15 * band.
    circumference = 2 * np.pi * size * 0.30
    margin_share = 0.15
    band = unknown_fraction * size * size / circumference / (2.0 * (1.0 + margin_share))
    width = band * (0.4 + 0.6 * noise)
    gt01 = np.clip(0.5 - dist / (2 * width), 0.0, 1.0)
    strands = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 1.5)
    soft = (gt01 > 0) & (gt01 < 1)
    gt01[soft] = np.clip(gt01[soft] + (strands[soft] - 0.5) * 1.5, 0.0, 1.0)
    gt_u8 = np.round(gt01 * 255).astype(np.uint8)

    trimap = np.full((size, size), 128, dtype=np.uint8)
    margin = band * margin_share
    trimap[dist < -band - margin] = 255
    trimap[dist > band + margin] = 0

    smooth = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 6)
    pred01 = gt01 + 0.4 * smooth / (np.abs(smooth).max() + 1e-6)
    pred01 += (rng.random((size, size)) < 0.002) * 0.8          # speckles
    for _ in range(12):                                         # missing and extra blobs
        cy, cx = rng.integers(0, size, 2)
        r = int(rng.integers(size // 100, size // 30))
        cv2.circle(pred01, (int(cx), int(cy)), r, float(rng.integers(0, 2)), -1)
    return np.clip(pred01, 0.0, 1.0).astype(np.float32), gt_u8, trimap


def _prepared(pred01, gt_u8, trimap_u8):
    pair = prepare_pair(pred01, gt_u8, trimap_u8)
    pair.unknown_index  # noqa: B018 - build the cached unknown mask and index now
    return pair


def run(size, unknown_fraction, repeat, seed):
    """Returns (rows, one-pass seconds, unknown share). A row: (name, fast s, reference s,
    |fast - reference|, fast value). Times are the best of ``repeat``; "prepare" is forcing,
    quantising and finding U (shared by the four fast metrics; each reference function does its
    own, as a plain implementation would)."""
    pred01, gt_u8, trimap_u8 = synthetic_case(size, unknown_fraction, seed)
    unknown_share = float((trimap_u8 == 128).mean())
    metrics = build_metrics()
    prep_time, pair = best_time(lambda: _prepared(pred01, gt_u8, trimap_u8), repeat)
    ref_prep_time, _ = best_time(lambda: reference_prepare(pred01, trimap_u8), repeat)
    rows = [("prepare", prep_time, ref_prep_time, 0.0, None)]
    for name, metric in metrics.items():
        fast_time, fast_value = best_time(lambda: metric(pair), repeat)
        ref_time, ref_value = best_time(
            lambda: REFERENCE_METRICS[name](pred01, gt_u8, 255, trimap_u8), repeat)
        rows.append((name, fast_time, ref_time, abs(fast_value - ref_value), fast_value))

    def one_pass():
        fresh = prepare_pair(pred01, gt_u8, trimap_u8)
        return {name: metric(fresh) for name, metric in metrics.items()}

    all_fast, _ = best_time(one_pass, repeat)
    return rows, all_fast, unknown_share


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--unknown", type=float, default=0.30, help="target unknown share")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows, all_fast, unknown_share = run(args.size, args.unknown, args.repeat, args.seed)
    print(f"matte {args.size}x{args.size}, unknown pixels {unknown_share:.1%}, "
          f"cv2 threads {cv2.getNumThreads()}, best of {args.repeat} runs each")
    print("| metric | fast (s) | reference (s) | speed-up | max abs diff | value |")
    print("|---|---:|---:|---:|---:|---:|")
    total_ref = sum(ref for name, _, ref, _, _ in rows if name != "prepare")
    worst = 0.0
    for name, fast, ref, diff, value in rows:
        worst = max(worst, diff)
        shown = "" if value is None else f"{value:.6f}"
        print(f"| {name} | {fast:.3f} | {ref:.3f} | {ref / max(fast, 1e-9):.1f}x | {diff:.1e} | {shown} |")
    print(f"| **all four, from the raw arrays** | {all_fast:.3f} | {total_ref:.3f} | "
          f"{total_ref / all_fast:.1f}x | {worst:.1e} | |")
    if worst > TOLERANCE:
        print(f"FAIL: values differ by {worst:.3g} > {TOLERANCE}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
