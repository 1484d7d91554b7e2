"""Trimap construction from an alpha matte or a rough binary mask (erosion and dilation).

Used by the training transform (random kernels), by evaluation when a sample has no trimap
(fixed radius) and by ``tools/make_trimap.py`` (a user's segmentation mask).
"""
import cv2
import numpy as np


def ellipse_kernel(size):
    size = max(1, int(size))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def trimap_from_alpha(alpha01, erode_size, dilate_size):
    """DIM's training trimap, as mmediting's ``GenerateTrimap`` makes it (sizes drawn from 1..29
    there): 255 where the alpha eroded by an elliptical kernel of ``erode_size`` is 1, 0 where
    the alpha dilated by ``dilate_size`` is 0, else 128.

    Every pixel with 0 < alpha < 1 ends up unknown (a kernel of size 1 still keeps it out of both
    known sets); known pixels always agree with the alpha.
    Returns uint8 H x W in {0, 128, 255}.
    """
    alpha01 = np.asarray(alpha01, dtype=np.float32)
    opaque = (alpha01 >= 1.0).astype(np.uint8)
    visible = (alpha01 > 0.0).astype(np.uint8)
    sure_fg = cv2.erode(opaque, ellipse_kernel(erode_size)).astype(bool)
    maybe_fg = cv2.dilate(visible, ellipse_kernel(dilate_size)).astype(bool)
    trimap = np.full(alpha01.shape, 128, dtype=np.uint8)
    trimap[sure_fg] = 255
    trimap[~maybe_fg] = 0
    return trimap


def trimap_from_mask(mask, unknown_width):
    """Trimap from a rough binary mask: an unknown band ``unknown_width`` pixels wide on each side
    of the mask's boundary (erosion and dilation by a disc of radius ``unknown_width``).

    Args:
        mask: H x W, nonzero (or > 0.5 for floats in [0, 1]) = subject.
        unknown_width: band half-width in pixels (>= 1).
    """
    mask = np.asarray(mask)
    binary = (mask > 0.5) if mask.dtype.kind == "f" else (mask > 127 if mask.max(initial=0) > 1 else mask > 0)
    # a binary mask is an alpha of 0s and 1s: the same erosion/dilation rule gives the band
    size = 2 * int(unknown_width) + 1
    return trimap_from_alpha(binary.astype(np.float32), size, size)
