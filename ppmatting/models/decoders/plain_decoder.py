"""The paper's DIM decoder: 1x1 conv, then five [max-unpool with the encoder's indices, 5x5 conv].

No skip features and no batch norm (DIM paper, Fig. 3; mmediting ``PlainDecoder``; REFERENCE.md
section 1). Layer names match mmediting's ``backbone.decoder.*`` so checkpoints copy 1:1.
"""
import paddle.nn as nn
import paddle.nn.functional as F

from ppmatting.cvlibs import manager
from ppmatting.models.decoders.spatial import spatial_size


def max_unpool_to(x, indices, reference):
    """2x2 max-unpool of ``x`` to exactly ``reference``'s height and width.

    Giving the pre-pool size explicitly (instead of 2 x the pooled size) keeps odd sizes right and
    lets an exported graph take any input size.
    """
    return F.max_unpool2d(x, indices, kernel_size=2, stride=2, output_size=spatial_size(reference))


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

    :meth:`forward` takes the encoder's ``(out, skips, indices)`` and returns
    ``(alpha_logit, alpha)``: float32 N x 1 x H x W, the raw prediction and its sigmoid in [0, 1].
    """

    # (layer, in, out) from the deepest level up; deconv{k}_1 runs after unpooling to level k.
    LEVELS = (("deconv5_1", 512, 512), ("deconv4_1", 512, 256), ("deconv3_1", 256, 128),
              ("deconv2_1", 128, 64), ("deconv1_1", 64, 64))

    def __init__(self, in_channels=512):
        super().__init__()
        self.deconv6_1 = _xavier_conv(in_channels, 512, 1)
        for name, cin, cout in self.LEVELS:
            self.add_sublayer(name, _xavier_conv(cin, cout, 5))
        self.deconv1 = _xavier_conv(64, 1, 5)

    def forward(self, out, skips, indices):
        x = F.relu(self.deconv6_1(out))
        for level, (name, _, _) in zip(range(4, -1, -1), self.LEVELS):
            x = max_unpool_to(x, indices[level], skips[level])
            # An identity here (x is ReLU output scattered into zeros), but it gives Paddle
            # Inference's bf16 pass a oneDNN op between the unpool and the conv, so the decoder
            # convs run in bf16 instead of staying fp32 (1.52x -> 1.68x over fp32 at 1024 px).
            x = F.relu(x)
            x = F.relu(getattr(self, name)(x))
        alpha_logit = self.deconv1(x)
        return alpha_logit, F.sigmoid(alpha_logit)
