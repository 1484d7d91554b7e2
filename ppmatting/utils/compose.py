"""The compositing formula and the cut-out: what matting is for.

* :func:`composite` = ``alpha*fg + (1-alpha)*bg``. Pass the *estimated foreground*
  (``ppmatting.utils.foreground.estimate_foreground``), not the photo: in semi-transparent hair the
  photo's pixels are a mix of subject and old background, so ``image*alpha`` carries the old
  background along as a fringe. The training transforms composite with the same function.
* :func:`cutout_rgba`: a transparent PNG of the subject.

Backgrounds to composite onto (colours, pictures, the photo's own blurred background) are made by
``ppmatting.apps.background``. Ranges: ``fg01``/``bg01`` float32 H x W x 3 RGB in [0, 1];
``alpha01`` float32 H x W in [0, 1].
"""
import numpy as np

from ppmatting.utils.io import to_uint16, to_uint8


def composite(fg01, alpha01, bg01):
    """``alpha*fg + (1-alpha)*bg``: float32 H x W x 3 in [0, 1].

    ``fg01`` should be the estimated foreground colour (not the photo; see the module docstring).
    """
    fg01 = np.asarray(fg01, dtype=np.float32)
    bg01 = np.asarray(bg01, dtype=np.float32)
    alpha01 = np.clip(np.asarray(alpha01, dtype=np.float32), 0.0, 1.0)
    if fg01.shape != bg01.shape or fg01.shape[:2] != alpha01.shape:
        raise ValueError(f"composite: fg {fg01.shape}, alpha {alpha01.shape} and bg {bg01.shape} "
                         f"must agree")
    alpha = alpha01[:, :, None]
    return np.clip(alpha * fg01 + (1.0 - alpha) * bg01, 0.0, 1.0).astype(np.float32)


def cutout_rgba(fg01, alpha01, bits=8):
    """A straight-alpha RGBA cut-out (what PNG stores): uint8 (``bits=8``) or uint16 (``bits=16``)
    H x W x 4. Colour is the estimated foreground, so viewers that blend it onto any background
    show no fringe of the old one."""
    fg01 = np.asarray(fg01, dtype=np.float32)
    alpha01 = np.asarray(alpha01, dtype=np.float32)
    rgba = np.concatenate([fg01, alpha01[:, :, None]], axis=2)
    if bits == 8:
        return to_uint8(rgba)
    if bits == 16:
        return to_uint16(rgba)
    raise ValueError(f"bits must be 8 or 16, got {bits}")
