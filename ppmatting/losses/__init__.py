"""Training losses, registered in ``manager.LOSSES`` and configured under ``losses:`` in YAML.

Each is called as ``loss(outputs, batch)`` and returns its weighted scalar; see
:mod:`ppmatting.losses.matting_losses`.
"""
from ppmatting.losses.matting_losses import (AlphaLoss, CompositionLoss, RefineLoss,  # noqa: F401
                                             charbonnier, masked_mean, unknown_mask)
