"""Foreground colour estimation: the F in ``I = alpha F + (1 - alpha) B``.

Compositing a matted subject onto a new background needs F, not the photo: in semi-transparent
hair the photo still holds the old background's colour. :func:`estimate_foreground` runs the
multi-level estimator of Germer, Uelwer, Conrad, Harmeling ("Fast Multi-Level Foreground
Estimation", ICPR 2020), as pymatting 1.1.16's ``estimate_foreground_ml`` does: a coarse-to-fine
solve of ``min sum_c (alpha F_c + (1 - alpha) B_c - I_c)^2 + sum over neighbours
(eps + w |d alpha|) (|d F|^2 + |d B|^2)``, a few Gauss-Seidel sweeps per level.

The estimator is ours (``ppmatting.utils.foreground_ml``: one numba kernel, compiled on its first
call and cached; the same F and B as pymatting's within 1/255, tested): importing pymatting
compiles every one of its numba kernels on the first run after installation (about 45 s of CPU
time), which made the demo's first run take a minute for a step that takes a few milliseconds.

Fast path (opt-in, ``crop_margin``): only pixels with 0 < alpha < 1 need an estimate (F = I where
alpha = 1; F does not show where alpha = 0), so the estimator can run on the bounding box of those
pixels plus a margin, with F = I elsewhere. It is off by default: the coarse levels then see only
the crop, which moved F enough on a synthetic hair scene (tests/test_bg_replace.py) to lose a
fifth of the gain over the raw photo; use it for large photos with a small partial region.
"""
import numpy as np

from ppmatting.utils.errors import InputError
from ppmatting.utils.foreground_ml import estimate_fb_ml
from ppmatting.utils.memory import default_budget_bytes, format_bytes

# bytes a pixel of one estimate: the float32 inputs and outputs here (F, B and their copies) and
# the estimator's level arrays (F and B, the level's image and alpha, the previous level)
BYTES_PER_PIXEL = 130


def check_memory(height, width, what="estimate_foreground"):
    """Refuse, with one line, an image whose estimate would not fit in the memory budget."""
    need = height * width * BYTES_PER_PIXEL
    budget = default_budget_bytes()
    if need > budget:
        raise InputError(f"{what}: a {width}x{height} image needs about {format_bytes(need)} to "
                         f"estimate its foreground colours, more than the {format_bytes(budget)} "
                         f"available; use crop_margin (only the partly transparent region) or a "
                         f"smaller image")


def _check(image01, alpha01):
    image01 = np.asarray(image01)
    alpha01 = np.asarray(alpha01)
    if image01.ndim != 3 or image01.shape[2] != 3:
        raise InputError(f"estimate_foreground: image must be H x W x 3, got {image01.shape}")
    if alpha01.ndim == 3 and alpha01.shape[2] == 1:
        alpha01 = alpha01[:, :, 0]
    if alpha01.shape != image01.shape[:2]:
        raise InputError(f"estimate_foreground: alpha {alpha01.shape} does not match the image "
                         f"{image01.shape[:2]}")
    if alpha01.dtype == np.uint8:
        alpha01 = alpha01.astype(np.float32) / 255.0
    if image01.dtype == np.uint8:
        image01 = image01.astype(np.float32) / 255.0
    image01 = np.clip(image01.astype(np.float32), 0.0, 1.0)
    alpha01 = np.clip(alpha01.astype(np.float32), 0.0, 1.0)
    return image01, alpha01


def partial_box(alpha01, margin, low=1e-3, high=1 - 1e-3):
    """(y0, y1, x0, x1) bounding box of the pixels with low < alpha < high grown by ``margin``,
    or None when there are none."""
    partial = (alpha01 > low) & (alpha01 < high)
    rows = np.flatnonzero(partial.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(partial.any(axis=0))
    h, w = alpha01.shape
    return (max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h),
            max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w))


def estimate_foreground(image01, alpha01, regularization=1e-5, n_small_iterations=10,
                        n_big_iterations=2, small_size=32, gradient_weight=1.0, crop_margin=None,
                        return_background=False):
    """Estimate the foreground colours of a matted photo.

    Args:
        image01: H x W x 3 RGB, float in [0, 1] (uint8 is accepted and scaled).
        alpha01: H x W matte, float in [0, 1] (uint8 accepted).
        regularization: smoothness weight eps of F and B (pymatting default 1e-5; larger =
            smoother colours).
        n_small_iterations: sweeps per level while the level is at most ``small_size`` pixels
            on both sides (default 10).
        n_big_iterations: sweeps per larger level (default 2).
        small_size: see above (default 32).
        gradient_weight: extra smoothness where alpha changes (default 1.0).
        crop_margin: None (default) = whole image, exactly pymatting's result; N = run only on
            the partially transparent region's bounding box grown by N pixels (faster on large
            photos, slightly different F).
        return_background: also return the estimated background B.
    Returns:
        float32 H x W x 3 foreground in [0, 1] (and the background when asked; outside the crop
        the background is the photo too).
    """
    image01, alpha01 = _check(image01, alpha01)
    fg = image01.copy()
    bg = image01.copy()
    box = None if crop_margin is None else partial_box(alpha01, int(crop_margin))
    if crop_margin is not None and box is None:
        return (fg, bg) if return_background else fg  # no partial pixel: F = I is exact enough
    if box is None:
        box = (0, alpha01.shape[0], 0, alpha01.shape[1])
    y0, y1, x0, x1 = box
    check_memory(y1 - y0, x1 - x0)
    crop_fg, crop_bg = estimate_fb_ml(
        image01[y0:y1, x0:x1], alpha01[y0:y1, x0:x1], regularization=regularization,
        n_small_iterations=n_small_iterations, n_big_iterations=n_big_iterations,
        small_size=small_size, gradient_weight=gradient_weight)
    fg[y0:y1, x0:x1] = crop_fg
    bg[y0:y1, x0:x1] = crop_bg
    fg = np.clip(fg, 0.0, 1.0).astype(np.float32)
    if return_background:
        return fg, np.clip(bg, 0.0, 1.0).astype(np.float32)
    return fg
