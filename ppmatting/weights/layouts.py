"""The tensor names of the DIM checkpoint layouts and the maps between them.

* ``ppmatting``: this package's names (``backbone.conv3_2.weight``, ``decoder.deconv5_1.bias``, ...).
* ``mmediting``: ``backbone.encoder.layer{b}.{0,2,4}``, ``backbone.encoder.conv6``,
  ``backbone.decoder.deconv*``, ``refiner.refine_*`` (the paper's DIM as OpenMMLab publishes
  it: convs at the even indices of each block's Sequential); optionally under ``state_dict`` and
  with ``module.`` prefixes (DataParallel).
* ``paddleseg``: ``backbone._conv_block_{b}._conv_{n}``, ``backbone._conv_6``,
  ``decoder.deconv{k}.conv._conv`` / ``._batch_norm``, ``decoder.alpha_conv``, ``refine.*``
  (PaddleSeg's Matting/ppmatting/models/dim.py and its VGG16 backbone).
"""
import re

from ppmatting.utils.errors import InputError


def _mmediting_conv(match):
    return f"backbone.conv{match[1]}_{int(match[2]) // 2 + 1}.{match[3]}"


MMEDITING_TO_PPMATTING = (
    (r"backbone\.encoder\.layer([1-5])\.([024])\.(weight|bias)", _mmediting_conv),
    (r"backbone\.encoder\.conv6\.(weight|bias)", r"backbone.conv6.\1"),
    (r"backbone\.decoder\.(deconv[1-6]_1|deconv1)\.(weight|bias)", r"decoder.\1.\2"),
    (r"refiner\.(refine_conv[1-3]|refine_pred)\.(weight|bias)", r"refiner.\1.\2"),
)

_BN = r"(weight|bias|_mean|_variance)"
PADDLESEG_TO_PPMATTING = (
    (r"backbone\._conv_block_([1-5])\._conv_([1-3])\.weight", r"backbone.conv\1_\2.weight"),
    (r"backbone\._conv_6\.weight", "backbone.conv6.weight"),
    (r"decoder\.deconv6\.weight", "decoder.deconv6.weight"),
    (r"decoder\.deconv([1-5])\.conv\._conv\.weight", r"decoder.deconv\1.conv.conv.weight"),
    (r"decoder\.deconv([1-5])\.conv\._batch_norm\." + _BN, r"decoder.deconv\1.conv.bn.\2"),
    (r"decoder\.alpha_conv\.weight", "decoder.alpha_conv.weight"),
    (r"refine\.(conv[1-3]|alpha_pred)\._conv\.weight", r"refiner.\1.conv.weight"),
    (r"refine\.(conv[1-3]|alpha_pred)\._batch_norm\." + _BN, r"refiner.\1.bn.\2"),
)

# ppmatting's own names, both variants (used to recognise a ppmatting checkpoint).
PPMATTING_NAMES = (
    (r"backbone\.conv([1-5]_[1-3]|6)\.(weight|bias)", None),
    (r"decoder\.(deconv[1-6]_1|deconv1|deconv6|alpha_conv)\.(weight|bias)", None),
    (r"decoder\.deconv[1-5]\.conv\.(conv\.weight|bn\." + _BN + ")", None),
    (r"refiner\.(refine_conv[1-3]|refine_pred)\.(weight|bias)", None),
    (r"refiner\.(conv[1-3]|alpha_pred)\.(conv\.weight|bn\." + _BN + ")", None),
)

LAYOUTS = {"ppmatting": PPMATTING_NAMES, "mmediting": MMEDITING_TO_PPMATTING,
           "paddleseg": PADDLESEG_TO_PPMATTING}
LAYOUT_TITLES = {"ppmatting": "ppmatting", "mmediting": "mmediting (the paper's DIM)",
                 "paddleseg": "PaddleSeg DIM"}


def _map_name(name, table):
    for pattern, target in table:
        match = re.fullmatch(pattern, name)
        if match:
            if target is None:
                return name
            return target(match) if callable(target) else match.expand(target)
    return None


