"""VGG16 encoders for DIM: 4-channel input (RGB + trimap), five pooled blocks, then ``conv6``.

Two layouts, one class:

* :class:`VGG16` -- the paper's / mmediting's encoder: convs with bias, ``conv6`` 1x1 + ReLU.
  Its tensors map 1:1 to mmediting's ``backbone.encoder.layer{b}.{0,2,4}`` and ``.conv6``
  (mmediting's DIM, ``mmedit/models/backbones/encoder_decoders/encoders/vgg.py``;
  its published checkpoints hold 14,977,920 encoder values).
* :class:`PaddleSegVGG16` -- PaddleSeg's encoder: convs without bias, ``conv6`` 3x3 + ReLU
  (PaddleSeg's ``_conv_6`` in ``Matting/ppmatting/models/backbone/vgg.py``).

Both return the same triple so every decoder can use either: ``(out, skips, indices)`` where
``skips[i]`` is block ``i+1``'s feature before pooling (its shape also tells the decoder the size to
unpool or upsample to) and ``indices[i]`` its max-pool indices.

Parameter names are ``conv{block}_{n}`` and ``conv6`` (e.g. ``backbone.conv3_2.weight``); the
converters in :mod:`ppmatting.weights.layouts` map the published names onto them.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppmatting.cvlibs import manager

# Convolutions per block and their output channels (VGG16, Simonyan & Zisserman, config D).
VGG16_BLOCK_CONVS = (2, 2, 3, 3, 3)
VGG16_BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def vgg16_conv_names():
    """``[["conv1_1", "conv1_2"], ..., ["conv5_1", "conv5_2", "conv5_3"]]`` in forward order."""
    return [[f"conv{block + 1}_{n + 1}" for n in range(count)]
            for block, count in enumerate(VGG16_BLOCK_CONVS)]


@manager.BACKBONES.add_component
class VGG16(nn.Layer):
    """VGG16 (no batch norm) with max-pool indices and a ``conv6`` after block 5.

    Args:
        in_channels: input channels; 4 for DIM (normalised RGB + trimap/255).
        pretrained: VGG16 ImageNet weights (path or URL; Paddle's ``paddle.vision.models.vgg16``,
            torchvision's or PaddleClas's layout). Conv weights are copied, the extra input
            channel starts at zero and ``conv6`` is cut from ``fc6``. ``None`` keeps the
            initialisation below.
        conv_bias: convolutions carry a bias (True for mmediting's layout).
        conv6_kernel_size: 1 (the paper's fc6-as-conv, mmediting) or 3 (PaddleSeg).

    Input: float32 N x in_channels x H x W. Output of :meth:`forward`: ``(out, skips, indices)``;
    ``out`` is N x 512 x floor(H/32) x floor(W/32) after ReLU.
    """

    def __init__(self, in_channels=4, pretrained=None, conv_bias=True, conv6_kernel_size=1):
        super().__init__()
        if conv6_kernel_size not in (1, 3):
            raise ValueError(f"conv6_kernel_size must be 1 or 3, got {conv6_kernel_size!r}")
        self.in_channels = int(in_channels)
        self.conv_bias = bool(conv_bias)
        self.conv6_kernel_size = int(conv6_kernel_size)
        self.pretrained = pretrained
        self.out_channels = VGG16_BLOCK_CHANNELS[-1]
        self._conv_names = vgg16_conv_names()

        channels = self.in_channels
        for names, width in zip(self._conv_names, VGG16_BLOCK_CHANNELS):
            for name in names:
                self.add_sublayer(name, self._conv(channels, width, 3))
                channels = width
        self.conv6 = self._conv(channels, channels, self.conv6_kernel_size)

        if pretrained:
            from ppmatting.weights import load_vgg16_imagenet
            load_vgg16_imagenet(self, pretrained)

    def _conv(self, cin, cout, kernel_size):
        if self.conv_bias:
            # mmediting initialises every conv with mmcv's xavier_init (normal, gain 1, bias 0).
            return nn.Conv2D(cin, cout, kernel_size, padding=kernel_size // 2,
                             weight_attr=nn.initializer.XavierNormal(),
                             bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))
        # PaddleSeg keeps Paddle's default initialiser and has no bias.
        return nn.Conv2D(cin, cout, kernel_size, padding=kernel_size // 2, bias_attr=False)

    def conv_layers(self):
        """``[(name, Conv2D)]`` for the 13 VGG16 convs and ``conv6``, in forward order."""
        layers = [(name, getattr(self, name)) for names in self._conv_names for name in names]
        return layers + [("conv6", self.conv6)]

    def forward(self, x):
        """x: float32 N x C x H x W -> (out, [5 pre-pool features], [5 pool index tensors])."""
        skips, indices = [], []
        for names in self._conv_names:
            for name in names:
                x = F.relu(getattr(self, name)(x))
            skips.append(x)
            x, index = F.max_pool2d(x, kernel_size=2, stride=2, return_mask=True)
            indices.append(index)
        out = F.relu(self.conv6(x))
        return out, skips, indices


@manager.BACKBONES.add_component
class PaddleSegVGG16(VGG16):
    """PaddleSeg's DIM encoder: VGG16 convs without bias and a 3x3 ``conv6`` (``_conv_6``).

    Args:
        in_channels: 4 (normalised RGB + trimap/255).
        pretrained: VGG16 ImageNet weights, path or URL (see :class:`VGG16`; conv biases and the
            fc6 bias are skipped because this layout has none).
    """

    def __init__(self, in_channels=4, pretrained=None):
        super().__init__(in_channels=in_channels, pretrained=pretrained, conv_bias=False,
                         conv6_kernel_size=3)
