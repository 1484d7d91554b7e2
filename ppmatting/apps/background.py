"""Backgrounds for background replacement: what the user typed -> an H x W x 3 picture.

1. :func:`parse_background` turns ``white``, ``#1e90ff``, ``30,144,255``, ``beach.jpg`` or
   ``blur:12`` into a :class:`Background`, reading an image file at once so that a bad background
   fails before any slow matting runs.
2. :func:`render_background` makes the H x W x 3 background for one photo: a colour fill, an image
   fitted to the photo (:func:`fit_image`: ``cover``, ``stretch`` or ``tile``) or the photo's own
   background blurred (:func:`blurred_background`, a portrait effect).

The compositing formula itself is ``ppmatting.utils.compose.composite``. Ranges: ``image01`` /
``bg01`` float32 H x W x 3 RGB in [0, 1]; ``alpha01`` float32 H x W in [0, 1].
"""
import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from ppmatting.utils.errors import InputError
from ppmatting.utils.io import IMAGE_EXTENSIONS, read_image

FIT_MODES = ("cover", "stretch", "tile")

# A small palette of names people type; anything else can be given as #rrggbb or r,g,b.
# Values are the CSS / X11 sRGB definitions.
COLOR_NAMES = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "lightgray": (211, 211, 211),
    "lightgrey": (211, 211, 211),
    "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "navy": (0, 0, 128),
    "skyblue": (135, 206, 235),
    "dodgerblue": (30, 144, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "brown": (165, 42, 42),
    "beige": (245, 245, 220),
    "teal": (0, 128, 128),
    "olive": (128, 128, 0),
    "maroon": (128, 0, 0),
    "gold": (255, 215, 0),
    # chroma-key colours, for users who feed the result to a video editor
    "greenscreen": (0, 177, 64),
    "bluescreen": (0, 71, 187),
}

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_BLUR = re.compile(r"^blur(?::(.*))?$", re.IGNORECASE)
DEFAULT_BLUR_SIGMA = 12.0

BACKGROUND_HELP = ("a colour name (white, gray, dodgerblue, ...), #rrggbb, r,g,b (0-255), "
                   "an image file, or blur:SIGMA (the photo's own background blurred)")


