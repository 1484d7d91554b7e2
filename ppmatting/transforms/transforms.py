"""Transforms for matting samples. Each takes a :class:`Sample` and a ``numpy.random.Generator``
and returns the sample; geometric ones append a :class:`GeometryRecord`.

Randomness comes only from the generator passed in, so a sample is a pure function of
(seed, epoch, index): runs repeat and a resumed run sees the same data as one never stopped.
"""
import math

import numpy as np

from ppmatting.cvlibs import manager
from ppmatting.transforms.sample import GeometryRecord, resize_array
from ppmatting.transforms.trimap import trimap_from_alpha
from ppmatting.utils import io
from ppmatting.utils.compose import composite
from ppmatting.utils.errors import InputError


class Compose:
    """Apply transforms in order.

    The order is checked when the pipeline is built: a transform that changes the colours of fg
    and bg (``changes_fg_bg = True``, e.g. :class:`RandomColorJitter`) must come before
    :class:`Composite`, or the image would be composited from the old colours and
    image = alpha * fg + (1 - alpha) * bg, which the composition loss relies on, would silently
    stop holding. A wrong order raises ValueError, which the config builder reports as a one-line
    ConfigError naming the config file, the dataset key and the transforms' positions.
    """

    def __init__(self, transforms):
        if not isinstance(transforms, (list, tuple)):
            raise ValueError("transforms must be a list")
        self.transforms = list(transforms)
        self._check_order()

    def _check_order(self):
        composite = next((i for i, t in enumerate(self.transforms) if isinstance(t, Composite)),
                         None)
        if composite is None:
            return
        for index in range(composite + 1, len(self.transforms)):
            transform = self.transforms[index]
            if getattr(transform, "changes_fg_bg", False):
                raise ValueError(
                    f"transforms[{index}] ({type(transform).__name__}) comes after "
                    f"transforms[{composite}] (Composite): it would change fg and bg after the "
                    f"image was made from them, so image = alpha*fg + (1-alpha)*bg would no "
                    f"longer hold; put it before Composite")

    def __call__(self, sample, rng):
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


def _spatial_interp(key):
    # Labels keep their values; everything else (alpha included, as DIM trains) is bilinear.
    return "nearest" if key == "trimap" else "bilinear"


@manager.TRANSFORMS.add_component
class LoadImages:
    """Read the files named in ``sample.paths`` ('image', 'alpha', 'trimap', 'fg', 'bg').

    A foreground given as RGBA with no alpha file supplies its own alpha. Sizes are checked: the
    alpha, trimap and foreground must match the image (or the foreground) exactly.
    """

    def __call__(self, sample, rng=None):
        paths = sample.paths
        if "fg" in paths:
            fg, fg_alpha = io.read_rgba(paths["fg"])
            sample.fg = fg
            if "alpha" not in paths and fg_alpha is None:
                raise InputError(f"{paths['fg']}: no alpha file given and the image has no alpha channel")
            sample.alpha = io.read_alpha(paths["alpha"]) if "alpha" in paths else fg_alpha
            io.check_same_size(sample.alpha.shape, paths.get("alpha", paths["fg"]), fg.shape, paths["fg"])
        if "bg" in paths:
            sample.bg = io.read_image(paths["bg"])
        if "image" in paths:
            sample.image = io.read_image(paths["image"])
            if "alpha" in paths:
                sample.alpha = io.read_alpha(paths["alpha"])
                io.check_same_size(sample.alpha.shape, paths["alpha"], sample.image.shape, paths["image"])
        if "trimap" in paths:
            sample.trimap = io.read_trimap(paths["trimap"])
            ref = "image" if "image" in paths else "fg"
            io.check_same_size(sample.trimap.shape, paths["trimap"], getattr(sample, ref).shape, paths[ref])
        return sample


def fit_background(bg, height, width):
    """Adobe's Composition-1k background rule (its compositing script; mmediting's
    ``preprocess_comp1k_dataset.py`` does the same): a background smaller than ``height`` x
    ``width`` in either direction is scaled by ``ratio = max(width / bw, height / bh)`` to
    ``ceil(bw * ratio)`` x ``ceil(bh * ratio)`` with PIL's bicubic filter, keeping its aspect
    ratio; then its top-left ``height`` x ``width`` is kept.

    Args:
        bg: uint8 h x w x 3 RGB (resampled by PIL as 8-bit RGB, exactly as Adobe's script did) or
            float h x w x C in [0, 1] (each channel resampled by PIL in float, in PIL's two passes,
            width then height, each clipped to [0, 1] as PIL's 8-bit passes are: the same result
            within about 1/255, without rounding to 8 bits).
        height, width: the foreground's size.
    Returns the fitted background, ``height`` x ``width`` x C, uint8 or float32 as given.
    """
    from PIL import Image  # Pillow comes with paddlepaddle and scikit-image

    bg_h, bg_w = bg.shape[:2]
    ratio = max(width / bg_w, height / bg_h)
    size = (math.ceil(bg_w * ratio), math.ceil(bg_h * ratio))
    if bg.dtype == np.uint8:
        if ratio > 1:
            bg = np.asarray(Image.fromarray(bg).resize(size, Image.BICUBIC))
        return np.ascontiguousarray(bg[:height, :width])

    def resize_float(channel, pass_size):
        out = Image.fromarray(np.ascontiguousarray(channel)).resize(pass_size, Image.BICUBIC)
        return np.clip(np.asarray(out), 0.0, 1.0)

    bg = np.asarray(bg, dtype=np.float32)
    if ratio > 1:
        channels = [resize_float(resize_float(bg[:, :, c], (size[0], bg_h)), size)
                    for c in range(bg.shape[2])]
        bg = np.stack(channels, axis=2)
    return np.clip(bg[:height, :width], 0.0, 1.0)


