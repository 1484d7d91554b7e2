from ppmatting.datasets.sample import Sample, GeometryRecord, undo_geometry, resize_array  # noqa: F401
from ppmatting.datasets.matting_dataset import MattingDataset, read_list_file  # noqa: F401
