"""numba kernel of :mod:`ppmatting.utils.foreground_ml` (compiled on its first call, cached on disk).

Imported only when a foreground is estimated, never at ``import ppmatting``.
"""
import numba
import numpy as np

# neighbours in pymatting's order: left, right, up, down
_DY = (0, 0, -1, 1)
_DX = (-1, 1, 0, 0)


@numba.njit(cache=True)
def multilevel_sweeps(image, alpha, level_hw, start_fb, regularization, gradient_weight,
                      n_small_iterations, n_big_iterations, small_size):
    """All levels of the multi-level estimator, coarse to fine.

    Args:
        image: float32 H x W x 3; alpha: float32 H x W (both in [0, 1]).
        level_hw: int64 L x 2, the (h, w) of every level, the last (H, W).
        start_fb: float32 6, the start colours F (3) then B (3).
        regularization, gradient_weight: float32; n_*_iterations, small_size: int.
    Returns:
        float32 H x W x 6: F (channels 0-2) and B (3-5) of the finest level.
    """
    height, width = alpha.shape
    previous = np.empty((1, 1, 6), np.float32)
    for c in range(6):  # a loop, not a slice copy: numba compiles less (no shape-error message)
        previous[0, 0, c] = start_fb[c]
    for level in range(level_hw.shape[0]):
        h, w = level_hw[level, 0], level_hw[level, 1]
        ph, pw = previous.shape[0], previous.shape[1]
        fb = np.empty((h, w, 6), np.float32)
        level_image = np.empty((h, w, 3), np.float32)
        level_alpha = np.empty((h, w), np.float32)
        # nearest neighbours: destination i reads source i * src // dst
        for y in range(h):
            y_in, y_prev = min(y * height // h, height - 1), min(y * ph // h, ph - 1)
            for x in range(w):
                x_in, x_prev = min(x * width // w, width - 1), min(x * pw // w, pw - 1)
                level_alpha[y, x] = alpha[y_in, x_in]
                for c in range(3):
                    level_image[y, x, c] = image[y_in, x_in, c]
                for c in range(6):
                    fb[y, x, c] = previous[y_prev, x_prev, c]
        n_iterations = n_small_iterations if w <= small_size and h <= small_size \
            else n_big_iterations
        rhs = np.empty(6, np.float64)
        for _ in range(n_iterations):
            # Gauss-Seidel in row-major order: left and upper neighbours are already updated
            for y in range(h):
                for x in range(w):
                    a0 = np.float64(level_alpha[y, x])
                    a1 = 1.0 - a0
                    a00, a11, a01 = a0 * a0, a1 * a1, a0 * a1
                    for c in range(3):
                        rhs[c] = a0 * level_image[y, x, c]
                        rhs[3 + c] = a1 * level_image[y, x, c]
                    for k in range(4):
                        # a neighbour outside the image is the pixel itself
                        y2 = min(max(y + _DY[k], 0), h - 1)
                        x2 = min(max(x + _DX[k], 0), w - 1)
                        weight = regularization + gradient_weight * abs(
                            level_alpha[y, x] - level_alpha[y2, x2])
                        a00 += weight
                        a11 += weight
                        for c in range(6):
                            rhs[c] += weight * fb[y2, x2, c]
                    inverse_det = 1.0 / (a00 * a11 - a01 * a01)
                    for c in range(3):
                        f = inverse_det * (a11 * rhs[c] - a01 * rhs[3 + c])
                        b = inverse_det * (a00 * rhs[3 + c] - a01 * rhs[c])
                        fb[y, x, c] = min(max(f, 0.0), 1.0)
                        fb[y, x, 3 + c] = min(max(b, 0.0), 1.0)
        previous = fb
    return previous
