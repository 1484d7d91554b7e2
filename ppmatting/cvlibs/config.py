"""PaddleSeg-style YAML configs: ``_base_`` inheritance, typed ``--opts`` overrides, built components.

Rules:

* ``_base_``: a path or a list of paths, relative to the file that names them. Bases are merged in
  order, then the file itself; mappings merge key by key and the child wins. A ``_base_`` inside a
  nested mapping does the same for that mapping (DIM's ``train.stages.stage2: {_base_:
  _base_/dim_stage2.yml}`` takes a stage's settings from the file that the one-stage config
  ``dim-vgg16-stage2.yml`` also uses as a base).
* ``_inherited_: false`` inside a mapping replaces the inherited mapping instead of merging into it.
* ``--opts a.b.c=value`` sets one key; the value is parsed as YAML (``1e-5`` -> float, ``[1,2]`` ->
  list, ``null`` -> None). The key path must exist, except for arguments of a component (a mapping
  with ``type:``), which its constructor checks.
* Relative paths in ``dataset_root`` (and other ``*_root``/``*_path``/``*_file`` values at dataset level)
  resolve against the working directory when they exist there, else against the project root, so the
  shipped configs work from any folder.
"""
import copy
import difflib
import os
import re

import yaml

from ppmatting.cvlibs import manager
from ppmatting.cvlibs.builder import build_component
from ppmatting.utils.errors import ConfigError

class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float (YAML 1.1 wants ``1.0e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text_or_stream):
    return yaml.load(text_or_stream, Loader=_Loader)


PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOP_LEVEL_KEYS = {
    "batch_size": "a positive integer",
    "iters": "a positive integer",
    "model": "a mapping with 'type'",
    "train_dataset": "a mapping with 'type'",
    "val_dataset": "a mapping with 'type'",
    "optimizer": "a mapping with 'type' (a paddle.optimizer name)",
    "lr_scheduler": "a mapping with 'learning_rate' and optionally 'type' (a paddle.optimizer.lr name)",
    "losses": "a list of mappings with 'type'",
    "train": "a mapping of trainer settings",
    "export": "a mapping of export settings",
    "test_config": "a mapping of prediction settings",
}


def _read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = yaml_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping, got {type(data).__name__}")
    return data


