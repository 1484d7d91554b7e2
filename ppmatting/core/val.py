"""The evaluation loop behind ``tools/val.py`` and the trainer's ``--do_eval``.

Two ways to get the alphas that are scored, one way to score them:

* :func:`evaluate` runs a zoo model (``model.predict(image01, trimap_u8) -> alpha01``) over a
  validation set: a list of :class:`EvalItem` (from :func:`read_val_list`), a ``MattingDataset``
  in val mode, or any iterable of ``Sample``-like objects (``image``, ``alpha``, ``trimap``,
  ``name``).
* :func:`evaluate_predictions` scores alphas already saved as images in a folder, matched to the
  validation items by name (:func:`find_prediction`), so other tools' results get the same numbers.

Every alpha goes through ``ppmatting.metrics.prepare_pair`` (forced to the trimap, quantised to
8 bits; trimap generated from the ground truth when missing) and the chosen metrics. One bad
sample is recorded with a one-line reason and the others continue. Rows come back in input order
whatever ``num_workers`` is, so the numbers are deterministic.
"""
import csv
import io as _io
import json
import os
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ppmatting.metrics import (DEFAULT_TRIMAP_RADIUS, METRIC_NAMES, build_metrics, generated_trimap,
                               ground_truth_to_code, prepare_pair, score_pair, trimap_rule_text)
from ppmatting.utils import io
from ppmatting.utils.errors import InputError, PPMattingError

CSV_COLUMNS = ("name", "height", "width", "unknown_pixels", "sad", "mse", "grad", "conn", "seconds")
PREDICTION_NOTE = ("predictions were forced to the trimap in known regions (0 where trimap == 0, "
                   "1 where trimap == 255) and quantised to 8 bits before scoring; scored pixels: "
                   "trimap == 128")
METRIC_TITLES = {"sad": "SAD", "mse": "MSE", "grad": "Grad", "conn": "Conn"}
# Saved prediction names tried for a sample called NAME, in order (tools/predict.py writes
# NAME_alpha.png).
PREDICTION_SUFFIXES = ("", "_alpha")


# ---- validation items -----------------------------------------------------------------------------
@dataclass
class EvalItem:
    """One validation sample on disk. ``image_path`` is needed only to run a model;
    ``trimap_path`` None means "generate one from the ground truth"."""
    name: str
    alpha_path: str
    image_path: Optional[str] = None
    trimap_path: Optional[str] = None


def _check_unique_names(items, source):
    seen = {}
    for index, item in enumerate(items):
        if item.name in seen:
            raise InputError(f"{source}: entries {seen[item.name] + 1} and {index + 1} are both named "
                             f"'{item.name}'; results are saved and matched by name, so image file "
                             f"names must be unique")
        seen[item.name] = index
    return items


def read_val_list(dataset_root, val_file):
    """Read a list of ``image alpha [trimap]`` lines (paths relative to ``dataset_root``; blank
    lines and ``#`` comments skipped). ``val_file`` is used as given if it exists, else relative to
    ``dataset_root``. Names are the image file stems. Files are not opened here: a missing one
    fails only its own sample."""
    from ppmatting.datasets.matting_dataset import read_list_file

    if not os.path.isdir(dataset_root):
        raise InputError(f"{dataset_root}: dataset root folder not found")
    list_path = val_file if os.path.isfile(val_file) else os.path.join(dataset_root, val_file)
    if not os.path.isfile(list_path):
        raise InputError(f"{val_file}: list file not found (also looked in {dataset_root})")
    items = []
    for columns in read_list_file(list_path, min_columns=2, max_columns=3):
        paths = [c if os.path.isabs(c) else os.path.join(dataset_root, c) for c in columns]
        items.append(EvalItem(name=os.path.splitext(os.path.basename(columns[0]))[0],
                              image_path=paths[0], alpha_path=paths[1],
                              trimap_path=paths[2] if len(paths) > 2 else None))
    return _check_unique_names(items, list_path)