def detect_layout(names):
    """The layout most of ``names`` belong to ('ppmatting', 'mmediting', 'paddleseg') or None."""
    names = list(names)
    scores = {layout: sum(_map_name(n, table) is not None for n in names)
              for layout, table in LAYOUTS.items()}
    best = max(scores, key=scores.get)
    return best if scores[best] > 0 and scores[best] * 2 >= len(names) else None


def to_ppmatting_names(state, source):
    """Rename ``state`` from layout ``source`` -> (renamed dict, [names that map to nothing])."""
    if source not in LAYOUTS:
        raise ValueError(f"unknown layout '{source}' (known: {', '.join(LAYOUTS)})")
    renamed, unmapped = {}, []
    for name, value in state.items():
        target = _map_name(name, LAYOUTS[source])
        if target is None:
            unmapped.append(name)
        else:
            renamed[target] = value
    return renamed, unmapped


def variant_of(names):
    """Which DIM variant ppmatting-named tensors belong to: 'mmediting', 'paddleseg' or None."""
    names = set(names)
    if any(n.startswith(("decoder.deconv6.", "decoder.alpha_conv.", "refiner.conv", "refiner.alpha_pred"))
           or ".bn." in n for n in names):
        return "paddleseg"
    if any(n.startswith(("decoder.deconv6_1.", "refiner.refine_"))
           or (n.startswith("decoder.deconv1.") and n.count(".") == 2) for n in names):
        return "mmediting"
    if "backbone.conv6.bias" in names or "backbone.conv1_1.bias" in names:
        return "mmediting"
    return None


def _looks_like_vgg_imagenet(names):
    names = set(names)
    return ("features.0.weight" in names or "_conv_block_1._conv_1.weight" in names) \
        and not any(n.startswith(("decoder.", "backbone.decoder.")) for n in names)


def _first(names, count=3):
    names = list(names)
    more = f" and {len(names) - count} more" if len(names) > count else ""
    return ", ".join(names[:count]) + more


def convert_checkpoint(state, path, source=None):
    """Detect (or check) the layout of ``state`` and rename it to ppmatting names.

    Returns ``(renamed, unmapped, source)``. Raises a one-line :class:`InputError` for a file that is
    no DIM checkpoint.
    """
    detected = detect_layout(state)
    if source is None:
        if detected is None:
            if _looks_like_vgg_imagenet(state):
                raise InputError(f"{path}: VGG16 ImageNet weights, not a DIM checkpoint; give it "
                                 f"as the backbone's pretrained weights (model.backbone.pretrained)")
            raise InputError(f"{path}: not a DIM checkpoint (names like {_first(sorted(state))} "
                             f"match neither ppmatting's, mmediting's nor PaddleSeg's layout)")
        source = detected
    elif detected != source:
        if detected == "ppmatting":
            found = "already ppmatting's (nothing to convert)"
        elif detected is None:
            found = f"in no DIM layout (e.g. {_first(sorted(state), 2)})"
        else:
            found = f"in the {LAYOUT_TITLES[detected]} layout; use --from {detected}"
        raise InputError(f"{path}: expected a {LAYOUT_TITLES[source]} checkpoint, but its tensor "
                         f"names are {found}")
    renamed, unmapped = to_ppmatting_names(state, source)
    return renamed, unmapped, source


def check_variant(renamed, model_variant, path):
    """Raise a one-line error when a checkpoint belongs to the other DIM variant."""
    ckpt_variant = variant_of(renamed)
    if ckpt_variant is None or model_variant is None or ckpt_variant == model_variant:
        return
    configs = {"mmediting": "configs/dim/dim-vgg16.yml",
               "paddleseg": "configs/dim/dim-vgg16-paddleseg.yml"}
    titles = {"mmediting": "the paper's DIM (mmediting layout)", "paddleseg": "PaddleSeg's DIM"}
    raise InputError(f"{path}: weights for {titles[ckpt_variant]}, but the model is "
                     f"{titles[model_variant]}; use {configs[ckpt_variant]} for this checkpoint")

