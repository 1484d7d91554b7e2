"""Trimaps from what a user paints in the web app, and the pictures the app shows (no UI code).

The web app (``ppmatting.apps.web_app``) gives four ways to a trimap; three of them are brush
strokes on a layer over the photo, which Gradio's ImageEditor hands over as RGBA ``uint8`` H x W x 4
arrays (alpha 0 where nothing was painted). Opaque brushes of fixed colours are used, so a later
stroke replaces an earlier one and every painted pixel is exactly one brush colour; the nearest
colour is taken anyway, so a browser that antialiases stroke edges still maps cleanly.

* :func:`trimap_from_paint`: white / black / gray brushes = foreground / background / unknown;
  unpainted pixels are background (the hand-drawn trimap: paint the subject white, its hair gray)
  or unknown.
* :func:`trimap_from_scribbles`: a few white and black strokes, everything else unknown (how
  closed-form matting was first used: Levin, Lischinski and Weiss, PAMI 2008, take scribbles as
  the user input).
* :func:`trimap_from_painted_mask`: any stroke marks the subject; the unknown band around the
  mask's edge is ``tools/make_trimap.py``'s rule
  (:func:`ppmatting.transforms.trimap.trimap_from_mask`).

Ranges: ``trimap_u8`` uint8 H x W in {0, 128, 255}; ``image01`` float32 H x W x 3 in [0, 1].
"""
import cv2
import numpy as np

from ppmatting.transforms.trimap import trimap_from_mask
from ppmatting.utils.errors import InputError
from ppmatting.utils.io import to_uint8

# brush colours (CSS hex, as Gradio's Brush takes them) and the trimap value each one paints
FOREGROUND_BRUSH = "#ffffff"
BACKGROUND_BRUSH = "#000000"
UNKNOWN_BRUSH = "#808080"
MASK_BRUSH = "#ff3d7f"
BRUSH_VALUES = {FOREGROUND_BRUSH: 255, BACKGROUND_BRUSH: 0, UNKNOWN_BRUSH: 128}
# a layer pixel counts as painted from this opacity on (strokes are opaque; edges may be softer)
PAINTED_FROM_ALPHA = 128
UNPAINTED = -1
UNPAINTED_CHOICES = ("background", "unknown")


def _hex_rgb(color):
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))


def _layers_fitted(layers, size_hw, what):
    """The editor's layers as RGBA uint8 arrays of the photo's size, bottom layer first.

    The editor's canvas takes the photo's size, so layers normally match it; a layer of the same
    aspect ratio but another size (a browser that scaled the canvas) is resized with nearest
    neighbours, which keeps stroke colours exact. Another aspect ratio means the strokes were made
    over another picture: an error.
    """
    height, width = size_hw
    fitted = []
    for layer in layers or []:
        if layer is None:
            continue
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            raise InputError(f"{what}: expected RGBA brush layers, got an array of shape "
                             f"{layer.shape}")
        if layer.dtype != np.uint8:
            raise InputError(f"{what}: expected 8-bit brush layers, got {layer.dtype}")
        if layer.shape[:2] != (height, width):
            layer_h, layer_w = layer.shape[:2]
            if abs(layer_w / layer_h - width / height) > 0.01 * width / height:
                raise InputError(f"{what}: the strokes were painted on a {layer_w}x{layer_h} "
                                 f"picture but the photo is {width}x{height}; load the photo "
                                 f"again and repaint")
            layer = cv2.resize(layer, (width, height), interpolation=cv2.INTER_NEAREST)
        fitted.append(layer)
    return fitted


def paint_labels(layers, size_hw, brushes=BRUSH_VALUES, what="painted trimap"):
    """Per pixel, the trimap value of the brush that painted it last, or ``UNPAINTED`` (-1).

    Args:
        layers: RGBA uint8 H x W x 4 arrays, bottom first (upper layers win).
        size_hw: the photo's (H, W).
        brushes: {css hex colour: trimap value}; a painted pixel takes the nearest colour's value.
    Returns int16 H x W in {-1, 0, 128, 255}.
    """
    colors = np.array([_hex_rgb(c) for c in brushes], np.int32)
    values = np.array(list(brushes.values()), np.int16)
    labels = np.full(tuple(size_hw), UNPAINTED, np.int16)
    for layer in _layers_fitted(layers, size_hw, what):
        painted = layer[:, :, 3] >= PAINTED_FROM_ALPHA
        if not painted.any():
            continue
        rgb = layer[:, :, :3][painted].astype(np.int32)
        # nearest brush colour, one colour at a time (memory stays two values per painted pixel)
        best = np.full(len(rgb), np.iinfo(np.int32).max, np.int32)
        chosen = np.zeros(len(rgb), np.int16)
        for color, value in zip(colors, values):
            distance = ((rgb - color) ** 2).sum(axis=1, dtype=np.int32)
            closer = distance < best
            best[closer] = distance[closer]
            chosen[closer] = value
        labels[painted] = chosen
    return labels


