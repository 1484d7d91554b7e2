"""PaddleSeg's DIM refiner: four 3x3 conv + BN + ReLU on (RGB, alpha), added to the alpha.

PaddleSeg's ``Refine`` in ``Matting/ppmatting/models/dim.py``. The last block ends in a ReLU, so the correction is >= 0: this refiner can
only raise alpha. The model clips the sum to [0, 1] in eval mode; training sees the raw sum
(PaddleSeg's ``alpha_pred``). Names: ``refiner.conv{1,2,3}`` and ``refiner.alpha_pred``, each with
``.conv`` and ``.bn`` (PaddleSeg: ``refine.*._conv`` / ``._batch_norm``).
"""
import paddle
import paddle.nn as nn

from ppmatting.cvlibs import manager
from ppmatting.models.decoders.paddleseg_decoder import ConvBNReLU


@manager.REFINERS.add_component
class PaddleSegRefiner(nn.Layer):
    """PaddleSeg's refiner.

    Args:
        conv_channels: width of the hidden blocks (64).

    :meth:`forward` takes ``img`` (N x 3 x H x W normalised), ``alpha`` (N x 1 x H x W in [0, 1])
    and ``alpha_logit`` (unused) and returns alpha + correction, N x 1 x H x W, >= alpha.
    """

    def __init__(self, conv_channels=64):
        super().__init__()
        width = int(conv_channels)
        self.conv1 = ConvBNReLU(4, width, 3)
        self.conv2 = ConvBNReLU(width, width, 3)
        self.conv3 = ConvBNReLU(width, width, 3)
        self.alpha_pred = ConvBNReLU(width, 1, 3)

    def forward(self, img, alpha, alpha_logit):
        x = paddle.concat([img, alpha], axis=1)
        x = self.conv3(self.conv2(self.conv1(x)))
        return alpha + self.alpha_pred(x)
