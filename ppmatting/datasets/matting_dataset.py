"""MattingDataset: list files in two forms, online composition or pre-composited images.

List lines (paths relative to ``dataset_root``; columns split on ``separator``, whitespace by default):

* ``list_format: composition``   ``fg alpha [bg]``
  Training composites each foreground onto a background drawn at random for every sample in every
  epoch from the pool of all backgrounds (the third column of every line, plus ``bg_file``). With
  ``random_bg: false`` (and always in val mode) a line's own background is used.
* ``list_format: image``         ``image alpha [trimap]``
  Pre-composited data. A missing trimap column in val mode means the evaluation generates one from
  the ground truth and says so.

Each item is a pure function of (seed, epoch, index), so runs repeat and resume exactly.
"""
import os

import numpy as np

from ppmatting.cvlibs import manager
from ppmatting.transforms import Compose, Sample
from ppmatting.utils.errors import ConfigError, InputError

LIST_FORMATS = ("composition", "image")
MODES = ("train", "val")


def read_list_file(path, separator=None, min_columns=2, max_columns=3):
    """Lines of a list file split into columns; blank lines and '#' comments are skipped."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: list file not found")
    rows = []
    with open(path, "r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            columns = [c.strip() for c in (text.split(separator) if separator else text.split())]
            columns = [c for c in columns if c]
            if not min_columns <= len(columns) <= max_columns:
                sep_name = repr(separator) if separator else "whitespace"
                raise InputError(f"{path}:{number}: expected {min_columns} to {max_columns} columns "
                                 f"separated by {sep_name}, got {len(columns)}")
            rows.append(columns)
    if not rows:
        raise InputError(f"{path}: list file has no entries")
    return rows


@manager.DATASETS.add_component
class MattingDataset:
    """Matting data from a list file.

    Args:
        dataset_root: folder the list's paths are relative to.
        file_list: the list file (relative to ``dataset_root`` or absolute).
        mode: 'train' (returns network batch dicts) or 'val' (returns :class:`Sample`s at full size).
        list_format: 'composition' (fg alpha [bg]) or 'image' (image alpha [trimap]).
        transforms: list of transform objects (built from the config).
        separator: column separator; ``None`` splits on whitespace.
        bg_file: optional list of extra backgrounds (one path a line) for the random pool.
        random_bg: draw a new background per sample per epoch (train mode, composition form).
        seed: base seed for the per-sample random generator.
    """

    def __init__(self, dataset_root, file_list, mode="train", list_format="image", transforms=None,
                 separator=None, bg_file=None, random_bg=True, seed=0):
        if mode not in MODES:
            raise ConfigError(f"mode: expected one of {MODES}, got {mode!r}")
        if list_format not in LIST_FORMATS:
            raise ConfigError(f"list_format: expected one of {LIST_FORMATS}, got {list_format!r}")
        if not os.path.isdir(dataset_root):
            raise InputError(f"{dataset_root}: dataset_root folder not found")
        self.dataset_root = dataset_root
        self.mode = mode
        self.list_format = list_format
        self.transforms = Compose(transforms or [])
        self.random_bg = bool(random_bg) and mode == "train" and list_format == "composition"
        self.seed = int(seed)
        self.epoch = 0
        self.list_path = self._path(file_list)
        rows = read_list_file(self.list_path, separator)
        self.records = [self._record(row) for row in rows]
        self.bg_pool = [r["bg"] for r in self.records if "bg" in r]
        if bg_file:
            self.bg_pool += [self._path(row[0]) for row in
                             read_list_file(self._path(bg_file), separator, 1, 1)]
        if list_format == "composition" and not self.bg_pool:
            raise InputError(f"{self.list_path}: composition lists need backgrounds: a third column "
                             f"'fg alpha bg' or a bg_file")
        if list_format == "composition" and not self.random_bg and \
                any("bg" not in r for r in self.records):
            raise InputError(f"{self.list_path}: every line needs a background column when backgrounds "
                             f"are not drawn at random (val mode or random_bg: false)")

    def _path(self, relative):
        return relative if os.path.isabs(relative) else os.path.join(self.dataset_root, relative)

    def _record(self, row):
        if self.list_format == "composition":
            keys = ("fg", "alpha", "bg")
        else:
            keys = ("image", "alpha", "trimap")
        return {key: self._path(value) for key, value in zip(keys, row)}

    def set_epoch(self, epoch):
        """Select the epoch whose random draws (backgrounds, crops, trimaps) items will use. Set it
        before a data-loader iterator is created so worker processes see it."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.records)

    def sample_name(self, index):
        record = self.records[index]
        source = record.get("image") or record.get("fg")
        return os.path.splitext(os.path.basename(source))[0]

    def load_sample(self, index, rng):
        record = dict(self.records[index])
        if self.random_bg:
            record["bg"] = self.bg_pool[int(rng.integers(len(self.bg_pool)))]
        sample = Sample(name=self.sample_name(index), paths=record)
        return self.transforms(sample, rng)

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        sample = self.load_sample(int(index), rng)
        if self.mode == "train":
            return sample.to_train_dict()
        return sample