def painted_mask(layers, size_hw, what="painted mask"):
    """True where any layer holds a stroke (of any colour): bool H x W."""
    mask = np.zeros(tuple(size_hw), bool)
    for layer in _layers_fitted(layers, size_hw, what):
        mask |= layer[:, :, 3] >= PAINTED_FROM_ALPHA
    return mask


def trimap_from_paint(layers, size_hw, unpainted="background"):
    """A hand-painted trimap: white / black / gray strokes; ``unpainted`` pixels are
    ``"background"`` (0) or ``"unknown"`` (128). Returns uint8 H x W in {0, 128, 255}."""
    if unpainted not in UNPAINTED_CHOICES:
        raise InputError(f"unpainted pixels: '{unpainted}' is not one of "
                         f"{', '.join(UNPAINTED_CHOICES)}")
    labels = paint_labels(layers, size_hw)
    if not (labels != UNPAINTED).any():
        raise InputError("painted trimap: nothing is painted yet; paint the subject white, "
                         "its hair and soft edges gray (and the background black)")
    fill = 0 if unpainted == "background" else 128
    return np.where(labels == UNPAINTED, fill, labels).astype(np.uint8)


def trimap_from_scribbles(layers, size_hw):
    """A few foreground (white) and background (black) strokes; everything else unknown.

    Returns uint8 H x W in {0, 128, 255}. Raises :class:`InputError` unless there is at least one
    stroke of each kind (with only one kind, the matte is that constant: nothing to solve).
    """
    labels = paint_labels(layers, size_hw, what="scribbles")
    missing = [name for value, name in ((255, "foreground (white)"), (0, "background (black)"))
               if not (labels == value).any()]
    if missing:
        raise InputError(f"scribbles: no {' and no '.join(missing)} stroke yet; draw at least "
                         f"one stroke on the subject and one on the background")
    return np.where(labels == UNPAINTED, 128, labels).astype(np.uint8)


def trimap_from_painted_mask(layers, size_hw, unknown_width):
    """A roughly painted subject mask widened into a trimap by ``unknown_width`` pixels on each
    side of its edge (``tools/make_trimap.py``'s rule). Returns uint8 H x W in {0, 128, 255}."""
    mask = painted_mask(layers, size_hw)
    if not mask.any():
        raise InputError("subject mask: nothing is painted yet; paint over the subject roughly")
    return trimap_from_mask_array(mask, unknown_width, "painted mask")


def trimap_from_mask_array(mask, unknown_width, what="mask"):
    """``tools/make_trimap.py``'s band around a mask (bool, or uint8/float image of any range
    that :func:`trimap_from_mask` accepts); checks the width and that a band results."""
    unknown_width = int(unknown_width)
    if unknown_width < 1:
        raise InputError(f"{what}: the unknown band must be at least 1 pixel wide, got "
                         f"{unknown_width}")
    trimap_u8 = trimap_from_mask(mask, unknown_width)
    if not (trimap_u8 == 128).any():
        raise InputError(f"{what}: gives no unknown band (is it empty or all white?)")
    return trimap_u8


def check_trimap(trimap_u8, what="trimap"):
    """Refuse a trimap with nothing to matte or nothing to start from, in words a user follows."""
    if not (trimap_u8 == 128).any():
        raise InputError(f"{what} has no unknown (gray 128) region, so there is nothing to "
                         f"matte; mark the hair and soft edges gray")
    if not ((trimap_u8 == 0).any() or (trimap_u8 == 255).any()):
        raise InputError(f"{what} has no known pixels (it is all gray 128); mark some of the "
                         f"subject white (255) or of the background black (0)")
    return trimap_u8


# ---- pictures for the page -----------------------------------------------------------------------
UNKNOWN_TINT = np.array([1.0, 0.55, 0.0], np.float32)  # orange: stands out on skin, hair and sky


def trimap_overlay(image01, trimap_u8):
    """The trimap shown over the photo: foreground as is, background dimmed to 30 %, unknown
    half-tinted orange. Returns uint8 H x W x 3 RGB."""
    image01 = np.asarray(image01, np.float32)
    out = image01.copy()
    background = trimap_u8 == 0
    unknown = trimap_u8 == 128
    out[background] *= 0.3
    out[unknown] = 0.5 * out[unknown] + 0.5 * UNKNOWN_TINT
    return to_uint8(out)
