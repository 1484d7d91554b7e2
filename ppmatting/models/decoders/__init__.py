from ppmatting.models.decoders.plain_decoder import PlainDecoder  # noqa: F401
from ppmatting.models.decoders.paddleseg_decoder import PaddleSegDecoder  # noqa: F401
