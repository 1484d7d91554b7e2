from ppmatting.transforms.transforms import (  # noqa: F401
    Compose, LoadImages, FitBackground, RandomCropAroundUnknown, RandomHorizontalFlip, Resize,
    LimitLong,
    GenerateTrimap, RandomColorJitter, Composite, Normalize, PadToMultiple, pad_bottom_right,
    pad_amounts, fit_background)
from ppmatting.transforms.sample import (GeometryRecord, Sample, resize_array,  # noqa: F401
                                         undo_geometry)
from ppmatting.transforms.trimap import trimap_from_alpha, trimap_from_mask  # noqa: F401
