"""Grad: difference of gradient magnitudes over the unknown region.

Kernel and normalisation follow DIM's MATLAB evaluation code (``compute_gradient_loss.m`` and
``gaussgradient.m``): a (2h+1) x (2h+1) first-derivative-of-Gaussian kernel with
h = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma 0.01))), scaled to unit L2 norm, replicate border,
images min-max normalised (``mat2gray``) over the whole image first.
"""
import math

import cv2
import numpy as np


def gaussian_halfsize(sigma):
    """Half-size h of the kernel: the smallest integer where the Gaussian density
    exp(-x^2 / (2 sigma^2)) / (sigma sqrt(2 pi)) has dropped to 0.01 (MATLAB's ``gaussgradient``
    rule). sigma = 1.4 gives 4, a 9 x 9 kernel."""
    return int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * 0.01))))


def gaussian_derivative_factors(sigma):
    """Return ``(smooth, derive)``: 1-D float64 kernels of length 2h+1 with unit L2 norm such that
    the 2-D x-derivative kernel is ``outer(smooth, derive)`` (rows smooth, columns derive) and the
    y kernel its transpose. The outer product of unit vectors has unit norm, which is exactly the
    2-D kernel divided by its own L2 norm."""
    half = gaussian_halfsize(sigma)
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-u ** 2 / (2.0 * sigma ** 2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -u * gauss / sigma ** 2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def _normalised_lut(codes, max_code):
    """mat2gray as a lookup table: code -> (code - min) / (max - min) in float64 over the whole
    image; a constant image maps to 0 (its gradient is 0 under any normalisation)."""
    lo, hi = int(codes.min()), int(codes.max())
    lut = np.zeros(max_code + 1, dtype=np.float64)
    if hi > lo:
        lut[:] = (np.arange(max_code + 1, dtype=np.float64) - lo) / (hi - lo)
    return lut


def _apply_lut(codes, lut):
    if codes.dtype == np.uint8:
        return cv2.LUT(np.ascontiguousarray(codes), lut)   # much faster than fancy indexing
    return lut[codes]


class Grad:
    """Grad = sum over U of (|grad g| - |grad p|)^2, divided by 1000.

    p (prediction, forced to the trimap, 8-bit) and g (ground truth) are each min-max normalised to
    [0, 1] over the whole image; |grad x| = sqrt(gx^2 + gy^2) with the first-derivative-of-Gaussian
    kernels of ``gaussian_derivative_factors(sigma)`` (sigma 1.4: 9 x 9), replicate border, float64.
    U = pixels with trimap == 128. Empty U gives 0.

    Speed: the kernel is separable, so each derivative is a 9-tap row pass and a 9-tap column pass
    (``cv2.sepFilter2D``), computed only on the bounding box of U grown by the half-size (the
    values inside that box are the whole-image values; the replicate border only matters at the
    true image border, where the box edge coincides with it).
    """

    name = "grad"

    def __init__(self, sigma=1.4):
        self.sigma = float(sigma)
        self.smooth, self.derive = gaussian_derivative_factors(self.sigma)
        self.half = (self.smooth.size - 1) // 2

    def _magnitude_at(self, image64, flat_index):
        """|grad| of a float64 image at the given flat positions (float64 1-D)."""
        # cv2 correlates while MATLAB convolves: the derivative kernel flips sign, the magnitude
        # does not change.
        gx = cv2.sepFilter2D(image64, cv2.CV_64F, self.derive, self.smooth,
                             borderType=cv2.BORDER_REPLICATE).ravel()[flat_index]
        gy = cv2.sepFilter2D(image64, cv2.CV_64F, self.smooth, self.derive,
                             borderType=cv2.BORDER_REPLICATE).ravel()[flat_index]
        # numpy, not cv2.magnitude: OpenCV's SIMD and scalar paths (picked by memory alignment)
        # differ in the last bit, which would make results vary between runs.
        return np.sqrt(gx * gx + gy * gy)

    def __call__(self, pair):
        if pair.empty_unknown:
            return 0.0
        height, width = pair.shape
        x, y, w, h = cv2.boundingRect(pair.unknown.view(np.uint8))
        top, bottom = max(y - self.half, 0), min(y + h + self.half, height)
        left, right = max(x - self.half, 0), min(x + w + self.half, width)
        box = (slice(top, bottom), slice(left, right))
        flat_index = pair.unknown_index
        if (top, left, bottom, right) != (0, 0, height, width):
            rows, cols = np.divmod(flat_index, width)
            flat_index = (rows - top) * (right - left) + (cols - left)

        pred_lut = _normalised_lut(pair.pred_u8, 255)
        gt_lut = _normalised_lut(pair.gt_code, pair.gt_max)
        pred_mag = self._magnitude_at(_apply_lut(pair.pred_u8[box], pred_lut), flat_index)
        gt_mag = self._magnitude_at(_apply_lut(pair.gt_code[box], gt_lut), flat_index)
        diff = gt_mag - pred_mag
        return float(np.sum(diff * diff)) / 1000.0   # numpy sum: same bits every run
