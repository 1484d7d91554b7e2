"""Plot a training run's loss terms and evaluation SAD against the iteration (a PNG).

    python tools/plot_train_log.py --save_dir output/dim-vgg16-demo --out docs/images/train_dim_demo.png

Reads ``train_log.jsonl`` and ``eval_log.jsonl`` that tools/train.py writes into its --save_dir; for
a run of several stages, those of every ``stageN/`` folder, placed one after the other (the x axis
is the iteration counted over the stages, ``global_iteration``) with a line where each stage
begins. Drawn with OpenCV (no plotting library needed): the left panel holds every loss term, the
right one SAD (and MSE x 100 when present).
"""
import argparse
import json
import os
import re
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


def read_run(save_dir):
    """``(train_records, eval_records, stage_starts)`` of a training folder. Records get ``x``:
    the iteration, or over the stages of a staged run its ``global_iteration``; ``stage_starts``
    is ``[(x, 'stage N')]`` (empty for a one-stage run)."""
    stages = sorted((int(m.group(1)), name) for name in os.listdir(save_dir)
                    for m in [re.match(r"^stage([1-9][0-9]*)$", name)]
                    if m and os.path.isfile(os.path.join(save_dir, name, "train_log.jsonl")))
    if not stages:
        train = read_records(os.path.join(save_dir, "train_log.jsonl"))
        evals = read_records(os.path.join(save_dir, "eval_log.jsonl"))
        for record in train + evals:
            record["x"] = record["iteration"]
        return train, evals, []
    train, evals, starts = [], [], []
    for number, name in stages:
        stage_train = read_records(os.path.join(save_dir, name, "train_log.jsonl"))
        stage_evals = read_records(os.path.join(save_dir, name, "eval_log.jsonl"))
        for record in stage_train + stage_evals:
            record["x"] = record.get("global_iteration", record["iteration"])
            record.setdefault("stage", number)
        if stage_train:
            offset = stage_train[0]["x"] - stage_train[0]["iteration"]
            starts.append((offset, f"stage {number}"))
        train += stage_train
        evals += stage_evals
    return train, evals, starts


def segments_by_stage(records, key):
    """``[(xs, ys)]`` of ``key``, one segment per stage that logged it (no line across stages)."""
    segments = {}
    for record in records:
        if key in record:
            xs, ys = segments.setdefault(record.get("stage", 0), ([], []))
            xs.append(record["x"])
            ys.append(record[key])
    return [segments[k] for k in sorted(segments)]


def nice_ticks(low, high, count=5):
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = np.floor(low / step) * step
    end = np.ceil(high / step) * step
    return [float(v) for v in np.arange(start, end + step * 0.5, step)]


def draw_panel(canvas, origin_x, title, series, x_label, stage_starts=()):
    """series: [(name, [(xs, ys), ...])], one line per segment; stage_starts: [(x, label)] drawn as
    vertical lines. Draws axes, ticks, lines and a legend into ``canvas`` (RGB)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    left, top = origin_x + MARGIN, MARGIN // 2 + 10
    width, height = PANEL_W - MARGIN - 15, PANEL_H - MARGIN - 30
    xs_all = np.concatenate([np.asarray(xs, float) for _, segs in series for xs, _ in segs]
                            + [np.asarray([x for x, _ in stage_starts], float)])
    ys_all = np.concatenate([np.asarray(ys, float) for _, segs in series for _, ys in segs])
    x_ticks = nice_ticks(float(xs_all.min()), float(xs_all.max()))
    y_ticks = nice_ticks(0.0, float(ys_all.max()) * (1.1 + 0.1 * len(series)))  # room for the legend
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
    for x, label in stage_starts:
        px, _ = to_px(x, y0)
        cv2.line(canvas, (px, top), (px, top + height), (120, 120, 120), 1, cv2.LINE_AA)
        cv2.putText(canvas, label, (px + 3, top + height - 6), font, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    for k, (name, segments) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        for xs, ys in segments:
            points = np.array([to_px(x, y) for x, y in zip(xs, ys)], np.int32)
            if len(points) > 1:
                cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
            for point in points if len(points) < 30 else []:
                cv2.circle(canvas, tuple(int(v) for v in point), 3, colour, -1, cv2.LINE_AA)
    # the legend on a white box, over the lines
    cv2.rectangle(canvas, (left + width - 156, top + 2), (left + width - 2, top + 8 + 16 * len(series)),
                  (255, 255, 255), -1)
    cv2.rectangle(canvas, (left + width - 156, top + 2), (left + width - 2, top + 8 + 16 * len(series)),
                  (200, 200, 200), 1)
    for k, (name, _) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        ly = top + 16 + 16 * k
        cv2.line(canvas, (left + width - 150, ly - 4), (left + width - 130, ly - 4), colour, 2)
        cv2.putText(canvas, name, (left + width - 125, ly), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)


def plot(train_records, eval_records, title="", stage_starts=()):
    """RGB uint8 image with one or two panels; records as :func:`read_run` returns them."""
    if not train_records:
        raise InputError("no training records to plot (train_log.jsonl is missing or empty)")
    for record in train_records + eval_records:
        record.setdefault("x", record["iteration"])
    panels = 2 if eval_records else 1
    canvas = np.full((PANEL_H + 20, PANEL_W * panels, 3), 255, np.uint8)
    keys = []
    for record in train_records:
        keys += [k for k in record if k.endswith("loss") and k not in keys]
    series = [(k, segments_by_stage(train_records, k)) for k in keys]
    x_label = "iteration (over the stages)" if stage_starts else "iteration"
    draw_panel(canvas, 0, f"{title} training loss (mean over each log window)".strip(), series,
               x_label, stage_starts)
    if eval_records:
        eseries = [("SAD", segments_by_stage(eval_records, "sad"))]
        if all("mse" in r for r in eval_records):
            scaled = [dict(r, mse100=100 * r["mse"]) for r in eval_records]
            eseries.append(("MSE x 100", segments_by_stage(scaled, "mse100")))
        draw_panel(canvas, PANEL_W, "validation (lower is better)", eseries, x_label, stage_starts)
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
    train_records, eval_records, stage_starts = read_run(args.save_dir)
    image = plot(train_records, eval_records, args.title, stage_starts)
    io.write_image(args.out, image)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
