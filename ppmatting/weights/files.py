"""Reading and writing weights files: ``{name: numpy array}`` in, out.

Security: ``.pdparams``, ``.pkl`` and ``.pth`` files are pickles, and unpickling can run code.
Paddle and plain pickle files go through an unpickler that accepts only NumPy arrays and plain
containers; PyTorch files are read with ``torch.load(weights_only=True)``.
"""
import io
import logging
import os
import pickle
import zipfile

import numpy as np

from ppmatting.utils.errors import InputError

logger = logging.getLogger("ppmatting.weights")

TORCH_EXTENSIONS = (".pth", ".pt", ".bin", ".ckpt")
INSTALL_TORCH = "pip install torch (the CPU build is enough)"
PADDLE_METADATA_KEYS = ("StructuredToParameterName@@",)


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



def save_state_dict(state, path):
    """Atomically write ``{name: numpy array}`` as a Paddle ``.pdparams`` file."""
    import paddle
    from ppmatting.utils.io import atomic_write_bytes
    buffer = io.BytesIO()
    paddle.save({name: np.ascontiguousarray(value) for name, value in state.items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