def merge_config(base, child):
    """Deep-merge ``child`` into a copy of ``base``; the child wins. A child mapping holding
    ``_inherited_: false`` replaces the base's mapping."""
    result = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict):
            value = dict(value)
            inherit = value.pop("_inherited_", True)
            if inherit and isinstance(result.get(key), dict):
                result[key] = merge_config(result[key], value)
            else:
                result[key] = merge_config({}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_bases(data, path, chain, where="_base_"):
    """``data`` (a mapping read from ``path``) merged over the files its ``_base_`` key names."""
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: {where} must be a path or a list of paths")
    merged = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: {where} file '{base}' not found (looked at {base_path})")
        merged = merge_config(merged, load_config_dict(base_path, chain + (path,)))
    return merge_config(merged, data)


def _expand_nested_bases(node, path, chain, prefix=""):
    """Replace every nested mapping that holds ``_base_`` by its bases merged with it."""
    for key, value in list(node.items()):
        if isinstance(value, dict):
            where = f"{prefix}{key}"
            _expand_nested_bases(value, path, chain, where + ".")
            if "_base_" in value:
                node[key] = _merge_bases(value, path, chain, where=f"{where}._base_")


def load_config_dict(path, _chain=()):
    """Read ``path`` with all its ``_base_`` files merged (also those named inside nested
    mappings). Returns a plain dict."""
    path = os.path.abspath(path)
    if path in _chain:
        raise ConfigError(f"{path}: _base_ cycle through {' -> '.join(_chain)}")
    data = _read_yaml(path)
    _expand_nested_bases(data, path, _chain)
    return _merge_bases(data, path, _chain)


def parse_opts(opts):
    """``["a.b=1", "c=[1,2]"]`` -> ``[(["a","b"], 1), (["c"], [1, 2])]``."""
    parsed = []
    for item in opts or []:
        if "=" not in item:
            raise ConfigError(f"--opts '{item}': expected key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_opt(dic, keys, value, source):
    node = dic
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        path = ".".join(keys[:depth + 1])
        if isinstance(node, list):
            try:
                index = int(key)
                node[index]
            except (ValueError, IndexError):
                raise ConfigError(f"{source}: --opts {'.'.join(keys)}: '{key}' is not a valid index "
                                  f"into the list at {'.'.join(keys[:depth]) or '<top>'}") from None
            if last:
                node[index] = value
                return
            node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: --opts {'.'.join(keys)}: '{'.'.join(keys[:depth])}' is a "
                              f"{type(node).__name__}, not a mapping")
        if key not in node:
            is_component = "type" in node
            if not (last and (is_component or depth == 0 and key in TOP_LEVEL_KEYS)):
                close = difflib.get_close_matches(key, [str(k) for k in node], n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"{source}: --opts {'.'.join(keys)}: no key '{path}' in the "
                                  f"config{hint}")
        if last:
            node[key] = value
            return
        if node[key] is None:
            node[key] = {}
        node = node[key]


def resolve_path(value, config_dir=None):
    """Resolve a relative path: working directory first, then the project root, then the config's
    folder. Returns an absolute path (the first candidate when none exists, for the error message)."""
    if value is None or os.path.isabs(str(value)):
        return value
    candidates = [os.path.abspath(value), os.path.join(PROJECT_ROOT, value)]
    if config_dir:
        candidates.append(os.path.join(config_dir, value))
    for candidate in candidates:
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return os.path.normpath(candidates[1])


class Config:
    """A merged, validated config.

    Args:
        path: YAML file.
        opts: list of ``key.path=value`` strings.
        iters, batch_size, learning_rate: shortcuts that override the config's values.
        dic: an already merged config dict to use instead of reading ``path`` (which then only
            names it in messages and anchors relative paths); it is copied, not changed.
    """

    def __init__(self, path, opts=None, iters=None, batch_size=None, learning_rate=None, dic=None):
        self.path = os.path.abspath(path)
        self.dic = load_config_dict(self.path) if dic is None else copy.deepcopy(dic)
        for keys, value in parse_opts(opts):
            apply_opt(self.dic, keys, value, self.path)
        if iters is not None:
            self.dic["iters"] = iters
        if batch_size is not None:
            self.dic["batch_size"] = batch_size
        if learning_rate is not None:
            self.dic.setdefault("lr_scheduler", {})
            if not isinstance(self.dic["lr_scheduler"], dict):
                self.dic["lr_scheduler"] = {}
            self.dic["lr_scheduler"]["learning_rate"] = learning_rate
        self._validate()
        self._model = None

    def where(self, key):
        """``path: key`` for messages: the path relative to the working folder when the config is
        inside it, else as given."""
        shown = os.path.relpath(self.path)
        if shown.startswith(".."):
            shown = self.path
        return f"{shown}: {key}"

    def _validate(self):
        for key, value in self.dic.items():
            if key not in TOP_LEVEL_KEYS:
                close = difflib.get_close_matches(key, list(TOP_LEVEL_KEYS), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"{self.where(key)}: unknown top-level key{hint}; allowed: "
                                  f"{', '.join(sorted(TOP_LEVEL_KEYS))}")
        for key in ("batch_size", "iters"):
            if key in self.dic:
                value = self.dic[key]
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"{self.where(key)}: expected {TOP_LEVEL_KEYS[key]}, "
                                      f"got {value!r}")
        for key in ("model", "train_dataset", "val_dataset", "optimizer"):
            value = self.dic.get(key)
            if value is not None and (not isinstance(value, dict) or "type" not in value):
                raise ConfigError(f"{self.where(key)}: expected {TOP_LEVEL_KEYS[key]}, got {value!r}")
        losses = self.dic.get("losses")
        if losses is not None and (not isinstance(losses, list)
                                   or not all(isinstance(x, dict) and "type" in x for x in losses)):
            raise ConfigError(f"{self.where('losses')}: expected {TOP_LEVEL_KEYS['losses']}")
        lr = self.dic.get("lr_scheduler")
        if lr is not None:
            if not isinstance(lr, dict) or "learning_rate" not in lr:
                raise ConfigError(f"{self.where('lr_scheduler')}: expected {TOP_LEVEL_KEYS['lr_scheduler']}")
            rate = lr["learning_rate"]
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
                raise ConfigError(f"{self.where('lr_scheduler.learning_rate')}: expected a "
                                  f"non-negative number, got {rate!r}")

    # ---- plain values -------------------------------------------------------------------------
    @property
    def batch_size(self):
        return self.dic.get("batch_size", 1)

    @property
    def iters(self):
        if "iters" not in self.dic:
            raise ConfigError(f"{self.where('iters')}: missing key (number of training iterations)")
        return self.dic["iters"]

    @property
    def train_settings(self):
        return dict(self.dic.get("train") or {})

    # ---- built components ---------------------------------------------------------------------
    @property
    def model(self):
        if self._model is None:
            if "model" not in self.dic:
                raise ConfigError(f"{self.where('model')}: missing key (the model to build)")
            self._model = build_component(self.dic["model"], manager.MODELS, self.where("model"))
        return self._model

    def _dataset(self, key):
        if not self.dic.get(key):
            return None
        spec = copy.deepcopy(self.dic[key])
        config_dir = os.path.dirname(self.path)
        for name in list(spec):
            if name.endswith("_root") and isinstance(spec[name], str):
                spec[name] = resolve_path(spec[name], config_dir)
        self._fill_normalize_from_model(spec.get("transforms"))
        return build_component(spec, manager.DATASETS, self.where(key))

    def _fill_normalize_from_model(self, transforms):
        """A ``Normalize`` without its own mean/std takes the model's ``input_mean``/``input_std``,
        so the data and the network (and its export) cannot disagree about normalisation."""
        model = self.dic.get("model") or {}
        for item in transforms or []:
            if isinstance(item, dict) and item.get("type") == "Normalize":
                for key, model_key in (("mean", "input_mean"), ("std", "input_std")):
                    if key not in item and model.get(model_key) is not None:
                        item[key] = model[model_key]

    @property
    def train_dataset(self):
        return self._dataset("train_dataset")

    @property
    def val_dataset(self):
        return self._dataset("val_dataset")

    @property
    def losses(self):
        specs = self.dic.get("losses") or []
        return [build_component(spec, manager.LOSSES, self.where(f"losses[{i}]"))
                for i, spec in enumerate(specs)]

    @property
    def learning_rate(self):
        lr = self.dic.get("lr_scheduler") or {}
        return float(lr.get("learning_rate", 0.01))

    def lr_scheduler(self):
        """A ``paddle.optimizer.lr`` scheduler, or a float for a constant rate (``type`` absent or
        ``Constant``)."""
        import paddle
        spec = dict(self.dic.get("lr_scheduler") or {"learning_rate": 0.01})
        name = spec.pop("type", "Constant")
        if name == "Constant":
            if spec.keys() - {"learning_rate"}:
                raise ConfigError(f"{self.where('lr_scheduler')}: a constant rate takes only "
                                  f"'learning_rate', got {sorted(spec)}")
            return float(spec["learning_rate"])
        cls = getattr(paddle.optimizer.lr, name, None)
        if cls is None or not isinstance(cls, type):
            names = [n for n in dir(paddle.optimizer.lr) if n[0].isupper() and n != "LRScheduler"]
            close = difflib.get_close_matches(name, names, n=3)
            raise ConfigError(f"{self.where('lr_scheduler.type')}: unknown Paddle lr scheduler "
                              f"'{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""))
        try:
            return cls(**spec)
        except TypeError as err:
            raise ConfigError(f"{self.where('lr_scheduler')} ({name}): {err}") from None

    def optimizer(self, parameters, lr=None):
        """Build ``paddle.optimizer.<type>`` over ``parameters`` with the configured rate."""
        import paddle
        spec = dict(self.dic.get("optimizer") or {"type": "Adam"})
        name = spec.pop("type")
        cls = getattr(paddle.optimizer, name, None)
        if cls is None or not isinstance(cls, type):
            names = [n for n in dir(paddle.optimizer) if n[0].isupper()]
            close = difflib.get_close_matches(name, names, n=3)
            raise ConfigError(f"{self.where('optimizer.type')}: unknown Paddle optimizer '{name}'"
                              + (f"; did you mean {', '.join(close)}?" if close else ""))
        lr = self.lr_scheduler() if lr is None else lr
        try:
            return cls(learning_rate=lr, parameters=parameters, **spec)
        except TypeError as err:
            raise ConfigError(f"{self.where('optimizer')} ({name}): {err}") from None

    def __repr__(self):
        return yaml.safe_dump(self.dic, sort_keys=False)
