from ppmatting.models.refiners.plain_refiner import PlainRefiner  # noqa: F401
from ppmatting.models.refiners.paddleseg_refiner import PaddleSegRefiner  # noqa: F401
