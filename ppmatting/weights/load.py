"""``load_weights``: a DIM checkpoint of any supported layout (path or URL) into a network.

Every decision (a skipped tensor, a reshaped one, a dtype cast) is logged on the
``ppmatting.weights`` logger at INFO level.
"""
import logging
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from ppmatting.utils.errors import InputError
from ppmatting.weights.download import resolve_weights_path
from ppmatting.weights.files import read_state_dict
from ppmatting.weights.layouts import _first, check_variant, convert_checkpoint, variant_of

logger = logging.getLogger("ppmatting.weights")


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


def network_shapes(model):
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


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
        path: ``.pdparams`` / ``.pkl`` / ``.npz`` / ``.pth`` file or http(s) URL. Pickles are read
            by :mod:`ppmatting.weights.safe_pickle` (data only, nothing from the file runs); URLs
            are downloaded by :mod:`ppmatting.weights.download` (size cap, known checksums).
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

