from ppmatting.models import backbones, decoders, refiners  # noqa: F401
from ppmatting.models import dim  # noqa: F401
