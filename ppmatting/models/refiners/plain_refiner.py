"""DIM's refinement stage: four 3x3 convs on (RGB, stage-1 alpha) that predict a correction.

mmediting's ``PlainRefiner`` (``mmedit/models/components/refiners/plain_refiner.py``; names as in
its published checkpoints): ``refine_conv1..3`` 3x3 + ReLU, ``refine_pred``
3x3 -> 1 channel. Where the correction is added is a choice:

* ``skip="logit"`` (the published mmediting checkpoints): refined = sigmoid(alpha_logit + pred).
* ``skip="alpha"`` (the paper's text): refined = alpha + pred; the model clips it to [0, 1] in
  eval mode, training sees the raw sum.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppmatting.cvlibs import manager

SKIP_SPACES = ("logit", "alpha")


@manager.REFINERS.add_component
class PlainRefiner(nn.Layer):
    """DIM's plain refiner.

    Args:
        conv_channels: width of the three hidden convs (64 in the paper).
        skip: ``"logit"`` or ``"alpha"``, where the correction is added (see module docstring).

    :meth:`forward` takes ``img`` (float32 N x 3 x H x W, normalised), ``alpha`` (N x 1 x H x W in
    [0, 1], the decoder's prediction) and ``alpha_logit`` (its pre-sigmoid value) and returns the
    refined alpha, N x 1 x H x W.
    """

    def __init__(self, conv_channels=64, skip="logit"):
        super().__init__()
        if skip not in SKIP_SPACES:
            raise ValueError(f"skip must be one of {', '.join(SKIP_SPACES)}, got {skip!r}")
        self.skip = skip
        width = int(conv_channels)
        self.refine_conv1 = self._conv(4, width)
        self.refine_conv2 = self._conv(width, width)
        self.refine_conv3 = self._conv(width, width)
        self.refine_pred = self._conv(width, 1)

    @staticmethod
    def _conv(cin, cout):
        # mmediting's xavier_init: normal, gain 1, bias 0.
        return nn.Conv2D(cin, cout, 3, padding=1, weight_attr=nn.initializer.XavierNormal(),
                         bias_attr=nn.initializer.Constant(0.0))

    def forward(self, img, alpha, alpha_logit):
        x = paddle.concat([img, alpha], axis=1)
        x = F.relu(self.refine_conv1(x))
        x = F.relu(self.refine_conv2(x))
        x = F.relu(self.refine_conv3(x))
        correction = self.refine_pred(x)
        if self.skip == "logit":
            return F.sigmoid(alpha_logit + correction)
        return alpha + correction