@manager.TRANSFORMS.add_component
class FitBackground:
    """Make the background cover the foreground's size by Adobe's rule (:func:`fit_background`):
    scale it up when smaller, then take the top-left H x W."""

    def __call__(self, sample, rng=None):
        if sample.bg is None or sample.fg is None:
            return sample
        sample.bg = fit_background(sample.bg, *sample.fg.shape[:2])
        return sample


@manager.TRANSFORMS.add_component
class RandomCropAroundUnknown:
    """Crop a square of a size drawn from ``crop_sizes``, centred on a random pixel with
    0 < alpha < 1 (any pixel when there is none). A sample smaller than the crop is first scaled up
    so that its shorter side equals the crop size (recorded as a resize)."""

    def __init__(self, crop_sizes=(320, 480, 640)):
        if isinstance(crop_sizes, int):
            crop_sizes = (crop_sizes,)
        self.crop_sizes = [int(s) for s in crop_sizes]

    def __call__(self, sample, rng):
        size = int(self.crop_sizes[rng.integers(len(self.crop_sizes))])
        height, width = sample.hw
        if min(height, width) < size:
            scale = size / min(height, width)
            new_hw = (max(size, int(round(height * scale))), max(size, int(round(width * scale))))
            _resize_sample(sample, new_hw)
            height, width = new_hw
        unknown_y, unknown_x = np.nonzero((sample.alpha > 0) & (sample.alpha < 1))
        if unknown_y.size:
            pick = rng.integers(unknown_y.size)
            cy, cx = int(unknown_y[pick]), int(unknown_x[pick])
        else:
            cy, cx = int(rng.integers(height)), int(rng.integers(width))
        top = int(np.clip(cy - size // 2, 0, height - size))
        left = int(np.clip(cx - size // 2, 0, width - size))
        for key, value in list(sample.spatial_items()):
            setattr(sample, key, value[top:top + size, left:left + size].copy())
        sample.geometry.append(GeometryRecord("crop", (height, width), (size, size), (top, left)))
        return sample


@manager.TRANSFORMS.add_component
class RandomHorizontalFlip:
    def __init__(self, prob=0.5):
        self.prob = float(prob)

    def __call__(self, sample, rng):
        if rng.random() < self.prob:
            for key, value in list(sample.spatial_items()):
                setattr(sample, key, np.ascontiguousarray(value[:, ::-1]))
            sample.geometry.append(GeometryRecord("flip", sample.hw, sample.hw))
        return sample


def _resize_sample(sample, hw):
    before = sample.hw
    for key, value in list(sample.spatial_items()):
        resized = resize_array(value, hw, _spatial_interp(key))
        if key in ("alpha", "image", "fg", "bg"):
            resized = np.clip(resized, 0.0, 1.0)
        setattr(sample, key, resized)
    sample.geometry.append(GeometryRecord("resize", before, tuple(hw)))


@manager.TRANSFORMS.add_component
class Resize:
    """Resize to ``target_size`` = [height, width]: images and alpha bilinear, trimap nearest."""

    def __init__(self, target_size=(320, 320)):
        if isinstance(target_size, int):
            target_size = (target_size, target_size)
        self.target_hw = (int(target_size[0]), int(target_size[1]))

    def __call__(self, sample, rng=None):
        if sample.hw != self.target_hw:
            _resize_sample(sample, self.target_hw)
        return sample


@manager.TRANSFORMS.add_component
class LimitLong:
    """Shrink a sample whose longer side exceeds ``max_long`` so that it is ``max_long``, keeping
    the aspect ratio (each side ``round(side * max_long / long_side)``); smaller samples pass
    unchanged. Images and alpha bilinear, trimap nearest; recorded, so :func:`undo_geometry`
    brings a prediction back to the original size (bilinear).

    PaddleSeg's Matting evaluates and predicts its DIM with ``LimitLong(max_long=3840)`` in the
    val transforms (its ``transforms.LimitLong`` with ``functional.resize_long``: the same
    rounding, cv2 linear interpolation, nearest for the trimap); configs/dim/dim-vgg16-paddleseg.yml
    uses this one for evaluation.
    """

    def __init__(self, max_long=3840):
        if isinstance(max_long, bool) or not isinstance(max_long, int) or max_long < 1:
            raise ValueError(f"max_long must be a positive integer, got {max_long!r}")
        self.max_long = max_long

    def target_hw(self, height, width):
        """(height, width) after the limit."""
        long_side = max(height, width)
        if long_side <= self.max_long:
            return height, width
        scale = self.max_long / long_side
        return int(round(height * scale)), int(round(width * scale))

    def __call__(self, sample, rng=None):
        target = self.target_hw(*sample.hw)
        if target != tuple(sample.hw):
            _resize_sample(sample, target)
        return sample


@manager.TRANSFORMS.add_component
class GenerateTrimap:
    """DIM's training trimap from the (cropped and resized) alpha: elliptical erosion and dilation
    with kernel sizes drawn independently from [min_size, max_size]."""

    def __init__(self, kernel_size_range=(1, 29)):
        self.low, self.high = int(kernel_size_range[0]), int(kernel_size_range[1])

    def __call__(self, sample, rng):
        erode = int(rng.integers(self.low, self.high + 1))
        dilate = int(rng.integers(self.low, self.high + 1))
        sample.trimap = trimap_from_alpha(sample.alpha, erode, dilate)
        sample.trimap_generated = True
        return sample


@manager.TRANSFORMS.add_component
class RandomColorJitter:
    """Random hue, saturation and brightness changes applied to fg and bg *before* compositing (so
    image = alpha*fg + (1-alpha)*bg still holds). Pre-composited samples jitter the image alone.

    hue: max shift in degrees; saturation, value: max relative change.
    """
    changes_fg_bg = True  # Compose refuses it after Composite

    def __init__(self, hue=10.0, saturation=0.2, value=0.2, prob=0.5):
        self.hue, self.saturation, self.value, self.prob = float(hue), float(saturation), float(value), float(prob)

    def _jitter(self, rgb01, rng):
        import cv2
        hsv = cv2.cvtColor(rgb01.astype(np.float32), cv2.COLOR_RGB2HSV)  # H in [0,360)
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-self.hue, self.hue)) % 360.0
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * (1 + rng.uniform(-self.saturation, self.saturation)), 0, 1)
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] * (1 + rng.uniform(-self.value, self.value)), 0, 1)
        return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)

    def __call__(self, sample, rng):
        targets = ("fg", "bg") if sample.fg is not None and sample.bg is not None else ("image",)
        for key in targets:
            if rng.random() < self.prob:
                setattr(sample, key, self._jitter(getattr(sample, key), rng))
        return sample


