"""VGG16 ImageNet weights -> DIM's encoder (the paper's initialisation).

The backbone passed in names its convs (``backbone.conv_layers()``), so this module needs nothing
from ``ppmatting.models``.
"""
import logging

import numpy as np

from ppmatting.utils.errors import InputError
from ppmatting.weights.download import resolve_weights_path
from ppmatting.weights.files import read_state_dict
from ppmatting.weights.layouts import _first

logger = logging.getLogger("ppmatting.weights")

# paddle.vision.models.vgg16 and torchvision's vgg16 both name the 13 convs features.{i}.
VISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
FC6_INPUTS = 512 * 7 * 7


def _vgg_source_names(state, ours):
    """``ours``: the backbone's 13 VGG16 conv names in forward order ->
    (layout, {ppmatting conv name: source prefix}, fc6 prefix)."""
    if "features.0.weight" in state:
        if "features.1.weight" in state or "features.1.running_mean" in state:
            raise InputError("VGG16 with batch norm (vgg16_bn); DIM's encoder has none: use plain "
                             "vgg16 weights")
        return "vision", dict(zip(ours, (f"features.{i}" for i in VISION_CONV_INDICES))), "classifier.0"
    if "_conv_block_1._conv_1.weight" in state:
        prefixes = {name: "_conv_block_{}._conv_{}".format(*name[4:].split("_")) for name in ours}
        return "paddleclas", prefixes, "_fc1"
    if "conv1_1.weight" in state or "backbone.conv1_1.weight" in state:
        lead = "backbone." if "backbone.conv1_1.weight" in state else ""
        return "ppmatting", {name: lead + name for name in ours}, None
    return None, None, None


def _fc6_as_conv(weight, kernel_size, path):
    """fc6 weight -> conv6 kernel (512, 512, k, k).

    fc6 maps the flattened 512 x 7 x 7 pool-5 output (C, H, W order) to 4096 units. Transposed to
    (out, in) and reshaped to (out, 512, 7, 7) it is a 7x7 conv; PaddleSeg keeps the first 512
    outputs and the central 3x3 taps [2:5, 2:5] (PaddleSeg's VGG16 ImageNet initialisation). For
    the paper's 1x1 conv6 ppmatting keeps the centre tap [3, 3] of the same crop.
    """
    if weight.ndim != 2 or FC6_INPUTS not in weight.shape:
        raise InputError(f"{path}: fc6 has shape {list(weight.shape)}; expected "
                         f"[{FC6_INPUTS}, N] (Paddle) or [N, {FC6_INPUTS}] (PyTorch)")
    if weight.shape[0] == FC6_INPUTS and weight.shape[1] != FC6_INPUTS:
        out_in = weight.T  # Paddle Linear stores (in, out)
        order = "Paddle (in, out)"
    else:
        out_in = weight  # PyTorch Linear stores (out, in)
        order = "PyTorch (out, in)"
    if out_in.shape[0] < 512:
        raise InputError(f"{path}: fc6 has {out_in.shape[0]} outputs; conv6 needs at least 512")
    start = (7 - kernel_size) // 2
    kernel = out_in[:512].reshape(512, 512, 7, 7)[:, :, start:start + kernel_size,
                                                  start:start + kernel_size]
    return np.ascontiguousarray(kernel, dtype=np.float32), order, start


