"""Turn (prediction, ground truth, trimap) into exactly what the benchmark scores.

The benchmark (DIM's MATLAB evaluation code) scores saved 8-bit PNGs against the ground-truth PNG,
so before any metric:

* the prediction is forced to the trimap in known regions (0 where trimap == 0, 1 where
  trimap == 255) and quantised to 8 bits the way a saved PNG is (round(alpha * 255));
* the ground truth keeps its integer grid: 8-bit alphas as codes 0..255, 16-bit alphas as codes
  0..65535 (a float alpha is put back on the 8-bit grid when every value lies on it, as
  ``read_alpha`` output of an 8-bit file does, otherwise on the 16-bit grid, rounding);
* U, the scored pixels, are the pixels where the trimap is 128.

Keeping integer codes lets the Conn threshold test ``alpha >= i/10`` be decided exactly
(``10 * code >= max_code * i``) and lets SAD and MSE be summed exactly in integers.
"""
import functools

import numpy as np

from ppmatting.metrics.trimap import DEFAULT_TRIMAP_RADIUS, clean_trimap, generated_trimap
from ppmatting.utils.errors import InputError
from ppmatting.utils.io import to_uint8

PRED_MAX = 255
# |a * 255 - round(a * 255)| below this means "a came from an 8-bit value": float32(v / 255) is
# within ~3e-5 of v on this scale, and the nearest 16-bit value that is not on the 8-bit grid is
# 1/257 = 0.0039 away, so the test cannot confuse the two.
_ON_GRID_TOLERANCE = 1e-3


def prediction_to_u8(pred):
    """Quantise a prediction to 8 bits as a saved PNG would be.

    ``pred``: H x W float in [0, 1] (values outside are clipped), uint8 (kept) or uint16
    (rescaled to 8 bits with rounding). Returns H x W uint8.
    """
    pred = np.asarray(pred)
    if pred.ndim == 3 and pred.shape[2] == 1:
        pred = pred[:, :, 0]
    if pred.dtype == np.uint8:
        return pred
    if pred.dtype == np.uint16:
        return to_uint8(pred.astype(np.float64) / 65535.0)
    if not np.issubdtype(pred.dtype, np.floating):
        raise InputError(f"prediction has unsupported dtype {pred.dtype}; expected float in [0, 1], "
                         "uint8 or uint16")
    if not np.isfinite(pred).all():
        raise InputError("prediction contains NaN or infinite values")
    return to_uint8(pred)


def ground_truth_to_code(gt):
    """Return ``(gt_code, gt_max)``: the ground-truth alpha as integer codes and their full scale.

    ``gt``: H x W uint8 -> (itself, 255); uint16 -> (itself, 65535); float in [0, 1] -> 8-bit codes
    if every value is on the 8-bit grid, else 16-bit codes (rounded).
    """
    gt = np.asarray(gt)
    if gt.ndim == 3 and gt.shape[2] == 1:
        gt = gt[:, :, 0]
    if gt.dtype == np.uint8:
        return gt, 255
    if gt.dtype == np.uint16:
        return gt, 65535
    if not np.issubdtype(gt.dtype, np.floating):
        raise InputError(f"ground-truth alpha has unsupported dtype {gt.dtype}")
    if not np.isfinite(gt).all():
        raise InputError("ground-truth alpha contains NaN or infinite values")
    scaled = np.clip(gt.astype(np.float64), 0.0, 1.0) * 255.0
    rounded = np.round(scaled)
    if np.abs(scaled - rounded).max(initial=0.0) < _ON_GRID_TOLERANCE:
        return rounded.astype(np.uint8), 255
    return np.round(scaled * (65535.0 / 255.0)).astype(np.uint16), 65535


