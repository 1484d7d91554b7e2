from ppmatting.datasets.matting_dataset import MattingDataset, read_list_file  # noqa: F401
# the sample structure lives with the transforms; re-exported for ``from ppmatting.datasets import``
from ppmatting.transforms.sample import GeometryRecord, Sample, resize_array, undo_geometry  # noqa: F401,E501
