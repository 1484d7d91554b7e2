"""Moved: the :class:`Sample` structure and :func:`undo_geometry` live in
``ppmatting.transforms.sample`` (transforms produce and read them; datasets import transforms, not
the other way round). This name stays so that older imports keep working."""
from ppmatting.transforms.sample import (GeometryRecord, INTERPOLATIONS, Sample,  # noqa: F401
                                         resize_array, undo_geometry)
