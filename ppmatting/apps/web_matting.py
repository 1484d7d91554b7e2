"""What the web app does for one request, without any UI code: pick the model, read the photo,
check the trimap, matte, write the results. ``ppmatting.apps.web_app`` wires these into the page.

The work itself is the tools' code: ``ppmatting.core.predict.load_matter`` runs the matting (the
same choice of exported predictor or ``model.predict`` as ``tools/predict.py``),
``ppmatting.core.writer.ResultWriter`` estimates the foreground and writes the alpha, the RGBA
cut-out and the composite (as ``tools/bg_replace.py`` does), and
``ppmatting.apps.background.parse_background`` makes the new background.

Ranges: ``image01`` float32 H x W x 3 RGB in [0, 1]; ``alpha01`` float32 H x W in [0, 1];
``trimap_u8`` uint8 H x W in {0, 128, 255}.
"""
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ppmatting.apps.background import parse_background
from ppmatting.apps.compare import on_checkerboard
from ppmatting.apps.web_trimap import (check_trimap, trimap_from_mask_array, trimap_from_paint,
                                       trimap_from_painted_mask, trimap_from_scribbles,
                                       trimap_overlay)
from ppmatting.cvlibs.config import PROJECT_ROOT, load_config_dict
from ppmatting.utils.errors import InputError, PPMattingError
from ppmatting.utils.io import check_same_size, read_image, read_trimap, to_uint8, write_image

# the zoo's classical methods, in the order the page lists them; closed-form is the default
ZOO_CONFIGS = (
    ("closed-form", "configs/ml/closed_form.yml"),
    ("KNN", "configs/ml/knn.yml"),
    ("learning-based", "configs/ml/lbdm.yml"),
    ("random walk", "configs/ml/random_walk.yml"),
    ("large kernel", "configs/ml/large_kernel.yml"),
)
DIM_CONFIG = "configs/dim/dim-vgg16.yml"

# a photo larger than this is refused before it is decoded (a 6000 x 4000 camera photo fits)
DEFAULT_MAX_PHOTO_PIXELS = 25_000_000
# scribbles leave almost the whole photo unknown, so the solve is as large as the photo: classical
# methods solve at most this many pixels (about a 400 x 375 photo) and upsample guided by the photo
DEFAULT_SCRIBBLE_PIXELS = 150_000
SCRIBBLE_PIXEL_RANGE = (20_000, 1_000_000)  # the page's slider
# result folders of earlier requests kept on disk (each holds a few PNGs of one photo)
KEEP_RESULTS = 20


