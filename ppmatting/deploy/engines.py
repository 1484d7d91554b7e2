"""What tiling needs to know about an engine, and the dynamic graph as an engine.

An *engine* is anything with ``run(img, trimap) -> alpha`` (img float32 N x 3 x H x W normalised,
trimap float32 N x 1 x H x W raw 0/128/255, alpha float32 N x 1 x H x W in [0, 1]): the Paddle
Inference :class:`~ppmatting.deploy.predictor.MattingPredictor`, ONNX Runtime, or
:class:`DygraphEngine` over a DIM layer. :class:`EngineSpec` carries the facts about it that the
pre-processing (``ppmatting.models.dim.preprocess``) and the memory estimate
(:mod:`ppmatting.deploy.memory`) need.
"""
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class EngineSpec:
    """variant: ``mmediting`` or ``paddleseg`` (the DIM layout); mean, std: the input
    normalisation of RGB in [0, 1]; pad_multiple: the whole-image padding (32, or 1 for
    PaddleSeg's unpadded procedure); engine: ``paddle`` (Paddle Inference), ``dygraph`` or
    ``onnxruntime``; precision: ``fp32`` or ``bf16``; name: for messages."""
    variant: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    pad_multiple: int
    engine: str
    precision: str = "fp32"
    name: str = "DIM"

    def describe(self):
        return f"{self.name} ({self.variant}, {self.engine} {self.precision})"


def spec_for_predictor(predictor):
    """The spec of a :class:`~ppmatting.deploy.predictor.MattingPredictor` or its ONNX Runtime
    subclass (:class:`~ppmatting.deploy.onnx_predictor.OnnxPredictor`, ``backend`` onnxruntime)."""
    info = predictor.info
    engine = getattr(predictor, "backend", "paddle")
    return EngineSpec(variant=info.variant or "mmediting", mean=tuple(info.mean),
                      std=tuple(info.std), pad_multiple=int(info.pad_multiple), engine=engine,
                      precision=predictor.options.precision, name=info.model_name or "DIM")


def spec_for_model(model):
    """The spec of a DIM layer run in the dynamic graph (fp32)."""
    return EngineSpec(variant=model.variant, mean=tuple(model.input_mean),
                      std=tuple(model.input_std), pad_multiple=int(model.pad_multiple),
                      engine="dygraph", precision="fp32", name=type(model).__name__)


class DygraphEngine:
    """``run`` over a DIM layer in Paddle's dynamic graph (eval mode, no gradients)."""

    def __init__(self, model):
        self.model = model

    def run(self, img, trimap):
        from ppmatting.deploy.export import dygraph_alpha

        return dygraph_alpha(self.model, img, trimap)
