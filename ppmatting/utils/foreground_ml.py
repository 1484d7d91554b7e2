"""Multi-level foreground estimation: the estimator of Germer, Uelwer, Conrad, Harmeling ("Fast
Multi-Level Foreground Estimation", ICPR 2020) as pymatting 1.1.16's ``estimate_foreground_ml``
runs it, without importing pymatting.

The problem: for every pixel find F and B (RGB) with ``alpha F + (1 - alpha) B ~ I``, smooth between
4-neighbours with weight ``eps + w |alpha_p - alpha_q|``. pymatting solves it coarse to fine: level
``i`` of ``n = ceil(log2(max(H, W)))`` is ``round(W^(i/n)) x round(H^(i/n))`` pixels
(nearest-neighbour resampling, source index ``i * src // dst``, of the image, the alpha and the
previous level's F and B), starting from the mean colours of the pixels with alpha > 0.9 (F) and
alpha < 0.1 (B). Each level runs Gauss-Seidel sweeps in row-major order (``n_small_iterations``
while both sides are at most ``small_size``, else ``n_big_iterations``): a pixel solves its 2 x 2
system from its neighbours' current F and B (a neighbour outside the image is the pixel itself)
and clips the result to [0, 1]. These facts come from reading pymatting's
``estimate_foreground_ml.py``; the code is ours (``foreground_kernels.py``).

Why not pymatting: importing it compiles every one of its numba kernels on the first run after
installation (about 45 s of CPU time), which made the demo's first run take a minute. Our one
kernel compiles on its first call (about 1.6 s of CPU time, measured) and is cached on disk.
Why numba at all: a NumPy version that updates whole anti-diagonals at once (the same
Gauss-Seidel order; git commit 05c280e) needs no compiler, but its ``benchmarks/bench_foreground.py``
measured it 6-8x slower than pymatting from 0.14 to 8.3 megapixels, with a 1.8 GB peak at
3840 x 2160: too slow for users' photos.
"""
import math

import numpy as np


def level_sizes(height, width):
    """(h, w) of every level, coarse to fine; the last is (height, width)."""
    n_levels = int(math.ceil(math.log2(max(height, width))))
    if n_levels == 0:  # a 1 x 1 image (pymatting divides by zero here): one level
        return [(height, width)]
    return [(round(height ** (i / n_levels)), round(width ** (i / n_levels)))
            for i in range(n_levels + 1)]


def estimate_fb_ml(image01, alpha01, regularization=1e-5, n_small_iterations=10,
                   n_big_iterations=2, small_size=32, gradient_weight=1.0):
    """Foreground and background colours of a matted image.

    Args:
        image01: float H x W x 3 RGB in [0, 1].
        alpha01: float H x W in [0, 1].
        regularization, n_small_iterations, n_big_iterations, small_size, gradient_weight:
            pymatting's parameters and defaults (see the module docstring).
    Returns:
        ``(fg01, bg01)``: float32 H x W x 3 each, in [0, 1]. Memory: about 40 bytes a pixel.
    """
    from ppmatting.utils import foreground_kernels  # numba, compiled/cached on first use

    image = np.ascontiguousarray(image01, dtype=np.float32)
    alpha = np.ascontiguousarray(alpha01, dtype=np.float32)
    height, width = alpha.shape
    flat_image = image.reshape(-1, 3)
    is_fg, is_bg = alpha.ravel() > 0.9, alpha.ravel() < 0.1
    start = np.concatenate([
        flat_image[is_fg].sum(axis=0) / np.float32(np.count_nonzero(is_fg) + 1e-5),
        flat_image[is_bg].sum(axis=0) / np.float32(np.count_nonzero(is_bg) + 1e-5)])
    fb = foreground_kernels.multilevel_sweeps(
        image, alpha, np.array(level_sizes(height, width), np.int64), start.astype(np.float32),
        np.float32(regularization), np.float32(gradient_weight), int(n_small_iterations),
        int(n_big_iterations), int(small_size))
    return np.ascontiguousarray(fb[:, :, :3]), np.ascontiguousarray(fb[:, :, 3:])
