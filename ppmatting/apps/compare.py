"""The comparison picture: photo, trimap, alpha and composites side by side with labels."""
import cv2
import numpy as np

from ppmatting.utils.io import to_uint8


def _as_rgb_u8(array):
    array = np.asarray(array)
    if array.dtype != np.uint8:
        if array.dtype == np.uint16:
            array = (array // 257).astype(np.uint8)
        else:
            array = to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 4:
        array = on_checkerboard(array)
    return array


def on_checkerboard(rgba_u8, square=8):
    """Show an RGBA uint8 H x W x 4 picture's transparency on a gray checkerboard of ``square``
    pixels, as image editors do: uint8 H x W x 3 RGB."""
    rgb = rgba_u8[:, :, :3].astype(np.float32) / 255.0
    alpha = rgba_u8[:, :, 3:].astype(np.float32) / 255.0
    yy, xx = np.mgrid[:rgba_u8.shape[0], :rgba_u8.shape[1]]
    checker = np.where(((yy // square) + (xx // square)) % 2 == 0, 0.8, 0.6).astype(np.float32)
    return to_uint8(alpha * rgb + (1 - alpha) * checker[:, :, None])


def _fit_label(text, max_width, font_scale):
    """Shorten ``text`` (ending in '..') until it fits ``max_width`` pixels."""
    def width(t):
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0]

    if width(text) <= max_width:
        return text
    while len(text) > 1 and width(text + "..") > max_width:
        text = text[:-1]
    return text + ".."


def compare_picture(panels, height=None, gap=6, label_height=24):
    """Panels side by side with a label above each: uint8 H' x W' x 3 RGB.

    Args:
        panels: list of ``(label, array)``; arrays are H x W (alpha, trimap) or H x W x 3/4,
            uint8, uint16 or float in [0, 1].
        height: panel height in pixels; default the first panel's height. Panels are scaled to it
            keeping their aspect ratio.
        gap: white space between panels.
        label_height: height of the label band (0 for none).
    """
    if not panels:
        raise ValueError("compare_picture needs at least one panel")
    images = [_as_rgb_u8(array) for _, array in panels]
    height = int(height or images[0].shape[0])
    scaled = []
    for image in images:
        width = max(1, int(round(image.shape[1] * height / image.shape[0])))
        interp = cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR
        scaled.append(cv2.resize(image, (width, height), interpolation=interp)
                      if image.shape[0] != height else image)
    total_w = sum(im.shape[1] for im in scaled) + gap * (len(scaled) + 1)
    canvas = np.full((height + label_height + 2 * gap, total_w, 3), 255, np.uint8)
    left = gap
    font_scale = max(0.35, min(0.6, label_height / 40.0))
    for (label, _), image in zip(panels, scaled):
        top = gap + label_height
        canvas[top:top + height, left:left + image.shape[1]] = image
        if label_height:
            text = _fit_label(str(label), image.shape[1] - 4, font_scale)
            cv2.putText(canvas, text, (left + 2, gap + label_height - 7),
                        cv2.FONT_HERSHEY_SIMPLEX, font_scale, (40, 40, 40), 1, cv2.LINE_AA)
        left += image.shape[1] + gap
    return canvas
