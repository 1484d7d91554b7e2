"""What a training run writes besides checkpoints: log lines (stdout and ``train.log``), a
progress bar, JSON-lines records (``train_log.jsonl``, ``eval_log.jsonl``) and, with
``--use_vdl``, VisualDL scalars and images. Only rank 0 writes.

In a run of several stages (DIM's ``train.stages``) each stage writes these into its own folder
(``SAVE_DIR/stage2/``); every line names the stage (``stage 2/3``) and also goes to the run's
``SAVE_DIR/train.log``; records carry ``stage`` and ``global_iteration`` (the iteration counted
over the stages, stage 2's first being stage 1's ``iters`` + 1), which is also VisualDL's step, so
``visualdl --logdir SAVE_DIR`` draws the stages one after the other, one run (colour) per stage.
"""
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ppmatting.utils.errors import ConfigError

TRAIN_LOG = "train_log.jsonl"
EVAL_LOG = "eval_log.jsonl"
VDL_DIR = "vdl"


def format_seconds(seconds):
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class StageInfo:
    """Where one stage sits in a run of several.

    number: 1-based stage number (``stage2`` -> 2); count: stages in the config;
    offset: iterations of the configured stages before this one (added to the iteration for
    ``global_iteration`` and VisualDL's step); run_log: a second file that receives this stage's
    log lines (the run's ``SAVE_DIR/train.log``), or None; note: where its weights came from
    (logged when it starts).
    """
    number: int
    count: int
    offset: int = 0
    run_log: Optional[str] = None
    note: str = ""

    @property
    def name(self):
        return f"stage{self.number}"

    @property
    def label(self):
        return f"stage {self.number}/{self.count}"


