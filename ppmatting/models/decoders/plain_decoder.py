"""The paper's DIM decoder: 1x1 conv, then five [max-unpool to the encoder's max positions, 5x5 conv].

No skip features and no batch norm: the DIM paper (Xu et al. 2017, Fig. 3 and section 4.1) and
mmediting's ``PlainDecoder`` (``deconv6_1`` 1x1 512->512, then ``deconv5_1`` .. ``deconv1_1`` 5x5
after each unpooling, ``deconv1`` 5x5 64->1, ReLU after every conv but the last). Layer names match
mmediting's ``backbone.decoder.*`` so its checkpoints copy 1:1.

The unpooling places each value where the encoder's 2x2 window had its maximum: with Paddle's
``max_unpool2d`` and the pool indices (fast), or, for the graph exported to ONNX, from the
encoder's pre-pool feature with operators paddle2onnx converts (``portable_unpool``); the two give
the same tensor bit for bit (:mod:`ppmatting.models.decoders.unpool`).
"""
import paddle.nn as nn
import paddle.nn.functional as F

from ppmatting.cvlibs import manager
from ppmatting.models.decoders.unpool import unpool_like_max_pool, unpool_with_indices


def _xavier_conv(cin, cout, kernel_size):
    # mmediting initialises the decoder with mmcv's xavier_init (normal, gain 1, bias 0).
    return nn.Conv2D(cin, cout, kernel_size, padding=kernel_size // 2,
                     weight_attr=nn.initializer.XavierNormal(),
                     bias_attr=nn.initializer.Constant(0.0))


@manager.DECODERS.add_component
class PlainDecoder(nn.Layer):
    """DIM's unpooling decoder.

    Args:
        in_channels: channels of the encoder output (512 for VGG16).
        portable_unpool: unpool without the pool indices, with operators every exporter converts
            (same result, slower in Paddle Inference). ``tools/export.py --format onnx`` switches
            it on for the ONNX graph only (:func:`~ppmatting.models.decoders.unpool.
            portable_unpooling`).

    :meth:`forward` takes the encoder's ``(out, skips, indices)`` and returns
    ``(alpha_logit, alpha)``: float32 N x 1 x H x W, the raw prediction and its sigmoid in [0, 1].
    """

    # (layer, in, out) from the deepest level up; deconv{k}_1 runs after unpooling to level k.
    LEVELS = (("deconv5_1", 512, 512), ("deconv4_1", 512, 256), ("deconv3_1", 256, 128),
              ("deconv2_1", 128, 64), ("deconv1_1", 64, 64))

    def __init__(self, in_channels=512, portable_unpool=False):
        super().__init__()
        self.portable_unpool = bool(portable_unpool)
        self.deconv6_1 = _xavier_conv(in_channels, 512, 1)
        for name, cin, cout in self.LEVELS:
            self.add_sublayer(name, _xavier_conv(cin, cout, 5))
        self.deconv1 = _xavier_conv(64, 1, 5)

    def unpool(self, x, index, skip):
        """x N x C x h x w -> N x C x H x W (``skip``'s size), x at ``skip``'s 2x2 window maxima
        (``index``: the encoder's pool indices for ``skip``)."""
        if self.portable_unpool:
            return unpool_like_max_pool(x, skip)
        return unpool_with_indices(x, index, skip)

    def forward(self, out, skips, indices):
        x = F.relu(self.deconv6_1(out))
        for level, (name, _, _) in zip(range(4, -1, -1), self.LEVELS):
            x = self.unpool(x, indices[level], skips[level])
            # An identity here (x is ReLU output scattered into zeros), but it gives Paddle
            # Inference's bf16 pass a oneDNN op between the unpool and the conv, so the decoder
            # convs run in bf16 instead of staying fp32 (docs/deploy.md, speed).
            x = F.relu(x)
            x = F.relu(getattr(self, name)(x))
        alpha_logit = self.deconv1(x)
        return alpha_logit, F.sigmoid(alpha_logit)