def items_from_dataset(dataset):
    """EvalItems from a dataset that exposes its file list (``MattingDataset`` with
    ``list_format: image``), or None when it does not."""
    records = getattr(dataset, "records", None)
    if not records or not all(isinstance(r, dict) and "image" in r and "alpha" in r for r in records):
        return None
    items = [EvalItem(name=os.path.splitext(os.path.basename(r["image"]))[0], image_path=r["image"],
                      alpha_path=r["alpha"], trimap_path=r.get("trimap")) for r in records]
    return _check_unique_names(items, getattr(dataset, "list_path", type(dataset).__name__))


def find_prediction(pred_dir, name):
    """Path of the saved prediction for sample ``name`` in ``pred_dir``: NAME.png, NAME_alpha.png,
    then the other image extensions. Raises a one-line InputError listing what was tried."""
    tried = []
    extensions = (".png",) + tuple(e for e in io.IMAGE_EXTENSIONS if e != ".png")
    for extension in extensions:
        for suffix in PREDICTION_SUFFIXES:
            candidate = os.path.join(pred_dir, name + suffix + extension)
            if os.path.isfile(candidate):
                return candidate
            tried.append(name + suffix + extension)
    raise InputError(f"{pred_dir}: no prediction for '{name}' (looked for {', '.join(tried[:4])}, ...)")


# ---- loading ------------------------------------------------------------------------------------
@dataclass
class _Loaded:
    """One sample in memory. ``alpha01``/``trimap_u8`` are on the scoring grid; ``image01`` and
    ``model_trimap`` on the model's grid (they differ only when transforms changed geometry)."""
    name: str
    alpha01: np.ndarray
    trimap_u8: Optional[np.ndarray]
    alpha_name: str
    trimap_name: str
    image01: Optional[np.ndarray] = None
    model_alpha01: Optional[np.ndarray] = None
    model_trimap: Optional[np.ndarray] = None
    geometry: list = field(default_factory=list)
    trimap_generated: bool = False
    tiled: Optional[str] = None  # how the model tiled this image, when it did


def _load_item(item, with_image):
    alpha01 = io.read_alpha(item.alpha_path)
    trimap_u8 = None
    if item.trimap_path:
        trimap_u8 = io.read_trimap(item.trimap_path)
        io.check_same_size(trimap_u8.shape, item.trimap_path, alpha01.shape, item.alpha_path)
    loaded = _Loaded(item.name, alpha01, trimap_u8, item.alpha_path, item.trimap_path or "trimap")
    if with_image:
        if not item.image_path:
            raise InputError(f"{item.name}: no image path; a model needs the image")
        loaded.image01 = io.read_image(item.image_path)
        io.check_same_size(loaded.image01.shape, item.image_path, alpha01.shape, item.alpha_path)
    loaded.model_alpha01, loaded.model_trimap = alpha01, trimap_u8
    return loaded


def _field(sample, key, default=None):
    if isinstance(sample, dict):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _load_sample(sample, index):
    """A ``Sample`` (or dict with the same keys) -> _Loaded. When its transforms changed the
    geometry, the prediction is mapped back and scored against the original files."""
    name = _field(sample, "name") or f"sample_{index:05d}"
    image01, alpha01 = _field(sample, "image"), _field(sample, "alpha")
    if image01 is None or alpha01 is None:
        raise InputError(f"{name}: the validation sample has no image or no alpha (is the dataset "
                         f"in val mode with a LoadImages transform?)")
    trimap_u8 = _field(sample, "trimap")
    geometry = list(_field(sample, "geometry") or [])
    paths = _field(sample, "paths") or {}
    loaded = _Loaded(name, alpha01, trimap_u8, paths.get("alpha", f"{name} alpha"),
                     paths.get("trimap", f"{name} trimap"), image01=image01, model_alpha01=alpha01,
                     model_trimap=trimap_u8, geometry=geometry,
                     trimap_generated=bool(_field(sample, "trimap_generated", False)))
    if geometry:
        if "alpha" not in paths:
            raise InputError(f"{name}: transforms changed the sample's size but its alpha file is "
                             f"unknown, so the prediction cannot be scored at full size")
        loaded.alpha01 = io.read_alpha(paths["alpha"])
        loaded.trimap_u8 = io.read_trimap(paths["trimap"]) if paths.get("trimap") else None
        loaded.trimap_generated = False
    return loaded


