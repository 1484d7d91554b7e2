"""The one sample structure that flows through every transform, and the one inverse transform.

A :class:`Sample` holds the arrays of one training or test example in ppmatting's value ranges
(``image01``, ``alpha01``, ``trimap_u8``; see docs/architecture.md) plus ``geometry``: the ordered
record of every geometric change (crop, flip, resize, pad). :func:`undo_geometry` walks that record
backwards to bring any prediction back onto the original pixel grid.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}


@dataclass(frozen=True)
class GeometryRecord:
    """One geometric change. ``op`` is 'crop', 'flip', 'resize' or 'pad'.

    ``before_hw`` / ``after_hw``: (height, width) before and after the change.
    ``offset``: (top, left) of a crop inside the image before it; for a pad, (bottom, right) amounts.
    """
    op: str
    before_hw: Tuple[int, int]
    after_hw: Tuple[int, int]
    offset: Tuple[int, int] = (0, 0)


@dataclass
class Sample:
    """One example. Every array is optional; transforms touch the ones that are present.

    image:  float32 H x W x 3 RGB in [0, 1] (the composite to be matted)
    alpha:  float32 H x W in [0, 1] (ground truth)
    trimap: uint8 H x W in {0, 128, 255}
    fg, bg: float32 H x W x 3 RGB in [0, 1] (foreground and background for online composition)
    image_norm: float32 H x W x 3, ``image`` normalised with the model's mean/std (network input)
    """
    image: Optional[np.ndarray] = None
    alpha: Optional[np.ndarray] = None
    trimap: Optional[np.ndarray] = None
    fg: Optional[np.ndarray] = None
    bg: Optional[np.ndarray] = None
    image_norm: Optional[np.ndarray] = None
    name: str = ""
    paths: Dict[str, str] = field(default_factory=dict)
    geometry: List[GeometryRecord] = field(default_factory=list)
    trimap_generated: bool = False

    SPATIAL_KEYS = ("image", "alpha", "trimap", "fg", "bg", "image_norm")

    @property
    def hw(self):
        for key in self.SPATIAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                return tuple(value.shape[:2])
        raise ValueError(f"sample '{self.name}' holds no image yet")

    def spatial_items(self):
        for key in self.SPATIAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                yield key, value

    def to_train_dict(self):
        """Arrays for a network batch (channels first, float32).

        img: 3 x H x W normalised; trimap: 1 x H x W raw 0/128/255; alpha: 1 x H x W in [0,1];
        image01, fg, bg: 3 x H x W in [0,1]; comp_valid: 1.0 when fg/bg are real (online
        composition), 0.0 for pre-composited data (the composition loss then has no target).
        """
        if self.image_norm is None:
            raise ValueError("Normalize must run before a sample becomes a training batch")
        chw = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)  # noqa: E731
        has_fg_bg = self.fg is not None and self.bg is not None
        return {
            "img": chw(self.image_norm),
            "trimap": self.trimap[None].astype(np.float32),
            "alpha": self.alpha[None].astype(np.float32),
            "image01": chw(self.image),
            "fg": chw(self.fg if has_fg_bg else self.image),
            "bg": chw(self.bg if has_fg_bg else self.image),
            "comp_valid": np.float32(1.0 if has_fg_bg else 0.0),
        }


def resize_array(array, hw, interpolation):
    """Resize an H x W or H x W x C array to ``hw`` = (height, width)."""
    height, width = int(hw[0]), int(hw[1])
    if array.shape[:2] == (height, width):
        return array.copy()
    out = cv2.resize(array, (width, height), interpolation=INTERPOLATIONS[interpolation])
    if array.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def undo_geometry(pred, geometry, interpolation="bilinear", fill=0.0):
    """Bring a prediction made on the transformed grid back to the original grid.

    Args:
        pred: H x W or H x W x C array on the grid after all records.
        geometry: the sample's list of :class:`GeometryRecord`, oldest first.
        interpolation: used to undo a resize ('bilinear' for alpha, 'nearest' for labels).
        fill: value outside a crop (the prediction does not cover it).
    Returns the array on the grid before the first record. Undoing a pad or a crop is exact;
    undoing a resize restores the exact shape.
    """
    out = np.asarray(pred)
    for record in reversed(geometry):
        if tuple(out.shape[:2]) != tuple(record.after_hw):
            raise ValueError(f"undo_geometry: array is {out.shape[:2]} but the '{record.op}' record "
                             f"expects {record.after_hw}")
        if record.op == "pad":
            out = out[:record.before_hw[0], :record.before_hw[1]]
        elif record.op == "crop":
            canvas = np.full(tuple(record.before_hw) + out.shape[2:], fill, dtype=out.dtype)
            top, left = record.offset
            canvas[top:top + out.shape[0], left:left + out.shape[1]] = out
            out = canvas
        elif record.op == "flip":
            out = out[:, ::-1]
        elif record.op == "resize":
            out = resize_array(out, record.before_hw, interpolation)
        else:
            raise ValueError(f"undo_geometry: unknown record '{record.op}'")
    return np.ascontiguousarray(out)
