"""What a training run writes besides checkpoints: log lines (stdout and ``train.log``), a
progress bar, JSON-lines records (``train_log.jsonl``, ``eval_log.jsonl``) and, with
``--use_vdl``, VisualDL scalars and images. Only rank 0 writes.
"""
import json
import os
import sys
import time

import numpy as np

from ppmatting.utils.errors import ConfigError

TRAIN_LOG = "train_log.jsonl"
EVAL_LOG = "eval_log.jsonl"


def format_seconds(seconds):
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class TrainLogger:
    """Rank-0 output: log lines (stdout and ``train.log``), a progress bar, JSON-lines records
    (``train_log.jsonl``, ``eval_log.jsonl``) and optional VisualDL scalars and images."""

    def __init__(self, save_dir, iters, start_iter, enabled=True, progress_bar="auto",
                 use_vdl=False, stream=None):
        self.enabled = enabled
        self.save_dir = save_dir
        self.stream = stream or sys.stdout
        self.bar = None
        self.vdl = None
        if not enabled:
            return
        os.makedirs(save_dir, exist_ok=True)
        self.log_file = open(os.path.join(save_dir, "train.log"), "a", encoding="utf-8")
        show_bar = progress_bar == "on" or (progress_bar == "auto" and sys.stderr.isatty())
        if show_bar:
            from tqdm import tqdm
            self.bar = tqdm(total=iters, initial=start_iter, unit="it", dynamic_ncols=True,
                            file=sys.stderr, desc="train")
        if use_vdl:
            self.vdl = open_visualdl(os.path.join(save_dir, "vdl"))
        # A resumed run rewrites the records after its checkpoint, so the logs read as one run.
        for name in (TRAIN_LOG, EVAL_LOG):
            truncate_records(os.path.join(save_dir, name), start_iter)

    def info(self, message):
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} [TRAIN] {message}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def step(self, loss_value):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)

    def record(self, name, entry):
        if not self.enabled:
            return
        with open(os.path.join(self.save_dir, name), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def scalars(self, prefix, values, iteration):
        if self.vdl is None:
            return
        for key, value in values.items():
            self.vdl.add_scalar(f"{prefix}/{key}", float(value), iteration)

    def images(self, batch, outputs, iteration):
        """Sample images for VisualDL: the first composite, its true and predicted alpha."""
        if self.vdl is None:
            return
        image = np.clip(batch["image01"][0].numpy().transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)
        self.vdl.add_image("Train/image", image, iteration)
        for key, tensor in [("alpha_true", batch["alpha"])] + [
                (k, outputs[k]) for k in ("alpha_pred", "alpha_refined") if k in outputs]:
            alpha = np.clip(tensor[0, 0].detach().astype("float32").numpy() * 255, 0, 255)
            self.vdl.add_image(f"Train/{key}", np.repeat(alpha.astype(np.uint8)[:, :, None], 3, 2),
                               iteration)

    def close(self):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.vdl is not None:
            self.vdl.close()
        self.log_file.close()


def require_visualdl():
    """VisualDL's ``LogWriter`` class, imported only when asked for (``--use_vdl``)."""
    try:
        from visualdl import LogWriter
    except Exception as err:  # ImportError, or an old visualdl failing under NumPy 2
        raise ConfigError(f"--use_vdl needs the visualdl package, which cannot be imported here "
                          f"({err}); install it with 'pip install visualdl' or drop --use_vdl "
                          f"(the same scalars are in train_log.jsonl)") from None
    return LogWriter


def open_visualdl(logdir):
    return require_visualdl()(logdir=logdir)


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