# ---- model choice --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A model parameter the page offers: ``key`` is the path below ``model:`` in the config
    (``n_neighbors.0`` = the first entry of a list)."""
    key: str
    label: str
    minimum: float
    maximum: float
    step: float
    integer: bool = False
    info: str = ""


# The main parameters of the classical methods (a method shows those its config has). DIM has none:
# its behaviour is in its weights.
PARAMS = (
    Param("epsilon", "epsilon (regularisation)", 1e-9, 1e-2, 0.0,
          info="larger: smoother matte, faster solve (default 1e-7)"),
    Param("radius", "window radius (pixels)", 1, 15, 1, integer=True,
          info="1 = 3x3 windows; larger windows see farther but cost more"),
    Param("n_neighbors.0", "neighbours (local pass)", 3, 60, 1, integer=True,
          info="pixels each pixel is tied to in the first KNN pass"),
    Param("solve_scale", "solve scale", 0.1, 1.0, 0.05,
          info="< 1: solve at that fraction of the resolution and upsample guided by the photo "
               "(for large photos)"),
)


def _config_value(model_cfg, key):
    node = model_cfg
    for part in key.split("."):
        if isinstance(node, list):
            index = int(part)
            if index >= len(node):
                return None
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


@dataclass
class ModelChoice:
    """One entry of the page's model list.

    ``config_path`` (absolute) may be None only for an export folder given as ``model_path``.
    ``defaults`` holds the config's value of every :data:`PARAMS` key the model has.
    """
    label: str
    config_path: Optional[str]
    model_path: Optional[str] = None
    classical: bool = True
    defaults: dict = field(default_factory=dict)

    @property
    def params(self):
        return [p for p in PARAMS if p.key in self.defaults]

    def opts(self, values=None, max_memory_gb=None, max_pixels=None):
        """``--opts`` strings for this model: parameter ``values`` {key: value} that differ from
        the config, the memory budget and a pixel cap (classical methods only)."""
        opts = []
        for param in self.params:
            value = (values or {}).get(param.key)
            if value is None:
                continue
            value = int(round(value)) if param.integer else float(value)
            if not (param.minimum <= value <= param.maximum):
                raise InputError(f"{self.label}: {param.label} must be between {param.minimum:g} "
                                 f"and {param.maximum:g}, got {value:g}")
            if value != self.defaults[param.key]:
                opts.append(f"model.{param.key}={value!r}")
        if self.classical:
            if max_memory_gb is not None:
                opts.append(f"model.max_memory_gb={float(max_memory_gb)!r}")
            if max_pixels is not None:
                opts.append(f"model.max_pixels={int(max_pixels)}")
        return opts


def _is_deploy_folder(path):
    return bool(path) and os.path.isfile(os.path.join(path, "deploy.yaml"))


def _make_choice(label, config_path, model_path=None):
    if config_path is None:
        return ModelChoice(label, None, model_path, classical=False)
    config_path = os.path.abspath(config_path)
    model_cfg = load_config_dict(config_path).get("model") or {}
    defaults = {}
    classical = model_path is None and "solve_scale" in model_cfg
    if classical:
        defaults = {p.key: _config_value(model_cfg, p.key) for p in PARAMS}
        defaults = {k: v for k, v in defaults.items() if isinstance(v, (int, float))}
    return ModelChoice(label, config_path, model_path, classical, defaults)


def model_choices(config_path=None, model_path=None):
    """The page's models: ``(OrderedDict label -> ModelChoice, default label)``.

    The zoo's classical methods always; with ``model_path`` (weights, or a ``tools/export.py``
    folder) also the network, default ``configs/dim/dim-vgg16.yml``, which becomes the default
    choice. A ``config_path`` outside the zoo list is added; it is the default choice too.
    Weights are only ever given here, at launch: the page never takes a weights file (loading one
    runs Python's pickle).
    """
    choices = OrderedDict()
    zoo_paths = {}
    for label, relative in ZOO_CONFIGS:
        path = os.path.join(PROJECT_ROOT, relative)
        choices[label] = _make_choice(label, path)
        zoo_paths[os.path.abspath(path)] = label
    default = ZOO_CONFIGS[0][0]
    if config_path and not os.path.isfile(config_path):
        raise InputError(f"{config_path}: --config file not found")
    if model_path:
        if not os.path.exists(model_path):
            raise InputError(f"{model_path}: --model_path not found")
        if _is_deploy_folder(model_path):
            config = config_path
        else:
            config = config_path or os.path.join(PROJECT_ROOT, DIM_CONFIG)
        label = f"DIM ({os.path.basename(os.path.normpath(model_path))})"
        choices[label] = _make_choice(label, config, model_path)
        default = label
    elif config_path:
        absolute = os.path.abspath(config_path)
        if absolute in zoo_paths:
            default = zoo_paths[absolute]
        else:
            label = f"{os.path.splitext(os.path.basename(config_path))[0]} (--config)"
            choices[label] = _make_choice(label, config_path)
            default = label
    return choices, default


class MatterCache:
    """``load_matter`` results kept by (config, weights, opts), so DIM's weights are read and its
    Paddle Inference graph built once, not per request. Holds the last ``size`` models."""

    def __init__(self, size=4, loader=None):
        from ppmatting.core.predict import load_matter

        self.size = size
        self.loader = loader or load_matter
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice, opts):
        key = (choice.config_path, choice.model_path, tuple(opts))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            matter = self.loader(choice.config_path, choice.model_path, list(opts) or None)
            self._items[key] = matter
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return matter


# ---- inputs --------------------------------------------------------------------------------------
def shown_name(path):
    """The name a user knows a file by: uploads keep their original name as the file name."""
    return os.path.basename(os.fspath(path)) if path else "file"


def read_upload(reader, path):
    """``reader(path)``; an error names the upload by its file name, not by the server's copy."""
    try:
        return reader(path)
    except InputError as err:
        raise InputError(str(err).replace(os.fspath(path), shown_name(path))) from None


def image_size(path):
    """(width, height) from the file's header, without decoding the pixels; None when the header
    cannot be read (the decoder then gives the error)."""
    import PIL.Image

    try:
        with PIL.Image.open(path) as image:
            return image.size
    except PIL.Image.DecompressionBombError:
        return (1 << 16, 1 << 16)  # over any budget; reported below
    except Exception:  # not an image PIL knows: OpenCV's reader decides and names the problem
        return None


def check_photo(path, max_pixels=DEFAULT_MAX_PHOTO_PIXELS):
    """Check an uploaded photo from its header (fast: the pixels are not decoded unless the header
    is unreadable, in which case decoding names the problem). Returns (width, height).

    Raises :class:`InputError` naming the file: not an image, or more than ``max_pixels`` pixels.
    """
    if not path:
        raise InputError("no photo: upload one, or click one of the examples")
    size = image_size(path)
    if size is None:
        height, width = read_photo(path, max_pixels=None).shape[:2]
        size = (width, height)
    if max_pixels and size[0] * size[1] > max_pixels:
        raise InputError(f"{shown_name(path)}: {size[0]}x{size[1]} pixels is larger than this "
                         f"app's limit of {max_pixels / 1e6:.3g} megapixels (--max_photo_pixels); "
                         f"shrink the photo, or run tools/predict.py with model.solve_scale")
    return size


def read_photo(path, max_pixels=DEFAULT_MAX_PHOTO_PIXELS):
    """The photo as ``image01`` (16-bit and RGBA files included; the alpha channel is dropped),
    after :func:`check_photo` when ``max_pixels`` is set."""
    if max_pixels:
        check_photo(path, max_pixels)
    if not path:
        raise InputError("no photo: upload one, or click one of the examples")
    return read_upload(read_image, path)


def read_trimap_upload(path, size_hw):
    """An uploaded trimap (any range; ``ppmatting.utils.io.read_trimap``'s rule) of the photo's
    size."""
    if not path:
        raise InputError("no trimap uploaded: upload one, or make one in another tab")
    trimap_u8 = read_upload(read_trimap, path)
    check_same_size(tuple(size_hw), "the photo", trimap_u8.shape, shown_name(path))
    return trimap_u8


def read_mask_upload(path, size_hw):
    """An uploaded rough subject mask (any gray image) of the photo's size: float32 H x W."""
    from ppmatting.utils.io import read_alpha

    mask01 = read_upload(read_alpha, path)
    check_same_size(tuple(size_hw), "the photo", mask01.shape, shown_name(path))
    return mask01


# the page's four ways to a trimap
TRIMAP_SOURCES = ("upload", "paint", "mask", "scribbles")


def build_trimap(source, size_hw, trimap_path=None, paint_layers=None, unpainted="background",
                 mask_layers=None, mask_path=None, unknown_width=10, scribble_layers=None,
                 check=True):
    """The trimap from the page's chosen ``source``:

    * ``upload``: the file ``trimap_path``;
    * ``paint``: brush layers (white / black / gray), ``unpainted`` pixels background or unknown;
    * ``mask``: an uploaded mask file ``mask_path`` if given, else the painted ``mask_layers``,
      widened into an unknown band of ``unknown_width`` pixels on each side;
    * ``scribbles``: white and black strokes, the rest unknown.

    Returns uint8 H x W in {0, 128, 255}; with ``check``, one that has an unknown region and some
    known pixels (else :class:`InputError`).
    """
    if source == "upload":
        trimap_u8 = read_trimap_upload(trimap_path, size_hw)
        what = shown_name(trimap_path)
    elif source == "paint":
        trimap_u8 = trimap_from_paint(paint_layers, size_hw, unpainted)
    elif source == "mask":
        if mask_path:
            trimap_u8 = trimap_from_mask_array(read_mask_upload(mask_path, size_hw),
                                               unknown_width, shown_name(mask_path))
        else:
            trimap_u8 = trimap_from_painted_mask(mask_layers, size_hw, unknown_width)
    elif source == "scribbles":
        trimap_u8 = trimap_from_scribbles(scribble_layers, size_hw)
    else:
        raise InputError(f"trimap source '{source}' is not one of {', '.join(TRIMAP_SOURCES)}")
    if source != "upload":
        what = {"paint": "the painted trimap", "mask": "the trimap from the mask",
                "scribbles": "the scribbles' trimap"}[source]
    return check_trimap(trimap_u8, what) if check else trimap_u8


def _rgb_from_css(color):
    """Gradio's colour picker gives ``#rrggbb`` or ``rgb(a)(r, g, b[, a])``; parse_background
    takes ``#rrggbb`` or ``r,g,b``."""
    text = str(color or "").strip()
    match = re.match(r"^rgba?\(([^)]*)\)$", text)
    if match:
        parts = [p.strip() for p in match.group(1).split(",")][:3]
        try:
            return ",".join(str(int(round(float(p)))) for p in parts)
        except ValueError:
            pass
    return text


BACKGROUND_KINDS = ("colour", "picture", "blurred photo")


def background_from_page(kind, color="#1e90ff", picture_path=None, blur_sigma=12.0):
    """The page's background controls -> ``ppmatting.apps.background.Background``."""
    if kind == "colour":
        return parse_background(_rgb_from_css(color))
    if kind == "picture":
        if not picture_path:
            raise InputError("new background: upload a picture, or pick a colour")
        return read_upload(parse_background, picture_path)
    if kind == "blurred photo":
        return parse_background(f"blur:{float(blur_sigma):g}")
    raise InputError(f"new background: '{kind}' is not one of {', '.join(BACKGROUND_KINDS)}")


def output_stem(path):
    """File-name-safe stem of the photo's name for the result files."""
    stem = os.path.splitext(shown_name(path))[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"


# ---- one request ---------------------------------------------------------------------------------
class ResultFolders:
    """A fresh folder per request below ``root``; only the last ``keep`` stay on disk."""

    def __init__(self, root, keep=KEEP_RESULTS):
        self.root = os.path.abspath(root)
        self.keep = keep
        os.makedirs(self.root, exist_ok=True)

    def new(self):
        folders = sorted((os.path.join(self.root, name) for name in os.listdir(self.root)
                          if name.startswith("result-")), key=os.path.getmtime)
        for old in folders[:max(0, len(folders) - self.keep + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return tempfile.mkdtemp(prefix="result-", dir=self.root)


@dataclass
class WebResult:
    """One matted photo: the files written (``paths``: alpha, rgba, composite, trimap) and the
    pictures the page shows (uint8 RGB)."""
    paths: dict
    photo_u8: np.ndarray
    alpha01: np.ndarray
    cutout_view_u8: np.ndarray
    composite_u8: np.ndarray
    trimap_view_u8: np.ndarray
    description: str
    seconds_matting: float
    seconds_total: float
    notes: list = field(default_factory=list)

    @property
    def summary(self):
        height, width = self.alpha01.shape
        text = (f"{width} x {height} px, {self.description}: matting {self.seconds_matting:.2f} s, "
                f"total {self.seconds_total:.2f} s")
        return "; ".join([text] + self.notes)


def _no_progress(fraction, text):
    return None


def memory_hint(err):
    """A memory refusal names ``--opts model.solve_scale``; on the page that is a slider."""
    message = str(err)
    if "solve_scale" in message:
        message += " (on this page: the 'solve scale' slider under Model)"
    return message


def matte_request(photo_path, image01, trimap_u8, choice, opts, background, results,
                  cache, report=_no_progress, notes=()):
    """Matte one photo and write its results into a new folder of ``results``.

    Args:
        photo_path: the uploaded photo (for the output names).
        image01, trimap_u8: the photo and its trimap, same H x W.
        choice, opts: a :class:`ModelChoice` and its ``--opts`` strings.
        background: a parsed ``Background`` for the composite.
        results: a :class:`ResultFolders`; cache: a :class:`MatterCache`.
        report: ``report(fraction, text)`` for the page's progress bar.
    Returns a :class:`WebResult`. Raises :class:`InputError` for anything the user can fix.
    """
    from ppmatting.core.predict import matte_one
    from ppmatting.core.writer import Composite, ResultWriter, write_all_or_nothing

    start = time.perf_counter()
    check_trimap(trimap_u8)
    report(0.05, "loading the model")
    matter = cache.get(choice, opts)
    report(0.15, f"matting with {choice.label}")
    matting_start = time.perf_counter()
    try:
        alpha01 = matte_one(matter.matte, image01, trimap_u8, shown_name(photo_path))
    except InputError as err:
        raise InputError(memory_hint(err)) from None
    seconds_matting = time.perf_counter() - matting_start
    report(0.75, "estimating the foreground colour and compositing")
    name = output_stem(photo_path)
    folder = results.new()
    writer = ResultWriter(folder, composites=[Composite(background, "{name}_composite.png")])
    items, saved = writer.render(name, image01, alpha01, trimap_u8)
    saved.paths["trimap"] = os.path.join(folder, f"{name}_trimap.png")
    items.append((saved.paths["trimap"], trimap_u8))
    report(0.9, "writing the results")
    write_all_or_nothing(items)
    rgba = dict(items)[saved.paths["rgba"]]
    return WebResult(
        paths=saved.paths,
        photo_u8=to_uint8(image01),
        alpha01=alpha01,
        cutout_view_u8=on_checkerboard(rgba, square=max(8, min(alpha01.shape) // 40)),
        composite_u8=to_uint8(saved.composites[0][1]),
        trimap_view_u8=trimap_overlay(image01, trimap_u8),
        description=matter.description.replace(PROJECT_ROOT + os.sep, ""),
        seconds_matting=seconds_matting,
        seconds_total=time.perf_counter() - start,
        notes=list(notes))


def save_trimap(trimap_u8, photo_path, results):
    """Write the trimap for download (a new result folder); returns its path."""
    path = os.path.join(results.new(), f"{output_stem(photo_path)}_trimap.png")
    write_image(path, trimap_u8)
    return path


def user_message(err):
    """The one line the page shows for an error: the message of a user error, the type and
    message of anything else (the traceback goes to the server's log)."""
    if isinstance(err, PPMattingError):
        return str(err)
    return f"{type(err).__name__}: {err}"