@manager.TRANSFORMS.add_component
class Composite:
    """image = alpha * fg + (1 - alpha) * bg (all in [0, 1]). Without fg/bg it leaves the sample
    unchanged (pre-composited data)."""

    def __call__(self, sample, rng=None):
        if sample.fg is None or sample.bg is None:
            return sample
        sample.image = composite(sample.fg, sample.alpha, sample.bg)
        return sample


@manager.TRANSFORMS.add_component
class Normalize:
    """image_norm = (image01 - mean) / std, per channel. DIM (mmediting) uses ImageNet statistics;
    PaddleSeg's DIM uses mean = std = 0.5."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
        if np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {list(std)}")

    def __call__(self, sample, rng=None):
        sample.image_norm = ((sample.image - self.mean) / self.std).astype(np.float32)
        return sample


def pad_amounts(height, width, multiple):
    return (-height) % multiple, (-width) % multiple


@manager.TRANSFORMS.add_component
class PadToMultiple:
    """Pad bottom and right to a multiple of ``multiple`` (reflect for images and alpha, so the
    network sees plausible content; the trimap is reflected too). Undone exactly by
    :func:`undo_geometry`."""

    def __init__(self, multiple=32, mode="reflect"):
        self.multiple = int(multiple)
        self.mode = mode

    def __call__(self, sample, rng=None):
        height, width = sample.hw
        pad_h, pad_w = pad_amounts(height, width, self.multiple)
        if pad_h == 0 and pad_w == 0:
            return sample
        for key, value in list(sample.spatial_items()):
            setattr(sample, key, pad_bottom_right(value, pad_h, pad_w, self.mode))
        sample.geometry.append(GeometryRecord("pad", (height, width), (height + pad_h, width + pad_w),
                                              (pad_h, pad_w)))
        return sample


def pad_bottom_right(array, pad_h, pad_w, mode="reflect"):
    """Pad an H x W (x C) array at the bottom and right. 'reflect' falls back to 'symmetric' pieces
    when the pad is larger than the image (tiny inputs)."""
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    if mode == "reflect" and (pad_h >= array.shape[0] or pad_w >= array.shape[1]):
        mode = "symmetric"
    return np.pad(array, widths, mode=mode)
