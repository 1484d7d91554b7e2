from ppmatting.transforms.transforms import (  # noqa: F401
    Compose, LoadImages, FitBackground, RandomCropAroundUnknown, RandomHorizontalFlip, Resize,
    LimitLong,
    GenerateTrimap, RandomColorJitter, Composite, Normalize, PadToMultiple, pad_bottom_right,
    pad_amounts)
from ppmatting.transforms.trimap import trimap_from_alpha, trimap_from_mask  # noqa: F401
