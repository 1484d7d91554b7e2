"""Multi-level foreground estimation in NumPy, no JIT: the sweeps of pymatting 1.1.16's
``estimate_foreground_ml`` (Germer, Uelwer, Conrad, Harmeling, "Fast Multi-Level Foreground
Estimation", ICPR 2020), vectorised.

The problem: for every pixel find F and B (RGB) with ``alpha F + (1 - alpha) B ~ I``, smooth between
4-neighbours with weight ``eps + w |alpha_p - alpha_q|``. pymatting solves it coarse to fine: level
``i`` of ``n = ceil(log2(max(H, W)))`` is ``round(W^(i/n)) x round(H^(i/n))`` pixels
(nearest-neighbour resampling, source index ``i * src // dst``, of the image, the alpha and the
previous level's F and B), starting from the mean colours of the pixels with alpha > 0.9 (F) and
alpha < 0.1 (B). Each level runs Gauss-Seidel sweeps in row-major order (``n_small_iterations``
while both sides are at most ``small_size``, else ``n_big_iterations``): a pixel solves its 2 x 2
system from its neighbours' current F and B (a neighbour outside the image is the pixel itself)
and clips the result to [0, 1]. These facts come from reading pymatting's
``estimate_foreground_ml.py``; the code is ours.

Why this is fast without a compiler: in a row-major Gauss-Seidel sweep, pixel (y, x) reads its left
and upper neighbours' new values and its right and lower neighbours' old ones. Those lie on the
anti-diagonals ``y + x = d - 1`` and ``d + 1``, so a whole anti-diagonal can be updated at once, and
sweep ``t + 1`` can run on diagonal ``d - 2`` in the same step as sweep ``t`` on diagonal ``d``
(it reads diagonals ``d - 3 .. d - 1``, which sweep ``t`` has finished). A level of ``h + w - 1``
diagonals and ``k`` sweeps takes ``h + w - 1 + 2 (k - 1)`` vectorised steps. The pixels are stored
diagonal by diagonal in a padded array (row = diagonal, column = position along the shorter side),
so every step reads and writes plain slices. The result equals pymatting's up to float rounding
(float32 both; tested within 1/255), and the first call is as fast as every other.
"""
import math

import numpy as np


