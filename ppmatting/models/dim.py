"""DIM (Deep Image Matting, Xu et al. CVPR 2017) composed of a backbone, a decoder and a refiner.

Two published variants are configs, not code paths (see configs/dim/):

* the paper's network as mmediting publishes it: :class:`~ppmatting.models.backbones.VGG16` +
  :class:`~ppmatting.models.decoders.PlainDecoder` + :class:`~ppmatting.models.refiners.PlainRefiner`,
  ImageNet mean/std;
* PaddleSeg's DIM: :class:`~ppmatting.models.backbones.PaddleSegVGG16` +
  :class:`~ppmatting.models.decoders.PaddleSegDecoder` +
  :class:`~ppmatting.models.refiners.PaddleSegRefiner`, mean = std = 0.5.

Pre- and post-processing (normalise, pad, crop back, clamp, force the known trimap regions) are
module functions so that prediction, export and deployment share one code path.

Each variant runs by default as its publisher evaluates and predicts with it (``pad_multiple``):

* the paper's network as mmediting tests it: reflect-pad bottom and right to a multiple of 32, crop
  back (mmediting's DIM test pipeline);
* PaddleSeg's DIM unpadded: PaddleSeg's val / predict transforms are LoadImages,
  LimitLong(max_long=3840) and Normalize, with no padding; its encoder's 2x2 pooling floors odd
  sizes and each decoder block resizes to its skip's exact size (PaddleSeg ``Matting/ppmatting/
  models/dim.py``, ``models/backbone/vgg.py``, ``transforms/transforms.py``). Padding to 32 would
  change this network's alpha almost everywhere (the borders it sees move), so its published
  numbers and its users' results come from unpadded inputs. The long-side limit is applied in
  evaluation (the config's val transforms), see docs/dim.md.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ppmatting.cvlibs import manager
from ppmatting.models.backbones import VGG16, PaddleSegVGG16
from ppmatting.models.decoders import PlainDecoder, PaddleSegDecoder
from ppmatting.models.refiners import PlainRefiner, PaddleSegRefiner
from ppmatting.models.base import check_matting_inputs, force_known
from ppmatting.transforms import pad_amounts, pad_bottom_right

IMAGENET_MEAN = (0.485, 0.456, 0.406)
# Padding of each variant's published test procedure (see the module docstring).
PROCEDURE_PAD_MULTIPLE = {"mmediting": 32, "paddleseg": 1}
IMAGENET_STD = (0.229, 0.224, 0.225)
PADDLESEG_MEAN = (0.5, 0.5, 0.5)
PADDLESEG_STD = (0.5, 0.5, 0.5)


def preprocess(image01, trimap_u8, mean, std, pad_multiple=32):
    """Build the network inputs for one image.

    Args:
        image01: float32 H x W x 3 RGB in [0, 1].
        trimap_u8: uint8 H x W in {0, 128, 255}.
        mean, std: 3 numbers each, applied to ``image01``.
        pad_multiple: pad bottom and right (reflect) to a multiple of this.

    Returns:
        ``(img, trimap, (h, w))``: img float32 1 x 3 x Hp x Wp normalised, trimap float32
        1 x 1 x Hp x Wp raw 0/128/255, and the original size for :func:`postprocess`.
    """
    image01, trimap_u8 = check_matting_inputs(image01, trimap_u8, what="DIM", convert=False)
    height, width = trimap_u8.shape
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
    std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
    img = (image01.astype(np.float32) - mean) / std
    trimap = trimap_u8.astype(np.float32)
    pad_h, pad_w = pad_amounts(height, width, int(pad_multiple))
    if pad_h or pad_w:
        img = pad_bottom_right(img, pad_h, pad_w, "reflect")
        trimap = pad_bottom_right(trimap, pad_h, pad_w, "reflect")
    img = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
    trimap = np.ascontiguousarray(trimap[None, None], dtype=np.float32)
    return img, trimap, (height, width)


def postprocess(alpha, trimap_u8, size):
    """Network output -> ``alpha01`` for the original image.

    Args:
        alpha: array 1 x 1 x Hp x Wp, 1 x Hp x Wp or Hp x Wp (the model's ``alpha``).
        trimap_u8: uint8 H x W, the original trimap.
        size: (h, w) from :func:`preprocess`.

    Returns:
        float32 H x W in [0, 1]: cropped, clamped, 0 / 1 where the trimap says so.
    """
    alpha = np.asarray(alpha, dtype=np.float32)
    while alpha.ndim > 2:
        if alpha.shape[0] != 1:
            raise ValueError(f"postprocess expects one alpha matte, got shape {alpha.shape}")
        alpha = alpha[0]
    height, width = size
    return force_known(alpha[:height, :width], np.asarray(trimap_u8))  # clamps and forces


@manager.MODELS.add_component
class DIM(nn.Layer):
    """Deep Image Matting: encoder-decoder (stage 1) plus an optional refiner (stages 2-3).

    Args:
        backbone: a 4-channel encoder returning ``(out, skips, indices)``; default :class:`VGG16`.
        decoder: returns ``(alpha_logit, alpha)``; default :class:`PlainDecoder`.
        refiner: ``refiner(img, alpha, alpha_logit)`` -> refined alpha, or ``None`` (stage 1).
        input_mean, input_std: normalisation of RGB in [0, 1] that the weights expect.
        pad_multiple: :meth:`predict` reflect-pads height and width to a multiple of this (1: no
            padding). ``None`` (default): the variant's published procedure, 32 for the paper's
            network (mmediting) and 1 for PaddleSeg's (:data:`PROCEDURE_PAD_MULTIPLE`). Any size
            runs either way: unpooling and upsampling follow the encoder's pre-pool sizes.
        pretrained: a DIM checkpoint (path or URL) loaded after construction: ppmatting's own
            ``.pdparams``, mmediting's ``.pth`` or PaddleSeg's ``.pdparams`` (detected from the
            tensor names), read by ppmatting's restricted unpickler (numeric arrays and plain
            containers only; nothing in the file runs).
        allow_missing_refiner: with ``pretrained``, accept a checkpoint without refiner tensors
            (a stage-1 result used to start stage 2); the refiner keeps its initialisation.

    ``forward(img, trimap)``: img float32 N x 3 x H x W normalised with ``input_mean/std``,
    trimap float32 N x 1 x H x W raw 0/128/255. Returns a dict of N x 1 x H x W tensors:
    ``alpha_pred`` (sigmoid of the decoder), ``alpha_refined`` (with a refiner; clipped to [0, 1] in
    eval mode, raw in training where the refiner adds in alpha space) and ``alpha`` (the final one).
    """

    is_network = True
    needs_trimap = True

    def __init__(self, backbone=None, decoder=None, refiner=None, input_mean=IMAGENET_MEAN,
                 input_std=IMAGENET_STD, pad_multiple=None, pretrained=None,
                 allow_missing_refiner=False):
        super().__init__()
        self.backbone = backbone if backbone is not None else VGG16()
        self.decoder = decoder if decoder is not None else PlainDecoder()
        self.refiner = refiner
        self.input_mean = self._three_numbers(input_mean, "input_mean")
        self.input_std = self._three_numbers(input_std, "input_std")
        if any(value <= 0 for value in self.input_std):
            raise ValueError(f"input_std must be positive, got {list(self.input_std)}")
        if pad_multiple is None:
            pad_multiple = PROCEDURE_PAD_MULTIPLE[self.variant]
        if isinstance(pad_multiple, bool) or not isinstance(pad_multiple, int) or pad_multiple < 1:
            raise ValueError(f"pad_multiple must be a positive integer, got {pad_multiple!r}")
        self.pad_multiple = pad_multiple
        self.pretrained = pretrained
        if pretrained:
            from ppmatting.weights import load_weights
            allow = ("refiner.",) if allow_missing_refiner else ()
            load_weights(self, pretrained, allow_missing=allow)

    @staticmethod
    def _three_numbers(values, name):
        try:
            values = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be 3 numbers, got {values!r}") from None
        if len(values) != 3:
            raise ValueError(f"{name} must be 3 numbers, got {list(values)}")
        return values

    @property
    def variant(self):
        """'paddleseg' for PaddleSeg's decoder, else 'mmediting' (the paper's unpooling decoder)."""
        return "paddleseg" if isinstance(self.decoder, PaddleSegDecoder) else "mmediting"

    @property
    def procedure(self):
        """One line for logs and deploy.yaml: how inputs are padded, and whether that is the
        variant's published procedure."""
        published = PROCEDURE_PAD_MULTIPLE[self.variant]
        how = ("unpadded" if self.pad_multiple == 1 else
               f"reflect-padded bottom/right to a multiple of {self.pad_multiple}")
        whose = {"mmediting": "mmediting's DIM test pipeline",
                 "paddleseg": "PaddleSeg's evaluation and prediction"}[self.variant]
        if self.pad_multiple == published:
            return f"{how}, as in {whose}"
        return f"{how}; NOT {whose} (pad_multiple {published})"

    def forward(self, img, trimap):
        x = paddle.concat([img, trimap / 255.0], axis=1)
        out, skips, indices = self.backbone(x)
        alpha_logit, alpha_pred = self.decoder(out, skips, indices)
        result = {"alpha_pred": alpha_pred}
        if self.refiner is None:
            result["alpha"] = alpha_pred
            return result
        alpha_refined = self.refiner(img, alpha_pred, alpha_logit)
        if not self.training:
            alpha_refined = paddle.clip(alpha_refined, 0.0, 1.0)
        result["alpha_refined"] = alpha_refined
        result["alpha"] = alpha_refined
        return result

    # ---- one pre/post-processing path for predict, export and deploy -----------------------------
    def preprocess(self, image01, trimap_u8):
        """-> (img float32 1x3xHpxWp, trimap float32 1x1xHpxWp, (h, w)); see :func:`preprocess`."""
        return preprocess(image01, trimap_u8, self.input_mean, self.input_std, self.pad_multiple)

    @staticmethod
    def postprocess(alpha, trimap_u8, size):
        """-> alpha01 H x W float32; see :func:`postprocess`."""
        return postprocess(alpha, trimap_u8, size)

    def predict(self, image01, trimap_u8):
        """image01 float32 H x W x 3 in [0, 1], trimap_u8 uint8 H x W -> alpha01 float32 H x W.

        Runs in eval mode without gradients and restores the previous mode afterwards.
        """
        img, trimap, size = self.preprocess(image01, trimap_u8)
        was_training = self.training
        self.eval()
        try:
            with paddle.no_grad():
                alpha = self(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()
        finally:
            if was_training:
                self.train()
        return self.postprocess(alpha, trimap_u8, size)


def dim_vgg16(refiner=True, refine_skip="logit", pretrained=None):
    """The paper's DIM-VGG16 (mmediting layout); ``refiner=False`` gives the stage-1 network."""
    return DIM(backbone=VGG16(), decoder=PlainDecoder(),
               refiner=PlainRefiner(skip=refine_skip) if refiner else None,
               input_mean=IMAGENET_MEAN, input_std=IMAGENET_STD, pretrained=pretrained)


def dim_vgg16_paddleseg(refiner=True, pretrained=None):
    """PaddleSeg's DIM-VGG16 (bilinear-skip decoder with batch norm, mean = std = 0.5)."""
    return DIM(backbone=PaddleSegVGG16(), decoder=PaddleSegDecoder(),
               refiner=PaddleSegRefiner() if refiner else None,
               input_mean=PADDLESEG_MEAN, input_std=PADDLESEG_STD, pretrained=pretrained)
