"""Straightforward implementations of the four metrics, line by line after the definitions.

These are slow on purpose: whole-image float64 arrays, a plain 2-D convolution for Grad and one
``scipy.ndimage.label`` plus whole-image updates per threshold for Conn, as in DIM's MATLAB code.
They exist to check the fast implementations (tests) and to time them (benchmarks/bench_metrics.py).
They share no code with the fast path: forcing, quantising, the kernel and the component tie
rule are written again here.

Inputs everywhere: ``pred`` H x W float in [0, 1] (or uint8), ``gt_code`` H x W integer codes with
full scale ``gt_max`` (255 or 65535), ``trimap_u8`` H x W uint8 in {0, 128, 255}.
"""
import math

import numpy as np
import scipy.ndimage as ndi


def reference_prepare(pred, trimap_u8):
    """Force to the trimap, quantise to 8 bits; returns (p in [0, 1] float64, p as uint8 codes)."""
    pred = np.asarray(pred)
    if pred.dtype == np.uint8:
        p = pred.astype(np.float64) / 255.0
    else:
        p = np.clip(pred.astype(np.float64), 0.0, 1.0)
    p = p.copy()
    p[trimap_u8 == 0] = 0.0
    p[trimap_u8 == 255] = 1.0
    p_code = np.round(p * 255.0).astype(np.int64)
    return p_code / 255.0, p_code


def reference_sad(pred, gt_code, gt_max, trimap_u8):
    p, _ = reference_prepare(pred, trimap_u8)
    g = gt_code.astype(np.float64) / gt_max
    unknown = (trimap_u8 == 128).astype(np.float64)
    return float(np.sum(np.abs(p - g) * unknown) / 1000.0)


def reference_mse(pred, gt_code, gt_max, trimap_u8):
    p, _ = reference_prepare(pred, trimap_u8)
    g = gt_code.astype(np.float64) / gt_max
    unknown = (trimap_u8 == 128).astype(np.float64)
    count = unknown.sum()
    if count == 0:
        return 0.0
    return float(np.sum((p - g) ** 2 * unknown) / count)


def reference_gradient_kernel(sigma=1.4):
    """MATLAB ``gaussgradient``: hx(i, j) = G(i) * G'(j) over a (2h+1)^2 grid, unit L2 norm."""
    epsilon = 1e-2
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon))))
    size = 2 * half + 1

    def gauss(x):
        return math.exp(-x * x / (2.0 * sigma * sigma)) / (sigma * math.sqrt(2.0 * math.pi))

    def dgauss(x):
        return -x * gauss(x) / (sigma * sigma)

    hx = np.zeros((size, size), dtype=np.float64)
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - half) * dgauss(j - half)
    return hx / math.sqrt(np.sum(hx * hx))


def _mat2gray(image):
    lo, hi = image.min(), image.max()
    if hi == lo:
        return np.zeros_like(image)
    return (image - lo) / (hi - lo)


def reference_grad(pred, gt_code, gt_max, trimap_u8, sigma=1.4):
    p, _ = reference_prepare(pred, trimap_u8)
    g = gt_code.astype(np.float64) / gt_max
    hx = reference_gradient_kernel(sigma)
    hy = hx.T

    def magnitude(image):
        image = _mat2gray(image)
        gx = ndi.convolve(image, hx, mode="nearest")   # 'nearest' = MATLAB 'replicate'
        gy = ndi.convolve(image, hy, mode="nearest")
        return np.sqrt(gx ** 2 + gy ** 2)

    error = (magnitude(p) - magnitude(g)) ** 2
    return float(np.sum(error * (trimap_u8 == 128)) / 1000.0)


def _largest_component_reference(binary):
    """Mask of the largest 4-connected component; ties -> first in column-major scan order."""
    labels, count = ndi.label(binary, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    if count == 0:
        return np.zeros(binary.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    tied = np.flatnonzero(sizes == sizes.max()) + 1
    if tied.size == 1:
        return labels == tied[0]
    height, width = binary.shape
    col_major_index = (np.arange(width)[None, :] * height + np.arange(height)[:, None])
    first = ndi.minimum(col_major_index, labels, index=tied)
    best = tied[int(np.argmin(first))]
    return labels == best


def reference_conn(pred, gt_code, gt_max, trimap_u8, step=0.1):
    _, p_code = reference_prepare(pred, trimap_u8)
    p = p_code / 255.0
    g = gt_code.astype(np.float64) / gt_max
    steps = int(round(1.0 / step))
    l_map = np.full(p.shape, -1.0)
    for i in range(1, steps + 1):
        # alpha >= i / steps, decided exactly on the integer codes
        both = (p_code * steps >= 255 * i) & (gt_code.astype(np.int64) * steps >= gt_max * i)
        omega = _largest_component_reference(both)
        flag = (l_map == -1) & ~omega
        l_map[flag] = (i - 1) / steps
    l_map[l_map == -1] = 1.0
    p_d = p - l_map
    g_d = g - l_map
    p_phi = 1.0 - p_d * (p_d >= 0.15)
    g_phi = 1.0 - g_d * (g_d >= 0.15)
    return float(np.sum(np.abs(p_phi - g_phi) * (trimap_u8 == 128)) / 1000.0)


REFERENCE_METRICS = {"sad": reference_sad, "mse": reference_mse, "grad": reference_grad,
                     "conn": reference_conn}


def reference_metrics(pred, gt_code, gt_max, trimap_u8, metrics=("sad", "mse", "grad", "conn")):
    """{name: value} for the chosen metrics, by the straightforward implementations."""
    return {name: REFERENCE_METRICS[name](pred, gt_code, gt_max, trimap_u8) for name in metrics}
