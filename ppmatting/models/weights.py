"""Loading weights into DIM: ppmatting checkpoints, the published mmediting and PaddleSeg DIM
checkpoints, and VGG16 ImageNet weights for the encoder.

Security: ``.pdparams``, ``.pkl`` and ``.pth`` files are pickles, and unpickling can run code. Only
load files you trust. ppmatting reduces the risk where it can: Paddle and plain pickle files go
through an unpickler that accepts only NumPy arrays and plain containers, and PyTorch files are
read with ``torch.load(weights_only=True)``.

Layouts (REFERENCE.md sections 1 and 4):

* ``ppmatting``: this package's names (``backbone.conv3_2.weight``, ``decoder.deconv5_1.bias``, ...).
* ``mmediting``: ``backbone.encoder.layer{b}.{0,2,4}``, ``backbone.encoder.conv6``,
  ``backbone.decoder.deconv*``, ``refiner.refine_*``; optionally under ``state_dict`` and with
  ``module.`` prefixes (DataParallel).
* ``paddleseg``: ``backbone._conv_block_{b}._conv_{n}``, ``backbone._conv_6``,
  ``decoder.deconv{k}.conv._conv`` / ``._batch_norm``, ``decoder.alpha_conv``, ``refine.*``.

Every decision (a skipped tensor, a reshaped one, a dtype cast) is logged on the
``ppmatting.weights`` logger at INFO level.
"""
import io
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from ppmatting.models.backbones.vgg import vgg16_conv_names
from ppmatting.utils.errors import InputError

logger = logging.getLogger("ppmatting.weights")

TORCH_EXTENSIONS = (".pth", ".pt", ".bin", ".ckpt")
INSTALL_TORCH = "pip install torch (the CPU build is enough)"
PADDLE_METADATA_KEYS = ("StructuredToParameterName@@",)

# ---- reading files --------------------------------------------------------------------------------

# Globals a checkpoint pickle may name: NumPy's array/scalar reconstruction and plain containers.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
    ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def __init__(self, handle, path):
        super().__init__(handle)
        self._path = path

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise InputError(f"{self._path}: the pickle refers to '{module}.{name}', which a weights "
                         f"file should not need; ppmatting reads only NumPy arrays from pickles "
                         f"(a PyTorch file must end in {'/'.join(TORCH_EXTENSIONS)})")


def _read_pickle(path):
    try:
        with open(path, "rb") as handle:
            obj = _ArraysOnlyUnpickler(handle, path).load()
    except InputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from None
    if isinstance(obj, dict) and "UnpackBigParamInfor@@" in obj:
        # Very old Paddle files split big tensors into slices; paddle.load reassembles them. The
        # restricted unpickler above already proved the file holds only arrays.
        import paddle
        obj = paddle.load(path, return_numpy=True)
    return obj


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise InputError(f"{path}: reading a PyTorch checkpoint needs torch: {INSTALL_TORCH}; "
                         f"or convert it on a machine with torch using tools/convert_weights.py") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types; the message says which
        first_try = err
    # Training checkpoints keep NumPy scalars in their metadata; allow exactly those, still no code.
    try:
        safe = [np.dtype, np.ndarray] + [type(np.dtype(c)) for c in "fdilb?"]
        core = getattr(np, "_core", None) or np.core
        scalar = core.multiarray.scalar
        with torch.serialization.safe_globals(safe + [scalar]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        text = str(first_try).strip()
        message = text.splitlines()[0] if text else type(first_try).__name__
        raise InputError(f"{path}: cannot read as a PyTorch checkpoint with weights_only=True "
                         f"({message})") from None


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    if hasattr(value, "numpy") and hasattr(value, "place"):  # paddle.Tensor
        return value.numpy()
    return None


def _strip_module(name):
    while name.startswith("module."):
        name = name[len("module."):]
    return name


def read_state_dict(path):
    """Read a weights file into ``{name: numpy array}``.

    Accepts Paddle ``.pdparams``, plain pickles of arrays (``.pkl``), ``.npz`` and PyTorch
    ``.pth``/``.pt``; a state dict may sit under ``state_dict``; ``module.`` prefixes are removed.
    Non-tensor entries (metadata) are dropped and logged.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: weights file not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, expected a weights file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: file is empty")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                obj = {key: data[key] for key in data.files}
        except (ValueError, OSError, zipfile.BadZipFile) as err:
            raise InputError(f"{path}: not a readable .npz file ({err})") from None
    elif ext in TORCH_EXTENSIONS:
        obj = _read_torch(path)
    else:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic == b"PK\x03\x04":
            raise InputError(f"{path}: a zip archive (PyTorch's format?); name it .pth to read it "
                             f"with torch, or .npz for NumPy")
        obj = _read_pickle(path)

    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        dropped = sorted(k for k in obj if k != "state_dict")
        if dropped:
            logger.info("%s: using 'state_dict'; ignoring %s", path, ", ".join(map(str, dropped)))
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a state dict (names -> tensors), got "
                         f"{type(obj).__name__}")
    state = {}
    for name, value in obj.items():
        if name in PADDLE_METADATA_KEYS:
            continue
        array = _to_numpy(value)
        if array is None:
            logger.info("%s: skipping non-tensor entry '%s' (%s)", path, name, type(value).__name__)
            continue
        state[_strip_module(str(name))] = array
    if not state:
        raise InputError(f"{path}: holds no tensors")
    return state


def resolve_weights_path(path_or_url):
    """A local path as is; an http(s) URL is downloaded once to Paddle's weights cache."""
    path_or_url = os.fspath(path_or_url)
    if not re.match(r"^https?://", path_or_url):
        return path_or_url
    from paddle.utils.download import get_weights_path_from_url
    try:
        return get_weights_path_from_url(path_or_url)
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path_or_url}: download failed ({reason}); download the file yourself "
                         f"and give its local path") from None