def load_vgg16_imagenet(backbone, path_or_url):
    """Initialise a :class:`~ppmatting.models.backbones.VGG16` from VGG16 ImageNet weights.

    Accepted layouts: ``paddle.vision.models.vgg16`` (``features.{i}``, ``classifier.0`` stored
    (in, out)), torchvision (same names, ``classifier.0`` stored (out, in)), PaddleClas
    (``_conv_block_{b}._conv_{n}``, ``_fc1``). Conv weights are copied; the extra input channel(s)
    of ``conv1_1`` (the trimap) start at zero; ``conv6`` is cut from ``fc6`` (see
    :func:`_fc6_as_conv`) or keeps its initialisation when the file has no fc6; conv biases are
    copied when the backbone has them. Every skipped, padded or reshaped tensor is logged.

    Returns ``{ppmatting name: source name or description}`` of what was set.
    """
    local = resolve_weights_path(path_or_url)
    state = read_state_dict(local)
    try:
        ours = [name for name, _ in backbone.conv_layers() if name != "conv6"]
        layout, prefixes, fc6 = _vgg_source_names(state, ours)
    except InputError as err:
        raise InputError(f"{path_or_url}: {err}") from None
    if layout is None:
        raise InputError(f"{path_or_url}: not VGG16 weights (no features.0.weight, "
                         f"_conv_block_1._conv_1.weight or conv1_1.weight; found "
                         f"{_first(sorted(state))})")
    params = dict(backbone.named_parameters())
    new_values, used = {}, set()
    for ours, prefix in prefixes.items():
        weight_name = prefix + ".weight"
        if weight_name not in state:
            raise InputError(f"{path_or_url}: does not cover VGG16: '{weight_name}' is missing")
        weight = np.asarray(state[weight_name], dtype=np.float32)
        want = tuple(params[ours + ".weight"].shape)
        used.add(weight_name)
        if weight.shape != want and weight.shape[0] == want[0] and weight.shape[2:] == want[2:] \
                and weight.shape[1] < want[1]:
            extra = want[1] - weight.shape[1]
            pad = np.zeros((want[0], extra) + want[2:], dtype=np.float32)
            weight = np.concatenate([weight, pad], axis=1)
            logger.info("%s: %s %s -> %s.weight %s: %d extra input channel(s) (trimap) set to zero",
                        path_or_url, weight_name, list(state[weight_name].shape), ours, list(want), extra)
        if weight.shape != want:
            raise InputError(f"{path_or_url}: {weight_name} has shape {list(weight.shape)}, "
                             f"the backbone's {ours}.weight needs {list(want)}")
        new_values[ours + ".weight"] = weight
        bias_name = prefix + ".bias"
        if bias_name in state:
            used.add(bias_name)
            if ours + ".bias" in params:
                new_values[ours + ".bias"] = np.asarray(state[bias_name], dtype=np.float32)
            else:
                logger.info("%s: skipping %s (this backbone's convs have no bias)",
                            path_or_url, bias_name)

    conv6_kernel = tuple(params["conv6.weight"].shape)
    if fc6 is None:
        # A file already in ppmatting's layout may carry conv6 itself.
        lead = "backbone." if "backbone.conv1_1.weight" in state else ""
        for suffix in ("weight", "bias"):
            name = f"{lead}conv6.{suffix}"
            if name in state and f"conv6.{suffix}" in params:
                if tuple(state[name].shape) != tuple(params[f"conv6.{suffix}"].shape):
                    raise InputError(f"{path_or_url}: {name} has shape {list(state[name].shape)}, "
                                     f"needs {list(params[f'conv6.{suffix}'].shape)}")
                new_values[f"conv6.{suffix}"] = np.asarray(state[name], dtype=np.float32)
                used.add(name)
    elif fc6 + ".weight" in state:
        kernel, order, start = _fc6_as_conv(np.asarray(state[fc6 + ".weight"]),
                                            conv6_kernel[-1], path_or_url)
        new_values["conv6.weight"] = kernel
        used.add(fc6 + ".weight")
        logger.info("%s: %s.weight %s [%s] -> conv6.weight %s: outputs 0:512, taps %d:%d",
                    path_or_url, fc6, list(state[fc6 + ".weight"].shape), order,
                    list(conv6_kernel), start, start + conv6_kernel[-1])
        if fc6 + ".bias" in state:
            used.add(fc6 + ".bias")
            if "conv6.bias" in params:
                new_values["conv6.bias"] = np.asarray(state[fc6 + ".bias"][:512], dtype=np.float32)
                logger.info("%s: %s.bias[0:512] -> conv6.bias", path_or_url, fc6)
            else:
                logger.info("%s: skipping %s.bias (this conv6 has no bias)", path_or_url, fc6)
    if "conv6.weight" not in new_values:
        logger.info("%s: no fc6 in the file; conv6 keeps its initialisation", path_or_url)
    for name in sorted(set(state) - used):
        logger.info("%s: skipping %s %s (not part of the encoder)", path_or_url, name,
                    list(state[name].shape))
    targets = backbone.state_dict()
    for name, value in new_values.items():
        targets[name].set_value(value)
    logger.info("%s: VGG16 ImageNet weights (%s layout) -> %d backbone tensors", path_or_url,
                layout, len(new_values))
    return new_values