# ---- one sample ---------------------------------------------------------------------------------
def _timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def _predict(model, loaded, trimap_radius):
    """Run the model on one sample; returns the alpha on the scoring grid."""
    from ppmatting.transforms.sample import undo_geometry

    trimap_u8 = loaded.model_trimap
    if trimap_u8 is None:
        # The model sees the same generated trimap the scoring uses (same rule, same alpha).
        code, full = ground_truth_to_code(loaded.model_alpha01)
        trimap_u8 = generated_trimap(code, full, trimap_radius)
        if not loaded.geometry:
            loaded.trimap_u8 = trimap_u8
            loaded.trimap_generated = True
    alpha01 = np.asarray(model.predict(loaded.image01, trimap_u8))
    plan = getattr(model, "last_plan", None)  # a TiledMatting says how it ran this image
    if plan is not None and plan.mode == "tiled":
        loaded.tiled = plan.describe()
    if alpha01.ndim == 3 and alpha01.shape[2] == 1:
        alpha01 = alpha01[:, :, 0]
    if alpha01.shape != tuple(loaded.image01.shape[:2]):
        raise InputError(f"{loaded.name}: the model returned an alpha of shape {alpha01.shape} for "
                         f"an image of shape {tuple(loaded.image01.shape[:2])}")
    if loaded.geometry:
        alpha01 = undo_geometry(alpha01, loaded.geometry)
    return alpha01


def _score(loaded, pred, pred_name, metrics, trimap_radius, results_dir):
    """Score one prediction; write it (as scored) to ``results_dir`` when given. Returns a row."""
    pair = prepare_pair(pred, loaded.alpha01, loaded.trimap_u8, trimap_radius=trimap_radius,
                        names=(pred_name, loaded.alpha_name, loaded.trimap_name))
    scores = score_pair(pair, metrics)
    if results_dir:
        io.write_image(os.path.join(results_dir, loaded.name + ".png"), pair.pred_u8)
    height, width = pair.shape
    row = {"name": loaded.name, "height": int(height), "width": int(width),
           "unknown_pixels": pair.unknown_pixels}
    row.update(scores)
    row["empty_unknown"] = pair.empty_unknown
    row["trimap_generated"] = bool(pair.trimap_generated or loaded.trimap_generated)
    row["tiled"] = loaded.tiled
    return row


