"""``deploy.yaml``: the contract between ``tools/export.py`` and everything that runs the export.

The file names the files Paddle actually wrote (Paddle 3 writes ``model.json``, a PIR program, not
the ``model.pdmodel`` of Paddle 2), the graph's inputs and what goes into them, the
pre-processing, and the result of the exporter's parity check. Layout (top key ``Deploy`` as in
PaddleSeg's deploy files)::

    Deploy:
      model_name: DIM
      variant: mmediting            # or paddleseg
      model: model.json             # relative to this file
      params: model.pdiparams
      files: [model.json, model.pdiparams]
      inputs:
        - {name: img, shape: [-1, 3, -1, -1], dtype: float32, meaning: ...}
        - {name: trimap, shape: [-1, 1, -1, -1], dtype: float32, meaning: ...}
      output: {name: fetch_name_0, shape: [-1, 1, -1, -1], meaning: ...}
      preprocess: {color: RGB, input_range: ..., mean: [...], std: [...], pad_multiple: 32,
                   pad_mode: reflect, pad_where: bottom-right, trimap: ...,
                   procedure: "reflect-padded ..., as in mmediting's DIM test pipeline"}
      onnx: model.onnx              # with tools/export.py --format onnx
      postprocess: ...
      check: {max_alpha_diff: ..., tolerance: 0.0001, sizes: [...], onnx_...: ...}

``pad_multiple`` is the variant's published procedure unless the config changed it: 32 for the
paper's network (mmediting pads to 32), 1 (no padding) for PaddleSeg's, whose evaluation and
prediction feed the image unpadded. ``procedure`` says which, in words.
"""
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import yaml

from ppmatting.utils.errors import ConfigError
from ppmatting.utils.io import atomic_write_bytes

DEPLOY_FILE = "deploy.yaml"
INPUT_NAMES = ("img", "trimap")

IMG_MEANING = ("RGB photo, float32 N x 3 x H x W: 8-bit values / 255, then (x - mean) / std per "
               "channel, padded at the bottom and right (reflect) to a multiple of pad_multiple "
               "(1: not padded)")
TRIMAP_MEANING = ("trimap, float32 N x 1 x H x W with the raw values 0 (background), 128 (unknown) "
                  "and 255 (foreground), padded like img; the graph divides by 255 itself")
OUTPUT_MEANING = ("alpha matte, float32 N x 1 x H x W in [0, 1]; crop to the original size, clip, "
                  "then set 0 where trimap == 0 and 1 where trimap == 255")
POSTPROCESS = "crop the padding off, clip to [0, 1], force trimap==0 -> 0 and trimap==255 -> 1"


@dataclass
class DeployInfo:
    """A parsed ``deploy.yaml``. File paths are absolute."""
    path: str
    model_name: str
    variant: str
    model_file: str
    params_file: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    pad_multiple: int
    output_name: Optional[str] = None
    input_shapes: dict = field(default_factory=dict)
    onnx_file: Optional[str] = None
    files: List[str] = field(default_factory=list)
    check: dict = field(default_factory=dict)

    @property
    def folder(self):
        return os.path.dirname(self.path)

    @property
    def fixed_hw(self):
        """(H, W) when the graph was exported with a fixed ``--input_shape``, else ``None``."""
        shape = self.input_shapes.get("img")
        if shape and shape[2] > 0 and shape[3] > 0:
            return int(shape[2]), int(shape[3])
        return None

    @property
    def fixed_batch(self):
        shape = self.input_shapes.get("img")
        if shape and shape[0] > 0:
            return int(shape[0])
        return None


def input_entries(input_shape=None):
    """The ``inputs`` list of deploy.yaml for a dynamic graph, or a fixed ``[N, 3, H, W]``."""
    if input_shape is None:
        batch, height, width = -1, -1, -1
    else:
        batch, _, height, width = (int(v) for v in input_shape)
    return [
        {"name": "img", "shape": [batch, 3, height, width], "dtype": "float32",
         "meaning": IMG_MEANING},
        {"name": "trimap", "shape": [batch, 1, height, width], "dtype": "float32",
         "meaning": TRIMAP_MEANING},
    ]


