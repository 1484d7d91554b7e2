"""Trimaps for scoring: the rule for samples without one, and the rule for unusual trimap values.

Generated trimap (a sample has a ground-truth alpha but no trimap file):

* foreground (255): pixels that stay opaque (alpha == 1) after eroding the opaque region with an
  elliptical kernel of radius ``radius`` (size 2*radius+1);
* background (0): pixels that stay transparent (alpha == 0) after eroding the transparent region
  the same way (equivalently: outside the visible region alpha > 0 dilated by ``radius``);
* unknown (128): everything else, i.e. the 0 < alpha < 1 region dilated by ``radius`` pixels, plus a
  band of ``radius`` pixels on each side of hard 0/1 edges (so a binary mask still gets an unknown
  band).

The image border does not erode anything (OpenCV's default morphology border), so an object
touching the border stays foreground there.

Trimap values other than 0/128/255 are mapped by ``ppmatting.utils.io.normalize_trimap``:
v < 64 -> 0, v >= 192 -> 255, anything between -> 128 (16-bit values are divided by 257 first).
"""
import numpy as np

from ppmatting.transforms.trimap import trimap_from_alpha
from ppmatting.utils.io import normalize_trimap

DEFAULT_TRIMAP_RADIUS = 10
TRIMAP_VALUES = (0, 128, 255)


def generated_trimap(gt_code, gt_max, radius=DEFAULT_TRIMAP_RADIUS):
    """Generate ``trimap_u8`` (H x W uint8 in {0, 128, 255}) from an integer-coded alpha by the
    rule in the module docstring.

    ``gt_code``: H x W uint8 (``gt_max`` 255) or uint16 (``gt_max`` 65535); the alpha is
    ``gt_code / gt_max``. ``radius`` >= 0 in pixels (0: unknown = exactly 0 < alpha < 1).
    Uses the project's one erosion/dilation rule (``ppmatting.transforms.trimap``) with an
    elliptical kernel of size 2 * radius + 1 for both sides.
    """
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"trimap radius must be >= 0, got {radius}")
    alpha01 = gt_code.astype(np.float32) / np.float32(gt_max)
    return trimap_from_alpha(alpha01, 2 * radius + 1, 2 * radius + 1)


def clean_trimap(trimap):
    """Return ``(trimap_u8, changed)``: exact {0, 128, 255} values, and whether any value had to be
    mapped by the threshold rule in the module docstring."""
    trimap = np.asarray(trimap)
    if trimap.dtype == np.uint8:
        valid = (trimap == 0) | (trimap == 128) | (trimap == 255)
        if valid.all():
            return trimap, False
    return normalize_trimap(trimap), True


def trimap_rule_text(radius=DEFAULT_TRIMAP_RADIUS):
    """One sentence stating how missing trimaps are generated, for reports."""
    return (f"missing trimaps are generated from the ground-truth alpha: unknown = the 0<alpha<1 "
            f"region and hard 0/1 edges dilated by {int(radius)} px (elliptical kernel "
            f"{2 * int(radius) + 1}x{2 * int(radius) + 1}); foreground = alpha==1 eroded, "
            f"background = alpha==0 eroded by the same kernel")