# ---- running many samples ------------------------------------------------------------------------
class _InlineExecutor:
    """``submit`` runs the call at once: the num_workers == 0 path through the same code."""

    def submit(self, function, *args):
        future = Future()
        try:
            future.set_result(function(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _executor(num_workers):
    num_workers = int(num_workers or 0)
    if num_workers < 0:
        raise InputError(f"--num_workers must be >= 0, got {num_workers}")
    return ThreadPoolExecutor(max_workers=num_workers) if num_workers > 0 else _InlineExecutor()


def _failure_message(name, err):
    if isinstance(err, PPMattingError):
        return str(err)
    return f"{name}: {type(err).__name__}: {err}"


class _Progress:
    def __init__(self, total, enabled, desc):
        from tqdm import tqdm

        self.tqdm = tqdm
        self.bar = tqdm(total=total, unit="img", desc=desc, file=sys.stderr, dynamic_ncols=True,
                        disable=not enabled)

    def step(self):
        self.bar.update(1)

    def report(self, message, err=None):
        if err is not None and not isinstance(err, PPMattingError):
            self.tqdm.write("".join(traceback.format_exception(err)).rstrip(), file=sys.stderr)
        self.tqdm.write(f"error: {message}", file=sys.stderr)

    def close(self):
        self.bar.close()


class _Collector:
    """Rows and failures in input order."""

    def __init__(self, count):
        self.slots = [None] * count
        self.seconds = [0.0] * count

    def ok(self, index, row):
        self.slots[index] = ("ok", row)

    def fail(self, index, name, message):
        self.slots[index] = ("failed", {"name": name, "error": message})

    def rows(self):
        rows = []
        for slot, seconds in zip(self.slots, self.seconds):
            if slot and slot[0] == "ok":
                row = dict(slot[1])
                row["seconds"] = seconds
                rows.append(row)
        return rows

    def failures(self):
        return [slot[1] for slot in self.slots if slot and slot[0] == "failed"]


def _as_indexable(samples):
    """(count, get(index), name(index)) for a list of EvalItems, a dataset or any iterable."""
    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__"):
        return len(samples), samples.__getitem__, getattr(samples, "sample_name", None)
    listed = list(samples)
    return len(listed), listed.__getitem__, None


def evaluate(model, samples, metrics=METRIC_NAMES, save_dir=None, save_results=False,
             num_workers=0, progress=True, trimap_radius=DEFAULT_TRIMAP_RADIUS, description=None,
             dataset_description=None):
    """Run ``model`` over ``samples`` and score every prediction.

    Args:
        model: any zoo model: ``model.predict(image01, trimap_u8) -> alpha01`` (H x W x 3 float32
            [0, 1], H x W uint8 {0, 128, 255} -> H x W float [0, 1]), or a
            :class:`~ppmatting.deploy.tiling.TiledMatting`, whose tiled images the report lists.
        samples: list of :class:`EvalItem`, a val-mode ``MattingDataset`` or any iterable of
            ``Sample``-like objects (``image``, ``alpha``, ``trimap`` (may be None), ``name``).
        metrics: names among sad, mse, grad, conn.
        save_dir: where to write ``per_image.csv``, ``summary.json`` and ``summary.md`` (None:
            write nothing); ``save_results`` also writes each scored alpha to
            ``save_dir/results/NAME.png``.
        num_workers: threads that read files and score while the model predicts in the calling
            thread (0: everything in the calling thread). Results do not depend on it.
        trimap_radius: radius of the generated trimap for samples without one.
    Returns the summary dict (see :func:`summarize`); ``summary["per_image"]`` holds the rows.
    """
    metric_objects = build_metrics(metrics)
    results_dir = _results_dir(save_dir, save_results)
    count, get, name_of = _as_indexable(samples)
    collector = _Collector(count)
    bar = _Progress(count, progress, "evaluating")
    start = time.perf_counter()

    def load(index):
        item = get(index)
        if isinstance(item, EvalItem):
            return _load_item(item, with_image=True)
        return _load_sample(item, index)

    def fallback_name(index):
        if name_of is not None:
            try:
                return name_of(index)
            except Exception:  # noqa: BLE001 - only for the failure message
                pass
        item = samples[index] if isinstance(samples, list) else None
        return getattr(item, "name", None) or f"sample_{index:05d}"

    prefetch = 2 * int(num_workers) if num_workers else 1
    with _executor(num_workers) as pool:
        loads, scores = {}, {}

        def finish_score(index):
            future, name = scores.pop(index)
            try:
                (row, seconds) = future.result()
                collector.seconds[index] += seconds
                collector.ok(index, row)
            except Exception as err:  # noqa: BLE001 - reported, the run continues
                message = _failure_message(name, err)
                collector.fail(index, name, message)
                bar.report(message, err)

        for index in range(count):
            for ahead in range(index, min(count, index + prefetch)):
                if ahead not in loads:
                    loads[ahead] = pool.submit(_timed, load, ahead)
            name = fallback_name(index)
            try:
                loaded, load_seconds = loads.pop(index).result()
                name = loaded.name
                pred, predict_seconds = _timed(_predict, model, loaded, trimap_radius)
                collector.seconds[index] = load_seconds + predict_seconds
                scores[index] = (pool.submit(_timed, _score, loaded, pred, f"{name} prediction",
                                             metric_objects, trimap_radius, results_dir), name)
            except Exception as err:  # noqa: BLE001 - reported, the run continues
                message = _failure_message(name, err)
                collector.fail(index, name, message)
                bar.report(message, err)
            while len(scores) > prefetch:
                finish_score(min(scores))
            bar.step()
        for index in sorted(scores):
            finish_score(index)
    bar.close()
    info = {"mode": "model", "source": description or type(model).__name__,
            "dataset": dataset_description, "seconds_total": time.perf_counter() - start}
    return _finish(collector, metric_objects, trimap_radius, info, save_dir, results_dir)


def evaluate_predictions(items, pred_dir, metrics=METRIC_NAMES, save_dir=None, save_results=False,
                         num_workers=0, progress=True, trimap_radius=DEFAULT_TRIMAP_RADIUS,
                         dataset_description=None):
    """Score alphas saved in ``pred_dir`` against ``items`` (list of :class:`EvalItem`), matched by
    name (:func:`find_prediction`). Same outputs and arguments as :func:`evaluate`."""
    if not os.path.isdir(pred_dir):
        raise InputError(f"{pred_dir}: prediction folder not found")
    metric_objects = build_metrics(metrics)
    results_dir = _results_dir(save_dir, save_results)
    items = list(items)
    collector = _Collector(len(items))
    bar = _Progress(len(items), progress, "scoring")
    start = time.perf_counter()

    def task(item):
        loaded = _load_item(item, with_image=False)
        pred_path = find_prediction(pred_dir, item.name)
        pred01 = io.read_alpha(pred_path)
        return _score(loaded, pred01, pred_path, metric_objects, trimap_radius, results_dir)

    with _executor(num_workers) as pool:
        futures = [pool.submit(_timed, task, item) for item in items]
        for index, (item, future) in enumerate(zip(items, futures)):
            try:
                row, seconds = future.result()
                collector.seconds[index] = seconds
                collector.ok(index, row)
            except Exception as err:  # noqa: BLE001 - reported, the run continues
                message = _failure_message(item.name, err)
                collector.fail(index, item.name, message)
                bar.report(message, err)
            bar.step()
    bar.close()
    info = {"mode": "predictions", "source": os.path.abspath(pred_dir),
            "dataset": dataset_description, "seconds_total": time.perf_counter() - start}
    return _finish(collector, metric_objects, trimap_radius, info, save_dir, results_dir)


def _finish(collector, metric_objects, trimap_radius, info, save_dir, results_dir):
    """The summary of a finished run, with its report files written when ``save_dir`` is set."""
    summary = summarize(collector.rows(), collector.failures(), list(metric_objects), trimap_radius,
                        info)
    if save_dir:
        summary["files"] = write_reports(summary, save_dir, results_dir)
    return summary


def _results_dir(save_dir, save_results):
    if not save_results:
        return None
    if not save_dir:
        raise InputError("--save_results needs --save_dir (where the alpha PNGs go)")
    path = os.path.join(save_dir, "results")
    os.makedirs(path, exist_ok=True)
    return path


# ---- summary and reports -------------------------------------------------------------------------
def summarize(rows, failures, metric_names, trimap_radius=DEFAULT_TRIMAP_RADIUS, info=None):
    """The summary dict: means of each metric over the scored samples that have unknown pixels
    (samples with an empty unknown region score 0 and are listed, not averaged), counts, the
    failures, and how predictions and trimaps were handled."""
    scored = [row for row in rows if not row["empty_unknown"]]
    means = {name: (float(np.mean([row[name] for row in scored])) if scored else None)
             for name in metric_names}
    generated = [row["name"] for row in rows if row["trimap_generated"]]
    tiled = [{"name": row["name"], "plan": row["tiled"]} for row in rows if row.get("tiled")]
    summary = dict(info or {})
    summary.update({
        "metrics": means,
        "num_samples": len(rows) + len(failures),
        "num_scored": len(rows),
        "num_averaged": len(scored),
        "num_failed": len(failures),
        "failures": failures,
        "empty_unknown": [row["name"] for row in rows if row["empty_unknown"]],
        "num_trimaps_generated": len(generated),
        "trimaps_generated": generated,
        "trimap_rule": trimap_rule_text(trimap_radius),
        "num_tiled": len(tiled),
        "tiled": tiled,
        "prediction_handling": PREDICTION_NOTE,
        "seconds_per_image": (float(np.mean([row["seconds"] for row in rows])) if rows else None),
        "per_image": rows,
    })
    return summary


def _format_value(name, value):
    if value is None:
        return "n/a"
    return f"{value:.6f}" if name == "mse" else f"{value:.4f}"


def format_markdown(summary):
    """The summary as a markdown table plus notes (what tools/val.py prints and saves)."""
    names = list(summary["metrics"])
    header = ["source", "samples"] + [METRIC_TITLES[n] for n in names] + ["s/img"]
    seconds = summary.get("seconds_per_image")
    cells = [str(summary.get("source", "")), f"{summary['num_averaged']}/{summary['num_samples']}"]
    cells += [_format_value(n, summary["metrics"][n]) for n in names]
    cells.append("n/a" if seconds is None else f"{seconds:.3f}")
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
             "| " + " | ".join(cells) + " |", ""]
    if summary.get("dataset"):
        lines.append(f"- dataset: {summary['dataset']}")
    lines.append(f"- metric values are means over {summary['num_averaged']} samples; SAD, Grad and "
                 f"Conn are divided by 1000, MSE by the number of unknown pixels")
    lines.append(f"- {summary['prediction_handling']}")
    generated = summary["num_trimaps_generated"]
    lines.append(f"- trimaps generated from the ground truth: {generated} of {summary['num_scored']} "
                 f"scored samples" + (f" ({summary['trimap_rule']})" if generated else
                                      " (all trimaps were given)"))
    if summary.get("tiled"):
        lines.append(f"- {summary['num_tiled']} image(s) ran in tiles because the whole image would "
                     f"not fit the memory budget (the other images ran whole, the published "
                     f"procedure):")
        lines += [f"  - {t['name']}: {t['plan']}" for t in summary["tiled"]]
    if summary["empty_unknown"]:
        lines.append(f"- empty unknown region (scored 0, not averaged): "
                     f"{', '.join(summary['empty_unknown'])}")
    if summary["failures"]:
        lines.append(f"- FAILED {summary['num_failed']} of {summary['num_samples']} samples:")
        lines += [f"  - {f['name']}: {f['error']}" for f in summary["failures"]]
    return "\n".join(lines) + "\n"


def format_csv(rows):
    """Per-image CSV text with :data:`CSV_COLUMNS`; metrics not computed are left empty."""
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        out = []
        for column in CSV_COLUMNS:
            value = row.get(column)
            if value is None:
                out.append("")
            elif isinstance(value, float):
                out.append(f"{value:.4f}" if column == "seconds" else repr(value))
            else:
                out.append(str(value))
        writer.writerow(out)
    return buffer.getvalue()


def summary_json(summary):
    """The summary as JSON text (without the per-image rows, which are in the CSV)."""
    public = {key: value for key, value in summary.items() if key != "per_image"}
    return json.dumps(public, indent=2, sort_keys=False) + "\n"


def write_reports(summary, save_dir, results_dir=None):
    """Write ``per_image.csv``, ``summary.json`` and ``summary.md`` atomically into ``save_dir``;
    returns their paths."""
    os.makedirs(save_dir, exist_ok=True)
    files = {"csv": os.path.join(save_dir, "per_image.csv"),
             "json": os.path.join(save_dir, "summary.json"),
             "markdown": os.path.join(save_dir, "summary.md")}
    if results_dir:
        files["results"] = results_dir
    summary = dict(summary, files=files)
    io.atomic_write_bytes(files["csv"], format_csv(summary["per_image"]).encode("utf-8"))
    io.atomic_write_bytes(files["json"], summary_json(summary).encode("utf-8"))
    io.atomic_write_bytes(files["markdown"], format_markdown(summary).encode("utf-8"))
    return files