def _nearest_indices(size_dst, size_src):
    """pymatting's nearest-neighbour rule: destination i reads source ``i * src // dst``."""
    return np.minimum(np.arange(size_dst) * size_src // size_dst, size_src - 1)


def resize_nearest(array, height, width):
    """H x W (x C) -> height x width (x C), pymatting's nearest-neighbour rule."""
    rows = _nearest_indices(height, array.shape[0])
    cols = _nearest_indices(width, array.shape[1])
    return array[rows[:, None], cols[None, :]]


def level_sizes(height, width):
    """(h, w) of every level, coarse to fine; the last is (height, width)."""
    n_levels = int(math.ceil(math.log2(max(height, width))))
    if n_levels == 0:  # a 1 x 1 image (pymatting divides by zero here): one level
        return [(height, width)]
    return [(round(height ** (i / n_levels)), round(width ** (i / n_levels)))
            for i in range(n_levels + 1)]


class _Level:
    """One level's constants in the diagonal layout.

    Pixel (y, x) sits at row ``y + x + 1`` and column ``u + 1`` of an (h + w + 1) x (n_u + 2)
    array, ``u`` being its coordinate along the shorter side (y when h <= w, else x); the padding
    rows and columns and the cells that are no pixel stay 0 with weight 0, so slices can cover
    them. Its four neighbours then sit at (row - 1, col - 1), (row - 1, col), (row + 1, col) and
    (row + 1, col + 1).
    """

    def __init__(self, image, alpha, regularization, gradient_weight):
        h, w = alpha.shape
        self.h, self.w = h, w
        self.by_rows = h <= w  # index the shorter side: fewer padded cells
        self.n_u = h if self.by_rows else w
        self.n_v = w if self.by_rows else h
        self.shape = shape = (h + w + 1, self.n_u + 2)

        padded = np.pad(alpha, 1, mode="edge")
        inside = np.pad(np.ones((h, w), bool), 1)
        weights = {}
        self_weight = np.zeros((h, w), np.float32)
        for name, dy, dx in (("left", 0, -1), ("right", 0, 1), ("up", -1, 0), ("down", 1, 0)):
            weight = regularization + gradient_weight * np.abs(
                alpha - padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w])
            real = inside[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            self_weight += np.where(real, 0.0, weight)  # a clamped neighbour is the pixel itself
            weights[name] = np.where(real, weight, 0.0)
        total = sum(weights.values()) + self_weight
        a0, a1 = alpha, 1.0 - alpha
        a00, a11, a01 = a0 * a0 + total, a1 * a1 + total, a0 * a1
        inverse_det = 1.0 / (a00 * a11 - a01 * a01)
        c_ff, c_fb, c_bb = a11 * inverse_det, -a01 * inverse_det, a00 * inverse_det
        rhs_f, rhs_b = a0[:, :, None] * image, a1[:, :, None] * image

        # stencil order: (row - 1, col - 1), (row - 1, col), self, (row + 1, col), (row + 1, col + 1)
        if self.by_rows:
            order = ("up", "left", None, "right", "down")
        else:
            order = ("left", "up", None, "down", "right")
        self.stencil = [self._place((weights[name] if name else self_weight)[:, :, None], shape)
                        for name in order]
        # F and B are stored as channels [F0, F1, F2, B2, B1, B0]: reversing the channel axis
        # pairs every F channel with the same B channel, so the 2 x 2 solve is two products
        self.diagonal_coef = self._place(np.stack([c_ff, c_bb], axis=2)[:, :, :, None], shape)
        self.cross_coef = self._place(c_fb[:, :, None], shape)
        self.constant = self._place(self.pack(
            c_ff[:, :, None] * rhs_f + c_fb[:, :, None] * rhs_b,
            c_fb[:, :, None] * rhs_f + c_bb[:, :, None] * rhs_b), shape)

    @staticmethod
    def pack(fg, bg):
        """H x W x 3 F and B -> H x W x 6 channels [F0, F1, F2, B2, B1, B0]."""
        return np.concatenate([fg, bg[:, :, ::-1]], axis=2)

    def pixels(self, stored):
        """The h x w (x ...) view of the pixels inside a diagonal-layout array (writable).

        Pixel (y, x) is cell ``(y + x + 1) * cols + u + 1`` of the flattened rows, so one step in
        y or x moves by ``cols`` or ``cols + 1`` cells: a strided view, no index arrays."""
        cols, cell = stored.shape[1], stored.strides[1]
        step_y, step_x = (cols + 1, cols) if self.by_rows else (cols, cols + 1)
        return np.lib.stride_tricks.as_strided(
            stored[1:, 1:], shape=(self.h, self.w) + stored.shape[2:],
            strides=(step_y * cell, step_x * cell) + stored.strides[2:])

    def _place(self, values, shape):
        out = np.zeros(shape + values.shape[2:], np.float32)
        self.pixels(out)[...] = values
        return out

    def to_layout(self, fb):
        """H x W x 6 image -> the diagonal layout."""
        return self._place(fb, self.shape)

    def to_image(self, stored):
        return self.pixels(stored).copy()

    def sweeps(self, stored, n_iterations):
        """``n_iterations`` Gauss-Seidel sweeps in place on ``stored`` (the diagonal layout)."""
        n_diagonals = self.h + self.w - 1
        up_left, up, centre, down, down_right = self.stencil
        for step in range(n_diagonals + 2 * (n_iterations - 1)):
            # sweep t works on diagonal step - 2 t; the sweeps in flight cover every second row
            first_sweep = max(0, (step - n_diagonals + 2) // 2)
            last_sweep = min(n_iterations - 1, step // 2)
            if first_sweep > last_sweep:  # a one-diagonal level between its sweeps
                continue
            d_low, d_high = step - 2 * last_sweep, step - 2 * first_sweep
            rows = slice(d_low + 1, d_high + 2, 2)
            before, after = slice(d_low, d_high + 1, 2), slice(d_low + 2, d_high + 3, 2)
            u_low, u_high = max(0, d_low - self.n_v + 1), min(self.n_u - 1, d_high)
            cols = slice(u_low + 1, u_high + 2)
            left, right = slice(u_low, u_high + 1), slice(u_low + 2, u_high + 3)

            pulled = up_left[rows, cols] * stored[before, left]
            pulled += up[rows, cols] * stored[before, cols]
            pulled += centre[rows, cols] * stored[rows, cols]
            pulled += down[rows, cols] * stored[after, cols]
            pulled += down_right[rows, cols] * stored[after, right]
            # F gets c_ff F_pulled + c_fb B_pulled, B gets c_fb F_pulled + c_bb B_pulled
            new = (self.diagonal_coef[rows, cols]
                   * pulled.reshape(pulled.shape[:2] + (2, 3))).reshape(pulled.shape)
            new += self.cross_coef[rows, cols] * pulled[:, :, ::-1]
            new += self.constant[rows, cols]
            np.clip(new, 0.0, 1.0, out=new)
            stored[rows, cols] = new


def estimate_fb_ml(image01, alpha01, regularization=1e-5, n_small_iterations=10,
                   n_big_iterations=2, small_size=32, gradient_weight=1.0):
    """Foreground and background colours of a matted image.

    Args:
        image01: float H x W x 3 RGB in [0, 1].
        alpha01: float H x W in [0, 1].
        regularization, n_small_iterations, n_big_iterations, small_size, gradient_weight:
            pymatting's parameters and defaults (see the module docstring).
    Returns:
        ``(fg01, bg01)``: float32 H x W x 3 each, in [0, 1].
    Memory: about 90 bytes a pixel at the finest level.
    """
    image = np.asarray(image01, dtype=np.float32)
    alpha = np.asarray(alpha01, dtype=np.float32)
    height, width = alpha.shape
    flat_image = image.reshape(-1, 3)
    is_fg, is_bg = alpha.ravel() > 0.9, alpha.ravel() < 0.1
    fg_mean = flat_image[is_fg].sum(axis=0) / np.float32(np.count_nonzero(is_fg) + 1e-5)
    bg_mean = flat_image[is_bg].sum(axis=0) / np.float32(np.count_nonzero(is_bg) + 1e-5)
    fb = _Level.pack(fg_mean.reshape(1, 1, 3), bg_mean.reshape(1, 1, 3)).astype(np.float32)
    for h, w in level_sizes(height, width):
        level = _Level(resize_nearest(image, h, w), resize_nearest(alpha, h, w),
                       np.float32(regularization), np.float32(gradient_weight))
        stored = level.to_layout(resize_nearest(fb, h, w))
        small = w <= small_size and h <= small_size
        level.sweeps(stored, n_small_iterations if small else n_big_iterations)
        fb = level.to_image(stored)
        del level, stored
    return (np.ascontiguousarray(fb[:, :, :3]), np.ascontiguousarray(fb[:, :, :2:-1]))