# ---- name maps ----------------------------------------------------------------------------------

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


# ---- comparing a checkpoint with a network -------------------------------------------------------

@dataclass
class Comparison:
    """How a renamed checkpoint lines up with a network's state dict."""
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    def missing_except(self, allow_missing=()):
        return [n for n in self.missing if not n.startswith(tuple(allow_missing))]


def compare(renamed, target_shapes):
    """Compare ``{name: array}`` with ``{name: shape}`` of a network."""
    result = Comparison()
    for name, shape in target_shapes.items():
        if name not in renamed:
            result.missing.append(name)
        elif tuple(renamed[name].shape) != tuple(shape):
            result.mismatched.append((name, tuple(renamed[name].shape), tuple(shape)))
        else:
            result.matched.append(name)
    result.unexpected = [n for n in renamed if n not in target_shapes]
    return result


def _first(names, count=3):
    names = list(names)
    more = f" and {len(names) - count} more" if len(names) > count else ""
    return ", ".join(names[:count]) + more


def network_shapes(model):
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


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


def coverage_error(path, comparison, allow_missing=(), total=None):
    """The one-line message for shape mismatches or missing tensors, or None when it loads."""
    if comparison.mismatched:
        name, got, want = comparison.mismatched[0]
        more = f" (and {len(comparison.mismatched) - 1} more)" if len(comparison.mismatched) > 1 else ""
        return (f"{path}: shape mismatch for {name}: file {list(got)}, network {list(want)}{more}")
    missing = comparison.missing_except(allow_missing)
    if missing:
        total = total or (len(comparison.matched) + len(comparison.missing))
        hint = ""
        if all(n.startswith("refiner.") for n in missing):
            hint = ("; it has no refiner (a stage-1 checkpoint?): use a config without refiner "
                    "(configs/dim/dim-vgg16-stage1.yml) or allow_missing_refiner: true to start "
                    "stage 2 from it")
        return (f"{path}: does not cover the network: {len(missing)} of {total} tensors missing "
                f"({_first(missing)}){hint}")
    return None


@dataclass
class LoadReport:
    source: str
    loaded: List[str]
    skipped: List[str]
    missing: List[str]


def load_weights(model, path, allow_missing=()):
    """Load a DIM checkpoint (any supported layout, path or URL) into ``model``.

    Args:
        model: a :class:`~ppmatting.models.dim.DIM` (or any layer with ppmatting names).
        path: ``.pdparams`` / ``.pkl`` / ``.npz`` / ``.pth`` file or http(s) URL. Runs pickle:
            only load trusted files.
        allow_missing: name prefixes that may be absent (e.g. ``("refiner.",)`` to start stage 2
            from a stage-1 checkpoint); those tensors keep their initialisation.

    Every network tensor must be present with the right shape (one-line :class:`InputError`
    otherwise); tensors the network does not have are skipped and logged. Returns a
    :class:`LoadReport`.
    """
    local = resolve_weights_path(path)
    state = read_state_dict(local)
    renamed, unmapped, source = convert_checkpoint(state, path)
    model_variant = getattr(model, "variant", None) or variant_of(model.state_dict())
    check_variant(renamed, model_variant, path)
    targets = model.state_dict()
    comparison = compare(renamed, {n: tuple(v.shape) for n, v in targets.items()})
    error = coverage_error(path, comparison, allow_missing)
    if error:
        raise InputError(error)
    for name in unmapped + comparison.unexpected:
        logger.info("%s: skipping '%s' (the network has no such tensor)", path, name)
    for name in comparison.missing:
        logger.info("%s: '%s' not in the file; it keeps its initialisation", path, name)
    arrays = {}
    for name in comparison.matched:
        array = renamed[name]
        want = _paddle_dtype(targets[name])
        if array.dtype != want:
            logger.info("%s: casting '%s' from %s to %s", path, name, array.dtype, want)
            array = array.astype(want)
        arrays[name] = np.ascontiguousarray(array)
    for name, array in arrays.items():
        targets[name].set_value(array)  # state_dict() holds the layer's own tensors: in place
    logger.info("%s: loaded %d tensors (%s layout)", path, len(arrays), source)
    return LoadReport(source=source, loaded=list(arrays), skipped=unmapped + comparison.unexpected,
                      missing=comparison.missing)


def _paddle_dtype(tensor):
    """NumPy dtype of a Paddle tensor without copying it to host memory."""
    name = str(tensor.dtype).replace("paddle.", "")
    return np.dtype({"bool": "bool"}.get(name, name))


# ---- VGG16 ImageNet initialisation ---------------------------------------------------------------

# paddle.vision.models.vgg16 and torchvision's vgg16 both name the 13 convs features.{i}.
VISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
FC6_INPUTS = 512 * 7 * 7


def _vgg_source_names(state):
    """-> (layout, {ppmatting conv name: source prefix}, fc6 prefix)."""
    ours = [name for names in vgg16_conv_names() for name in names]
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
    outputs and the central 3x3 taps [2:5, 2:5] (REFERENCE.md section 4). For the paper's 1x1
    conv6 ppmatting keeps the centre tap [3, 3] of the same crop.
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
        layout, prefixes, fc6 = _vgg_source_names(state)
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


def save_state_dict(state, path):
    """Atomically write ``{name: numpy array}`` as a Paddle ``.pdparams`` file."""
    import paddle
    from ppmatting.utils.io import atomic_write_bytes
    buffer = io.BytesIO()
    paddle.save({name: np.ascontiguousarray(value) for name, value in state.items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
