"""One way from a config and weights to a ready model, for every tool.

:func:`load_config_and_model` parses the YAML once and returns both the :class:`Config` (datasets,
training keys) and its model with ``--model_path`` weights loaded, in eval mode when it is a
network. ``tools/predict.py``, ``bg_replace.py``, ``val.py``, ``export.py``, the demo and the web
app all come through here.
"""
from ppmatting.utils.errors import InputError


def not_a_network_message(model, config_path):
    """Why a classical method cannot be exported, and what to run instead."""
    name = type(model).__name__
    return (f"{config_path}: {name} is a classical matting method (it solves a sparse linear "
            f"system per image), not a neural network: there is no graph or weights to export. "
            f"Run it directly: python tools/predict.py --config {config_path} "
            f"--image_path IMG --trimap_path TRIMAP")


def load_config_and_model(config_path, model_path=None, opts=None, networks_only=False,
                          random_weights=False):
    """Parse ``config_path`` (with ``opts``) and build its model; load ``model_path`` weights.

    Args:
        networks_only: refuse a classical method (export needs a network).
        random_weights: accept a network without trained weights (speed tests only); otherwise a
            network with no ``model_path`` and no ``model.pretrained`` is an error, since it
            would output noise.
    Returns ``(cfg, model)``; a network is in eval mode.
    """
    from ppmatting.cvlibs.config import Config

    if not config_path:
        raise InputError("--config is required (e.g. configs/ml/closed_form.yml), unless "
                         "--model_path is an export folder holding deploy.yaml")
    cfg = Config(config_path, opts=opts)
    model = cfg.model
    is_network = bool(getattr(model, "is_network", False))
    if networks_only and not is_network:
        raise InputError(not_a_network_message(model, config_path))
    if model_path:
        if not is_network:
            raise InputError(f"{model_path}: {type(model).__name__} ({config_path}) is a classical "
                             f"method and has no weights to load; drop --model_path")
        from ppmatting.weights import load_weights
        load_weights(model, model_path)
    elif is_network and not getattr(model, "pretrained", None) and not random_weights:
        raise InputError(f"{config_path}: {type(model).__name__} is a network and has no trained "
                         f"weights; pass --model_path W (a .pdparams from tools/train.py, or a "
                         f"published DIM checkpoint)")
    if is_network:
        model.eval()
    return cfg, model


def load_model(config_path, model_path=None, opts=None, **kwargs):
    """The model of :func:`load_config_and_model` alone."""
    return load_config_and_model(config_path, model_path, opts, **kwargs)[1]
