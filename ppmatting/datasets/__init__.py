from ppmatting.datasets.matting_dataset import MattingDataset, read_list_file  # noqa: F401
# the sample structure lives with the transforms; re-exported for ``from ppmatting.datasets import``
from ppmatting.transforms.sample import (GeometryRecord, Sample, resize_array,  # noqa: F401
                                         undo_geometry)