# ---- 1. parsing ----------------------------------------------------------------------------------
def parse_color(text):
    """A colour as typed by a user -> ``(r, g, b)`` floats in [0, 1], or ``None`` when ``text`` is
    not written as a colour at all (so the caller can try it as a file name).

    Accepted: a name from :data:`COLOR_NAMES` (case-insensitive), ``#rgb``, ``#rrggbb`` and
    ``r,g,b`` with integers 0-255. Text that is clearly meant as a colour but malformed
    (``#12345``, ``300,0,0``) raises :class:`InputError`.
    """
    text = str(text).strip()
    key = text.lower().replace(" ", "").replace("_", "").replace("-", "")
    if key in COLOR_NAMES:
        return tuple(v / 255.0 for v in COLOR_NAMES[key])
    if text.startswith("#"):
        if not _HEX.match(text):
            raise InputError(f"background '{text}': a hex colour is #rgb or #rrggbb (e.g. #1e90ff)")
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        return tuple(int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    if "," in text and not os.path.exists(text):
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise InputError(f"background '{text}': r,g,b takes three integers 0-255 "
                             f"(e.g. 30,144,255)") from None
        if len(values) != 3 or not all(0 <= v <= 255 for v in values):
            raise InputError(f"background '{text}': r,g,b takes three integers 0-255 "
                             f"(e.g. 30,144,255)")
        return tuple(v / 255.0 for v in values)
    return None


@dataclass(frozen=True)
class Background:
    """A parsed ``--background`` value.

    kind: ``"color"`` (``color01`` set), ``"image"`` (``image01`` and ``path`` set) or ``"blur"``
    (``sigma`` set, in pixels of the photo). ``spec`` is the text as given.
    """
    kind: str
    spec: str
    color01: Optional[Tuple[float, float, float]] = None
    image01: Optional[np.ndarray] = None
    path: Optional[str] = None
    sigma: Optional[float] = None

    @property
    def label(self):
        """For people: the picture's file name, else the value as given (``#f5deb3``,
        ``blur:8``)."""
        return os.path.basename(self.path) if self.kind == "image" else self.spec.strip()

    @property
    def tag(self):
        """A short file-name-safe label: ``white``, ``1e90ff``, ``30-144-255``, ``beach``,
        ``blur12``."""
        if self.kind == "image":
            label = os.path.splitext(os.path.basename(self.path))[0]
        elif self.kind == "blur":
            label = f"blur{self.sigma:g}"
        else:
            label = self.spec.strip().lstrip("#").replace(",", "-")
        return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "bg"


def parse_background(spec):
    """``--background`` text -> :class:`Background`. Image files are read here (into ``image01``),
    so a missing or unreadable background is reported before any matting.

    Raises :class:`InputError` with one line naming the value and the accepted forms.
    """
    text = str(spec).strip()
    if not text:
        raise InputError(f"background is empty; expected {BACKGROUND_HELP}")
    blur = _BLUR.match(text)
    if blur and not os.path.exists(text):
        raw = blur.group(1)
        try:
            sigma = DEFAULT_BLUR_SIGMA if raw in (None, "") else float(raw)
        except ValueError:
            sigma = float("nan")
        if not math.isfinite(sigma) or sigma <= 0:
            raise InputError(f"background '{text}': blur:SIGMA needs a positive number of pixels "
                             f"(e.g. blur:12)")
        return Background(kind="blur", spec=text, sigma=sigma)
    color = parse_color(text)
    if color is not None:
        return Background(kind="color", spec=text, color01=color)
    if os.path.isfile(text):
        return Background(kind="image", spec=text, image01=read_image(text), path=text)
    if os.path.isdir(text):
        raise InputError(f"background '{text}': is a folder; expected {BACKGROUND_HELP}")
    looks_like_file = text.lower().endswith(IMAGE_EXTENSIONS) or os.sep in text or "/" in text
    if looks_like_file:
        raise InputError(f"background '{text}': file not found")
    close = difflib.get_close_matches(text.lower(), list(COLOR_NAMES), n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise InputError(f"background '{text}': unknown colour name and no such file{hint}; "
                     f"expected {BACKGROUND_HELP}")


# ---- 2. rendering --------------------------------------------------------------------------------
def _resize(image01, width, height):
    """Resize with the filter that suits the direction: area averaging when shrinking (no
    aliasing), bicubic when enlarging (clipped, since cubic overshoots at edges)."""
    src_h, src_w = image01.shape[:2]
    if (width, height) == (src_w, src_h):
        return image01.astype(np.float32, copy=True)
    shrinking = width * height < src_w * src_h
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = cv2.resize(image01.astype(np.float32), (width, height), interpolation=interp)
    return np.clip(out, 0.0, 1.0)


def fit_image(bg01, size_hw, mode="cover"):
    """Fit a background picture to ``size_hw`` = (H, W).

    * ``cover`` (default): scale keeping the aspect ratio until the picture covers the whole
      target, then crop the centre. Nothing is distorted; the overflow of one side is cut.
    * ``stretch``: resize to exactly H x W; the aspect ratio changes if it differs.
    * ``tile``: repeat the picture at its own size from the top-left corner and crop.

    Args:
        bg01: float32 h x w x 3 in [0, 1].
    Returns:
        float32 H x W x 3 in [0, 1].
    """
    height, width = (int(v) for v in size_hw)
    if height <= 0 or width <= 0:
        raise ValueError(f"target size must be positive, got {size_hw}")
    bg01 = np.asarray(bg01, dtype=np.float32)
    if bg01.ndim == 2:
        bg01 = np.repeat(bg01[:, :, None], 3, axis=2)
    src_h, src_w = bg01.shape[:2]
    if mode == "stretch":
        return _resize(bg01, width, height)
    if mode == "tile":
        reps = (-(-height // src_h), -(-width // src_w), 1)
        return np.ascontiguousarray(np.tile(bg01, reps)[:height, :width])
    if mode != "cover":
        raise InputError(f"background fit '{mode}': expected one of {', '.join(FIT_MODES)}")
    scale = max(height / src_h, width / src_w)
    # ceil (with a guard against 600*0.6666 = 399.99996) so the scaled picture is never short
    new_w = max(width, int(math.ceil(src_w * scale - 1e-6)))
    new_h = max(height, int(math.ceil(src_h * scale - 1e-6)))
    scaled = _resize(bg01, new_w, new_h)
    top = (new_h - height) // 2
    left = (new_w - width) // 2
    return np.ascontiguousarray(scaled[top:top + height, left:left + width])


def blurred_background(image01, alpha01, sigma):
    """The photo's background with a Gaussian blur of ``sigma`` pixels, without the subject.

    A plain blur of the photo would smear the subject's colours into a halo around it. Instead the
    blur is a normalised convolution weighted by ``1 - alpha``: each output pixel averages only
    background evidence, ``G*(image*(1-alpha)) / G*(1-alpha)``. Deep inside a large subject there is
    no background within reach (the weight sum vanishes); there the plain blur is used, which the
    opaque subject covers anyway.

    Returns float32 H x W x 3 in [0, 1].
    """
    image01 = np.asarray(image01, dtype=np.float32)
    weight = (1.0 - np.clip(np.asarray(alpha01, dtype=np.float32), 0.0, 1.0))
    numerator = cv2.GaussianBlur(image01 * weight[:, :, None], (0, 0), sigma,
                                 borderType=cv2.BORDER_REFLECT)
    denominator = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    plain = cv2.GaussianBlur(image01, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    # blend over to the plain blur where the weight sum gets too small to divide by reliably
    trust = np.clip(denominator / 0.05, 0.0, 1.0)[:, :, None]
    normalised = numerator / np.maximum(denominator, 1e-6)[:, :, None]
    return np.clip(trust * normalised + (1.0 - trust) * plain, 0.0, 1.0).astype(np.float32)


def render_background(background, size_hw, fit="cover", image01=None, alpha01=None):
    """Make the H x W x 3 float32 background in [0, 1] that ``background`` describes.

    ``fit`` applies to image backgrounds (see :func:`fit_image`); ``image01`` and ``alpha01`` (the
    photo and its matte) are needed for ``blur``.
    """
    height, width = (int(v) for v in size_hw)
    if background.kind == "color":
        return np.broadcast_to(np.asarray(background.color01, np.float32),
                               (height, width, 3)).copy()
    if background.kind == "image":
        return fit_image(background.image01, (height, width), fit)
    if background.kind == "blur":
        if image01 is None or alpha01 is None:
            raise ValueError("a blur background needs the photo and its alpha matte")
        return blurred_background(image01, alpha01, background.sigma)
    raise ValueError(f"unknown background kind {background.kind!r}")
