"""Plot a training run's loss terms and evaluation SAD against the iteration (a PNG).

    python tools/plot_train_log.py --save_dir output/stage1 --out docs/images/train_stage1_demo.png

Reads ``train_log.jsonl`` and ``eval_log.jsonl`` that tools/train.py writes into its --save_dir.
Drawn with OpenCV (no plotting library needed): the left panel holds every loss term, the right
one SAD (and MSE x 100 when present).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ppmatting.utils import io  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]  # RGB
PANEL_W, PANEL_H, MARGIN = 520, 360, 60


def read_records(path):
    """JSON-lines records, the last one per iteration (a resumed run may repeat iterations)."""
    if not os.path.isfile(path):
        return []
    by_iteration = {}
    with open(path, "r", encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            by_iteration[record["iteration"]] = record
    return [by_iteration[k] for k in sorted(by_iteration)]


def nice_ticks(low, high, count=5):
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = np.floor(low / step) * step
    end = np.ceil(high / step) * step
    return [float(v) for v in np.arange(start, end + step * 0.5, step)]


def draw_panel(canvas, origin_x, title, series, x_label):
    """series: [(name, xs, ys)]; draws axes, ticks, lines and a legend into ``canvas`` (RGB)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    left, top = origin_x + MARGIN, MARGIN // 2 + 10
    width, height = PANEL_W - MARGIN - 15, PANEL_H - MARGIN - 30
    xs_all = np.concatenate([np.asarray(s[1], float) for s in series])
    ys_all = np.concatenate([np.asarray(s[2], float) for s in series])
    x_ticks = nice_ticks(float(xs_all.min()), float(xs_all.max()))
    y_ticks = nice_ticks(0.0, float(ys_all.max()) * 1.05)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def to_px(x, y):
        return (int(round(left + (x - x0) / (x1 - x0) * width)),
                int(round(top + height - (y - y0) / (y1 - y0) * height)))

    cv2.putText(canvas, title, (left, top - 8), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for x in x_ticks:
        px, _ = to_px(x, y0)
        cv2.line(canvas, (px, top), (px, top + height), (230, 230, 230), 1)
        cv2.putText(canvas, f"{x:g}", (px - 12, top + height + 16), font, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    for y in y_ticks:
        _, py = to_px(x0, y)
        cv2.line(canvas, (left, py), (left + width, py), (230, 230, 230), 1)
        cv2.putText(canvas, f"{y:.3g}", (origin_x + 8, py + 4), font, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (left, top), (left + width, top + height), (0, 0, 0), 1)
    cv2.putText(canvas, x_label, (left + width // 2 - 25, top + height + 34), font, 0.42, (0, 0, 0), 1,
                cv2.LINE_AA)
    for k, (name, xs, ys) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        points = np.array([to_px(x, y) for x, y in zip(xs, ys)], np.int32)
        if len(points) > 1:
            cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        for point in points if len(points) < 30 else []:
            cv2.circle(canvas, tuple(int(v) for v in point), 3, colour, -1, cv2.LINE_AA)
        ly = top + 14 + 16 * k
        cv2.line(canvas, (left + width - 150, ly - 4), (left + width - 130, ly - 4), colour, 2)
        cv2.putText(canvas, name, (left + width - 125, ly), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)


def plot(train_records, eval_records, title=""):
    """RGB uint8 image with one or two panels."""
    if not train_records:
        raise InputError("no training records to plot (train_log.jsonl is missing or empty)")
    panels = 2 if eval_records else 1
    canvas = np.full((PANEL_H + 20, PANEL_W * panels, 3), 255, np.uint8)
    xs = [r["iteration"] for r in train_records]
    keys = [k for k in train_records[0] if k.endswith("loss")]
    series = [(k, xs, [r[k] for r in train_records]) for k in keys]
    draw_panel(canvas, 0, f"{title} training loss (mean over each log window)".strip(), series, "iteration")
    if eval_records:
        ex = [r["iteration"] for r in eval_records]
        eseries = [("SAD", ex, [r["sad"] for r in eval_records])]
        if all("mse" in r for r in eval_records):
            eseries.append(("MSE x 100", ex, [100 * r["mse"] for r in eval_records]))
        draw_panel(canvas, PANEL_W, "validation (lower is better)", eseries, "iteration")
    return canvas


@run_cli
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save_dir", required=True, help="a tools/train.py --save_dir")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    io.check_output_file(args.out, "--out")
    if not os.path.isdir(args.save_dir):
        raise InputError(f"{args.save_dir}: folder not found")
    image = plot(read_records(os.path.join(args.save_dir, "train_log.jsonl")),
                 read_records(os.path.join(args.save_dir, "eval_log.jsonl")), args.title)
    io.write_image(args.out, image)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
