"""DIM's training losses: Charbonnier alpha loss, composition loss and refine loss.

All three follow mmediting's DIM recipe (its ``dim_stage{1,2,3}`` configs and
``CharbonnierLoss`` / ``CharbonnierCompLoss``, after the alpha-prediction and compositional losses
of the DIM paper, Xu et al. 2017): a Charbonnier penalty ``sqrt(d^2 + eps)`` with
``eps = 1e-12`` (the paper's epsilon = 1e-6, squared), averaged over the unknown pixels of the
trimap (== 128) as ``sum(loss * mask) / (sum(mask) + 1e-12)``, where the sums run over the whole
batch (a pixel-weighted mean, mmediting's ``mask_reduce_loss``). Each loss
returns its weighted value, so the total loss is the plain sum of the configured losses.

Every loss is called as ``loss(outputs, batch)``:

* ``outputs``: the model's dict of N x 1 x H x W tensors (``alpha_pred``, ``alpha_refined``, ``alpha``)
  in [0, 1] (``alpha_refined`` may leave [0, 1] slightly in training, where it is not clipped).
* ``batch``: the training batch dict: ``trimap`` N x 1 x H x W raw 0/128/255, ``alpha`` N x 1 x H x W in
  [0, 1], ``image01``, ``fg``, ``bg`` N x 3 x H x W in [0, 1], ``comp_valid`` N (1.0 when fg/bg are
  real, 0.0 for pre-composited samples, whose composition term is zero).
"""
import paddle

from ppmatting.cvlibs import manager
from ppmatting.utils.errors import ConfigError

UNKNOWN = 128.0
REDUCE_EPS = 1e-12  # mmediting's mask_reduce_loss denominator guard: an all-known crop gives 0, not NaN


def charbonnier(diff, eps):
    """Element-wise ``sqrt(diff^2 + eps)``; a smooth L1 whose gradient is finite at 0."""
    return paddle.sqrt(diff * diff + eps)


def unknown_mask(trimap):
    """float32 N x 1 x H x W: 1 where the raw trimap (0/128/255) is 128, else 0."""
    return paddle.cast(paddle.equal(trimap, paddle.full_like(trimap, UNKNOWN)), "float32")


def masked_mean(loss, mask):
    """``sum(loss * mask) / (sum(mask broadcast to loss) + 1e-12)`` over the whole batch.

    loss: N x C x H x W; mask: N x 1 x H x W (broadcast over the C channels, so the composition loss
    is averaged over unknown pixels *and* 3 channels).
    """
    mask = paddle.expand_as(mask, loss)
    return paddle.sum(loss * mask) / (paddle.sum(mask) + REDUCE_EPS)


class _MattingLoss:
    """Shared configuration: ``weight``, ``eps``, ``pred_key`` and the ``name`` shown in logs."""

    default_name = "loss"
    default_pred_key = "alpha_pred"

    def __init__(self, weight=1.0, eps=1e-12, pred_key=None, name=None):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"weight must be a non-negative number, got {weight!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        self.weight = float(weight)
        self.eps = float(eps)
        self.pred_key = pred_key or self.default_pred_key
        if not isinstance(self.pred_key, str):
            raise ValueError(f"pred_key must be a string, got {self.pred_key!r}")
        self.name = name or self.default_name

    def prediction(self, outputs):
        if self.pred_key not in outputs:
            raise ConfigError(f"losses: {type(self).__name__} '{self.name}' reads the model output "
                              f"'{self.pred_key}', but the model returns {', '.join(sorted(outputs))}"
                              + (" (a model without a refiner has no 'alpha_refined')"
                                 if self.pred_key == "alpha_refined" else ""))
        return paddle.cast(outputs[self.pred_key], "float32")

    def __call__(self, outputs, batch):
        return self.weight * self.compute(self.prediction(outputs), batch)

    def compute(self, alpha_pred, batch):
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(name={self.name!r}, pred_key={self.pred_key!r}, "
                f"weight={self.weight}, eps={self.eps})")


@manager.LOSSES.add_component
class AlphaLoss(_MattingLoss):
    """Charbonnier distance between the predicted and the true alpha over unknown pixels.

    Args:
        weight: multiplier (DIM: 0.5 for the encoder-decoder's alpha).
        eps: Charbonnier epsilon added under the square root (1e-12).
        pred_key: model output to score ('alpha_pred' or 'alpha_refined').
        name: key shown in logs (default 'alpha_loss').
    """

    default_name = "alpha_loss"

    def compute(self, alpha_pred, batch):
        diff = alpha_pred - batch["alpha"]
        return masked_mean(charbonnier(diff, self.eps), unknown_mask(batch["trimap"]))


@manager.LOSSES.add_component
class RefineLoss(AlphaLoss):
    """The alpha loss applied to the refiner's output ('alpha_refined'); DIM weight 1.0."""

    default_name = "refine_loss"
    default_pred_key = "alpha_refined"


@manager.LOSSES.add_component
class CompositionLoss(_MattingLoss):
    """Charbonnier distance between ``alpha*fg + (1-alpha)*bg`` and the composite ``image01``
    (all in [0, 1] RGB, not normalised), over unknown pixels and the 3 channels.

    Samples with ``comp_valid == 0`` (pre-composited data: no true fg/bg) contribute nothing; a
    batch made only of them gives 0.

    Args:
        weight: multiplier (DIM: 0.5).
        eps: Charbonnier epsilon (1e-12).
        pred_key: model output to composite with (DIM: 'alpha_pred').
        name: key shown in logs (default 'comp_loss').
    """

    default_name = "comp_loss"

    def compute(self, alpha_pred, batch):
        comp01 = alpha_pred * batch["fg"] + (1.0 - alpha_pred) * batch["bg"]
        mask = unknown_mask(batch["trimap"])
        valid = paddle.cast(batch["comp_valid"], "float32").reshape([-1, 1, 1, 1])
        return masked_mean(charbonnier(comp01 - batch["image01"], self.eps), mask * valid)