def build_deploy_dict(model, files, output_name, input_shape=None, config_path=None,
                      weights=None, onnx_file=None, check=None):
    """The mapping written to deploy.yaml for ``model`` (a DIM) and the files in ``files``
    (names relative to the export folder, as written)."""
    batch = -1 if input_shape is None else int(input_shape[0])
    height = -1 if input_shape is None else int(input_shape[2])
    width = -1 if input_shape is None else int(input_shape[3])
    deploy = {
        "model_name": type(model).__name__,
        "variant": getattr(model, "variant", None),
        "config": config_path,
        "weights": weights,
        "model": "model.json",
        "params": "model.pdiparams",
        "files": list(files),
        "inputs": input_entries(input_shape),
        "output": {"name": output_name, "shape": [batch, 1, height, width], "dtype": "float32",
                   "meaning": OUTPUT_MEANING},
        "preprocess": {
            "color": "RGB",
            "input_range": "[0, 1] (8-bit / 255, 16-bit / 65535)",
            "mean": [float(v) for v in model.input_mean],
            "std": [float(v) for v in model.input_std],
            "pad_multiple": int(model.pad_multiple),
            "pad_mode": "reflect",
            "pad_where": "bottom-right",
            "trimap": "raw 0 / 128 / 255 as float32 (not divided by 255; the graph does that)",
        },
        "postprocess": POSTPROCESS,
    }
    procedure = getattr(model, "procedure", None)
    if procedure:
        deploy["preprocess"]["procedure"] = procedure
    if onnx_file:
        deploy["onnx"] = onnx_file
    if check:
        deploy["check"] = check
    return {"Deploy": deploy}


class _Dumper(yaml.SafeDumper):
    """Lists of plain values (shapes, mean, std) on one line: ``shape: [-1, 3, -1, -1]``."""


def _represent_list(dumper, values):
    flow = all(isinstance(v, (int, float, str, bool)) and len(str(v)) < 24 for v in values)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", values, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def write_deploy_yaml(folder, deploy_dict):
    """Write ``folder/deploy.yaml`` atomically; returns its path."""
    path = os.path.join(folder, DEPLOY_FILE)
    header = ("# Written by tools/export.py. Run it with:\n"
              "#   python deploy/python/infer.py --config deploy.yaml --image_path IMG "
              "--trimap_path TRIMAP\n")
    text = header + yaml.dump(deploy_dict, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                              width=100)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _require(mapping, key, path, kind=None):
    if key not in mapping or mapping[key] is None:
        raise ConfigError(f"{path}: Deploy.{key} is missing (re-export with tools/export.py)")
    value = mapping[key]
    if kind is not None and not isinstance(value, kind):
        raise ConfigError(f"{path}: Deploy.{key} must be a {kind.__name__}, got {value!r}")
    return value


def _three(values, key, path):
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3:
        raise ConfigError(f"{path}: Deploy.preprocess.{key} must be 3 numbers, got {values!r}")
    return numbers


def load_deploy_info(path):
    """Read ``deploy.yaml`` (or the export folder holding it) into a :class:`DeployInfo`.

    Raises :class:`ConfigError` naming the file for a missing file, bad YAML, a missing key, or
    a named file that is not there (e.g. a ``model.pdmodel`` from an old exporter).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, DEPLOY_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: deploy file not found (tools/export.py writes "
                          f"SAVE_DIR/{DEPLOY_FILE})")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("Deploy"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'Deploy' section")
    deploy = data["Deploy"]
    folder = os.path.dirname(os.path.abspath(path))

    def existing(name, key):
        full = name if os.path.isabs(name) else os.path.join(folder, name)
        if not os.path.isfile(full):
            raise ConfigError(f"{path}: Deploy.{key} names {name}, which is not in {folder}")
        return full

    model_file = existing(_require(deploy, "model", path, str), "model")
    params_file = existing(_require(deploy, "params", path, str), "params")
    pre = _require(deploy, "preprocess", path, dict)
    pad_multiple = pre.get("pad_multiple", 32)
    if isinstance(pad_multiple, bool) or not isinstance(pad_multiple, int) or pad_multiple < 1:
        raise ConfigError(f"{path}: Deploy.preprocess.pad_multiple must be a positive integer, "
                          f"got {pad_multiple!r}")
    shapes = {}
    for entry in deploy.get("inputs") or []:
        if isinstance(entry, dict) and entry.get("name") in INPUT_NAMES:
            shapes[entry["name"]] = [int(v) for v in entry.get("shape", [-1, -1, -1, -1])]
    missing = [name for name in INPUT_NAMES if name not in shapes]
    if missing:
        raise ConfigError(f"{path}: Deploy.inputs lacks {', '.join(missing)}; the graph takes "
                          f"img and trimap")
    onnx = deploy.get("onnx")
    output = deploy.get("output") or {}
    return DeployInfo(
        path=os.path.abspath(path),
        model_name=str(deploy.get("model_name", "DIM")),
        variant=str(deploy.get("variant")),
        model_file=model_file,
        params_file=params_file,
        mean=_three(_require(pre, "mean", path), "mean", path),
        std=_three(_require(pre, "std", path), "std", path),
        pad_multiple=pad_multiple,
        output_name=output.get("name"),
        input_shapes=shapes,
        onnx_file=existing(onnx, "onnx") if onnx else None,
        files=list(deploy.get("files") or []),
        check=dict(deploy.get("check") or {}),
    )
