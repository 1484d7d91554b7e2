"""The one call shape shared by every model in the zoo (networks and classical solvers).

::

    alpha01 = model.predict(image01, trimap_u8)

* ``image01``: float32 (or float64) H x W x 3 RGB in [0, 1];
* ``trimap_u8``: uint8 H x W with values exactly {0, 128, 255} (128 = unknown);
* ``alpha01``: float32 H x W in [0, 1], equal to 0 where the trimap is 0 and to 1 where it is 255.

Two class attributes let the tools treat every model alike: ``is_network`` (a Paddle layer that can
be trained and exported) and ``needs_trimap``.
"""
import numpy as np

from ppmatting.utils.errors import InputError

TRIMAP_BG = 0
TRIMAP_UNKNOWN = 128
TRIMAP_FG = 255


def force_known(alpha01, trimap_u8):
    """The one post-processing step of every zoo model (mmagic's ``postprocess`` after the crop):
    return a new float32 H x W alpha clamped to [0, 1], set to 0 where ``trimap_u8 == 0`` and to 1
    where ``trimap_u8 == 255`` (the benchmark scores predictions forced this way). Models call it
    once, last; callers of ``predict`` need not clip again."""
    alpha01 = np.clip(np.asarray(alpha01, dtype=np.float32), 0.0, 1.0)
    trimap_u8 = np.asarray(trimap_u8)
    alpha01[trimap_u8 == TRIMAP_BG] = 0.0
    alpha01[trimap_u8 == TRIMAP_FG] = 1.0
    return alpha01


def check_matting_inputs(image01, trimap_u8, what="model", convert=True):
    """Validate the zoo call shape; return ``(image01, trimap_u8)``, the image as float64
    C-contiguous clipped to [0, 1] when ``convert`` (else as given, no copy).

    Raises :class:`InputError` with one line naming the problem (wrong rank, channel count, size
    mismatch, trimap values outside {0, 128, 255}, image values outside [0, 1] such as a 0-255
    image passed by mistake).
    """
    image01 = np.asarray(image01)
    trimap_u8 = np.asarray(trimap_u8)
    if image01.ndim != 3 or image01.shape[2] != 3:
        raise InputError(f"{what}: image must be H x W x 3 RGB, got shape {image01.shape}")
    if trimap_u8.ndim != 2:
        raise InputError(f"{what}: trimap must be H x W, got shape {trimap_u8.shape}")
    if image01.shape[:2] != trimap_u8.shape:
        raise InputError(f"{what}: image is {image01.shape[1]}x{image01.shape[0]} (WxH) but the "
                         f"trimap is {trimap_u8.shape[1]}x{trimap_u8.shape[0]}")
    if image01.size == 0:
        raise InputError(f"{what}: image is empty")
    if not np.issubdtype(image01.dtype, np.floating):
        raise InputError(f"{what}: image must be float in [0, 1] (image01), got {image01.dtype}; "
                         f"read it with ppmatting.utils.io.read_image")
    if not np.isfinite(image01).all():
        raise InputError(f"{what}: image contains NaN or infinite values")
    low, high = float(image01.min()), float(image01.max())
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise InputError(f"{what}: image values must be in [0, 1], got [{low:g}, {high:g}] "
                         f"(a 0-255 image? divide by 255)")
    if trimap_u8.dtype != np.uint8:
        raise InputError(f"{what}: trimap must be uint8 with values {{0, 128, 255}}, got "
                         f"{trimap_u8.dtype}; read it with ppmatting.utils.io.read_trimap")
    bad = ~np.isin(trimap_u8, (TRIMAP_BG, TRIMAP_UNKNOWN, TRIMAP_FG))
    if bad.any():
        value = int(trimap_u8[bad][0])
        raise InputError(f"{what}: trimap holds value {value}; expected only 0, 128 and 255 "
                         f"(ppmatting.utils.io.normalize_trimap maps any trimap to these)")
    if convert:
        image01 = np.ascontiguousarray(np.clip(image01, 0.0, 1.0), dtype=np.float64)
    return image01, trimap_u8


class ZooModel:
    """Mixin documenting the zoo protocol; subclasses implement :meth:`predict`.

    Networks (DIM) are ``paddle.nn.Layer`` subclasses that set ``is_network = True``; the
    classical solvers are plain Python objects with ``is_network = False``.
    """

    is_network = False
    needs_trimap = True

    def predict(self, image01, trimap_u8):  # pragma: no cover - interface
        """H x W x 3 float [0, 1] RGB + H x W uint8 trimap -> H x W float32 alpha in [0, 1]."""
        raise NotImplementedError
