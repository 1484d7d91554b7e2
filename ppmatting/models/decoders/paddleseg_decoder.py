"""PaddleSeg's DIM decoder: bilinear upsampling with additive skips and conv + batch norm.

As PaddleSeg's ``Matting/ppmatting/models/dim.py`` builds it (``Decoder`` and ``Up``): ``deconv6``
1x1 (no bias, no activation), then five blocks of [bilinear resize (align_corners False) to the
skip's size, add the encoder's pre-pool feature, 5x5 conv (no bias) + BN + ReLU], then
``alpha_conv`` 5x5 -> sigmoid. Resizing to the skip's exact size is what lets this variant run on
any size unpadded, as PaddleSeg evaluates it (its encoder's 2x2 pooling floors odd sizes). Names
follow PaddleSeg's with ``_conv`` / ``_batch_norm`` shortened to ``conv`` / ``bn``
(``decoder.deconv5.conv.conv.weight``, ``decoder.deconv5.conv.bn._mean``).
"""
import paddle.nn as nn
import paddle.nn.functional as F

from ppmatting.cvlibs import manager
from ppmatting.models.decoders.spatial import spatial_size


class ConvBNReLU(nn.Layer):
    """k x k conv without bias + BatchNorm2D + ReLU (PaddleSeg's ``layers.ConvBNReLU``)."""

    def __init__(self, cin, cout, kernel_size):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel_size, padding=kernel_size // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SkipUpBlock(nn.Layer):
    """Resize ``x`` to the skip feature's size, add the skip, then conv + BN + ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        # Two levels (``deconvK.conv.conv``) as in PaddleSeg's ``deconvK.conv._conv``.
        self.conv = ConvBNReLU(cin, cout, 5)

    def forward(self, x, skip):
        x = F.interpolate(x, size=spatial_size(skip), mode="bilinear", align_corners=False)
        return self.conv(x + skip)


@manager.DECODERS.add_component
class PaddleSegDecoder(nn.Layer):
    """PaddleSeg's bilinear-skip decoder.

    Args:
        in_channels: channels of the encoder output (512).

    :meth:`forward` takes ``(out, skips, indices)`` (indices unused) and returns
    ``(alpha_logit, alpha)``, float32 N x 1 x H x W, alpha = sigmoid(logit) in [0, 1]
    (PaddleSeg's ``alpha_raw``).
    """

    LEVELS = (("deconv5", 512, 512), ("deconv4", 512, 256), ("deconv3", 256, 128),
              ("deconv2", 128, 64), ("deconv1", 64, 64))

    def __init__(self, in_channels=512):
        super().__init__()
        self.deconv6 = nn.Conv2D(in_channels, 512, 1, bias_attr=False)
        for name, cin, cout in self.LEVELS:
            self.add_sublayer(name, SkipUpBlock(cin, cout))
        self.alpha_conv = nn.Conv2D(64, 1, 5, padding=2, bias_attr=False)

    def forward(self, out, skips, indices):
        x = self.deconv6(out)
        for level, (name, _, _) in zip(range(4, -1, -1), self.LEVELS):
            x = getattr(self, name)(x, skips[level])
        alpha_logit = self.alpha_conv(x)
        return alpha_logit, F.sigmoid(alpha_logit)