class ScoringPair:
    """One prediction/ground-truth pair, prepared for scoring.

    Attributes (all H x W):
      ``pred_u8``   uint8, prediction forced to the trimap and quantised (alpha = pred_u8 / 255)
      ``gt_code``   uint8 or uint16 ground truth codes (alpha = gt_code / gt_max)
      ``gt_max``    255 or 65535
      ``trimap_u8`` uint8 in {0, 128, 255}
      ``unknown``   bool, trimap == 128
    Flags: ``trimap_generated`` (no trimap was given), ``trimap_cleaned`` (trimap values were
    mapped by the threshold rule), ``empty_unknown`` (no pixel to score: every metric is 0).
    """

    def __init__(self, pred_u8, gt_code, gt_max, trimap_u8, trimap_generated=False,
                 trimap_cleaned=False):
        self.gt_code = gt_code
        self.gt_max = int(gt_max)
        self.trimap_u8 = trimap_u8
        self.trimap_generated = bool(trimap_generated)
        self.trimap_cleaned = bool(trimap_cleaned)
        # Forcing after quantising equals forcing before (0 -> 0, 1 -> 255) and is cheaper.
        forced = pred_u8.copy()
        forced[trimap_u8 == 0] = 0
        forced[trimap_u8 == 255] = PRED_MAX
        self.pred_u8 = forced

    @property
    def shape(self):
        return self.gt_code.shape

    @functools.cached_property
    def unknown(self):
        return self.trimap_u8 == 128

    @functools.cached_property
    def unknown_index(self):
        """Flat (row-major) indices of the unknown pixels, int64, ascending."""
        return np.flatnonzero(self.unknown)

    @property
    def unknown_pixels(self):
        return int(self.unknown_index.size)

    @property
    def empty_unknown(self):
        return self.unknown_pixels == 0

    def unknown_codes(self):
        """``(pred, gt)``: int64 codes of the unknown pixels, both on the ground truth's scale
        ``gt_max`` (v / 255 == 257 * v / 65535, so an 8-bit prediction is exact on the 16-bit grid)."""
        idx = self.unknown_index
        pred = self.pred_u8.ravel()[idx].astype(np.int64)
        if self.gt_max != PRED_MAX:
            pred *= self.gt_max // PRED_MAX
        return pred, self.gt_code.ravel()[idx].astype(np.int64)


def prepare_pair(pred, gt, trimap=None, trimap_radius=DEFAULT_TRIMAP_RADIUS, names=None):
    """Build a :class:`ScoringPair`.

    ``pred``: H x W prediction (float in [0, 1], uint8 or uint16). ``gt``: H x W ground-truth
    alpha (uint8, uint16 or float in [0, 1]). ``trimap``: H x W, ideally uint8 {0, 128, 255};
    other values are mapped (see ``ppmatting.metrics.trimap``); ``None`` generates one from ``gt``
    with ``trimap_radius``. ``names``: optional (pred_name, gt_name, trimap_name) used in the
    one-line size-mismatch error (file paths, typically).
    """
    pred_name, gt_name, trimap_name = names or ("prediction", "ground truth", "trimap")
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    for array, name in ((pred, pred_name), (gt, gt_name)):
        if array.ndim == 3 and array.shape[2] == 1:
            continue
        if array.ndim != 2:
            raise InputError(f"{name}: expected a single-channel H x W alpha, got shape "
                             f"{tuple(array.shape)}")
    if pred.shape[:2] != gt.shape[:2]:
        raise InputError(f"size mismatch: {pred_name} has shape {tuple(pred.shape[:2])} (HxW) but "
                         f"{gt_name} has shape {tuple(gt.shape[:2])}")
    pred_u8 = prediction_to_u8(pred)
    gt_code, gt_max = ground_truth_to_code(gt)
    if trimap is None:
        return ScoringPair(pred_u8, gt_code, gt_max, generated_trimap(gt_code, gt_max, trimap_radius),
                           trimap_generated=True)
    trimap = np.asarray(trimap)
    if trimap.ndim != 2:
        raise InputError(f"{trimap_name}: expected a single-channel H x W trimap, got shape "
                         f"{tuple(trimap.shape)}")
    if trimap.shape != gt_code.shape:
        raise InputError(f"size mismatch: {trimap_name} has shape {tuple(trimap.shape)} (HxW) but "
                         f"{gt_name} has shape {tuple(gt_code.shape)}")
    trimap_u8, cleaned = clean_trimap(trimap)
    return ScoringPair(pred_u8, gt_code, gt_max, trimap_u8, trimap_cleaned=cleaned)