class TrainLogger:
    """Rank-0 output: log lines (stdout and ``train.log``), a progress bar, JSON-lines records
    (``train_log.jsonl``, ``eval_log.jsonl``) and optional VisualDL scalars and images.

    Args:
        save_dir: the run's (or the stage's) folder.
        iters, start_iter: for the progress bar and to cut the records back on resume.
        enabled: False on ranks other than 0 (every method is then a no-op).
        progress_bar: 'auto' (when stderr is a terminal), 'on' or 'off'.
        use_vdl: write VisualDL logs into ``save_dir/vdl``.
        stream: where log lines go besides the files (stdout).
        stage: a :class:`StageInfo` in a run of several stages, else None.
    """

    def __init__(self, save_dir, iters, start_iter, enabled=True, progress_bar="auto",
                 use_vdl=False, stream=None, stage=None):
        self.enabled = enabled
        self.save_dir = save_dir
        self.stream = stream or sys.stdout
        self.stage = stage
        self.bar = None
        self.vdl = None
        self.log_files = []
        if not enabled:
            return
        os.makedirs(save_dir, exist_ok=True)
        self.log_files.append(open(os.path.join(save_dir, "train.log"), "a", encoding="utf-8"))
        if stage is not None and stage.run_log:
            self.log_files.append(open(stage.run_log, "a", encoding="utf-8"))
        show_bar = progress_bar == "on" or (progress_bar == "auto" and sys.stderr.isatty())
        if show_bar:
            from tqdm import tqdm
            self.bar = tqdm(total=iters, initial=start_iter, unit="it", dynamic_ncols=True,
                            file=sys.stderr, desc=stage.name if stage else "train")
        if use_vdl:
            self.vdl = open_visualdl(os.path.join(save_dir, VDL_DIR))
        # A resumed run rewrites the records after its checkpoint, so the logs read as one run.
        for name in (TRAIN_LOG, EVAL_LOG):
            truncate_records(os.path.join(save_dir, name), start_iter)

    def step_of(self, iteration):
        """VisualDL's step (and ``global_iteration``) for a stage's ``iteration``."""
        return iteration + (self.stage.offset if self.stage else 0)

    def info(self, message):
        if not self.enabled:
            return
        prefix = f"[TRAIN] {self.stage.label}: " if self.stage else "[TRAIN] "
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {prefix}{message}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
        for handle in self.log_files:
            handle.write(line + "\n")
            handle.flush()

    def step(self, loss_value):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)

    def record(self, name, entry):
        """Append ``entry`` (with ``iteration``) to the JSON-lines file ``name``; in a stage run
        ``stage`` and ``global_iteration`` are added."""
        if not self.enabled:
            return
        if self.stage is not None:
            entry = {"iteration": entry["iteration"], "stage": self.stage.number,
                     "global_iteration": self.step_of(entry["iteration"]), **entry}
        with open(os.path.join(self.save_dir, name), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def scalars(self, prefix, values, iteration):
        """VisualDL scalars ``prefix/key`` at the step of ``iteration``."""
        if self.vdl is None:
            return
        for key, value in values.items():
            self.vdl.add_scalar(f"{prefix}/{key}", float(value), self.step_of(iteration))

    def train_images(self, batch, outputs, iteration):
        """VisualDL: the batch's first composite, its true alpha and the predicted ones
        (``alpha_pred``, and ``alpha_refined`` with a refiner)."""
        if self.vdl is None:
            return
        alphas = [("alpha_true", batch["alpha"])] + [
            (key, outputs[key]) for key in ("alpha_pred", "alpha_refined") if key in outputs]
        self._images("Train", batch["image01"][0].numpy().transpose(1, 2, 0),
                     {key: tensor[0, 0].detach().astype("float32").numpy()
                      for key, tensor in alphas}, iteration)

    def eval_images(self, image01, alphas, iteration):
        """VisualDL: a validation image (H x W x 3 in [0, 1]) and its alphas (``{name: H x W in
        [0, 1]}``, e.g. the true one and the prediction)."""
        if self.vdl is None:
            return
        self._images("Evaluate", image01, alphas, iteration)

    def _images(self, prefix, image01, alphas, iteration):
        step = self.step_of(iteration)
        self.vdl.add_image(f"{prefix}/image", to_u8(image01), step)
        for key, alpha01 in alphas.items():
            self.vdl.add_image(f"{prefix}/{key}", np.repeat(to_u8(alpha01)[:, :, None], 3, 2), step)

    def close(self):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.vdl is not None:
            self.vdl.close()
        for handle in self.log_files:
            handle.close()


def to_u8(array01):
    """[0, 1] floats -> uint8 (rounded, clipped), for pictures in VisualDL."""
    return np.clip(np.round(np.asarray(array01, np.float32) * 255), 0, 255).astype(np.uint8)


def require_visualdl():
    """VisualDL's ``LogWriter`` class, imported only when asked for (``--use_vdl``)."""
    try:
        from visualdl import LogWriter
    except Exception as err:  # ImportError, or a broken install failing at import
        raise ConfigError(f"--use_vdl needs the visualdl package, which cannot be imported here "
                          f"({err}); install it with \"pip install -e '.[vdl]'\" (or 'pip install "
                          f"visualdl==2.5.3') or drop --use_vdl (the same scalars are in "
                          f"{TRAIN_LOG})") from None
    return LogWriter


def open_visualdl(logdir):
    # VisualDL names its file after the second it was opened; a resumed run opened within the same
    # second would write into the interrupted run's file, so the process id is added.
    os.makedirs(logdir, exist_ok=True)
    return require_visualdl()(logdir=logdir,
                              file_name=f"vdlrecords.{int(time.time())}.{os.getpid()}.log")


def truncate_records(path, last_iteration):
    """Keep only the JSON-lines records with ``iteration <= last_iteration``."""
    if not os.path.isfile(path):
        return
    kept = []
    with open(path, "r", encoding="utf-8") as handle:
        for line in handle:
            try:
                if json.loads(line).get("iteration", 0) <= last_iteration:
                    kept.append(line if line.endswith("\n") else line + "\n")
            except ValueError:
                continue
    from ppmatting.utils.io import atomic_write_bytes
    atomic_write_bytes(path, "".join(kept).encode())
