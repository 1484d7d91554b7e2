"""Reading and writing weights files: ``{name: numpy array}`` in, out.

The format is recognised from the content, not the extension:

* a zip holding ``<name>/data.pkl``: PyTorch's checkpoint format (``torch.save`` since 1.6);
* a pickle whose first object is PyTorch's magic number: PyTorch's legacy format (before 1.6),
  which is how the published mmediting DIM checkpoints of 2020 may be stored;
* a zip of ``.npy`` files: NumPy ``.npz`` (read with ``allow_pickle=False``);
* anything else: a pickle (Paddle ``.pdparams``/``.pdopt``, plain ``.pkl``).

Security: every pickle, including the one inside a ``.pth``, is read by
:mod:`ppmatting.weights.safe_pickle`, which interprets the pickle opcodes itself and builds only
numeric arrays and plain containers; nothing named in a file is imported or called, and declared
sizes are checked against the file's size before memory is allocated. PyTorch is not needed. When
torch (2.6 or newer) is installed and a ``.pth`` uses a PyTorch feature this reader does not
implement (quantised or float8 tensors, TorchScript archives), the file is handed to
``torch.load(weights_only=True)``, PyTorch's own restricted loader.
"""
import io
import logging
import os
import zipfile

import numpy as np

from ppmatting.utils.errors import InputError
from ppmatting.weights import safe_pickle, torch_files
from ppmatting.weights.safe_pickle import Refused

logger = logging.getLogger("ppmatting.weights")

PADDLE_METADATA_KEYS = ("StructuredToParameterName@@",)
PADDLE_SPLIT_KEY = "UnpackBigParamInfor@@"   # sic: Paddle's key for tensors saved in slices
ZIP_MAGIC = b"PK\x03\x04"
MAX_ZIP_DIRECTORY = 16 << 20  # a DIM .pth's zip directory takes about 5 KB
TORCH_FALLBACK_MIN = (2, 6)  # weights_only=True could run code before 2.6 (CVE-2025-32434)


def _refused(path, reason):
    return InputError(f"{path}: refused: {reason} (ppmatting reads only numeric arrays and plain "
                      f"containers from weights files; nothing in the file was run)")


def check_weights_file(path):
    """``path`` as a string when it names a non-empty file, else a one-line :class:`InputError`
    (a checkpoint folder is named as such, with the file inside to give)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: weights file not found")
    if os.path.isdir(path):
        inside = os.path.join(path, "model.pdparams")
        hint = f" (a checkpoint folder: give {inside})" if os.path.isfile(inside) else ""
        raise InputError(f"{path}: is a folder, expected a weights file{hint}")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: file is empty")
    return path


def read_pickle_file(path, extra_globals=None):
    """The object in a pickle file, read without running anything (see :mod:`safe_pickle`).

    ``extra_globals`` adds exact ``(module, name)`` entries for this read (e.g. the checkpoint
    reader's RNG state). Raises a one-line :class:`InputError` naming the file and the reason.
    """
    path = check_weights_file(path)
    try:
        with open(path, "rb") as handle:
            return safe_pickle.load(handle, os.path.getsize(path), extra_globals)
    except Refused as err:
        raise _refused(path, err) from None


def _read_torch(path, reader):
    try:
        return reader()
    except torch_files.Unsupported as err:
        fallback = _torch_fallback(path)
        if fallback is None:
            raise InputError(f"{path}: {err}: not supported without PyTorch; with torch >= 2.6 "
                             f"installed it is read by torch.load(weights_only=True)") from None
        return fallback
    except Refused as err:
        raise _refused(path, err) from None


def _torch_fallback(path):
    """``torch.load(weights_only=True)`` when torch >= 2.6 is installed, else None."""
    try:
        import torch
    except ImportError:
        return None
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit())
    if version < TORCH_FALLBACK_MIN:
        return None
    logger.warning("%s: uses a PyTorch feature ppmatting's reader does not implement; reading it "
                   "with torch.load(weights_only=True)", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types; the message says which
        text = str(err).strip()
        raise InputError(f"{path}: torch.load(weights_only=True) refused it too "
                         f"({text.splitlines()[0] if text else type(err).__name__})") from None


def _zip_directory_bytes(path):
    """Size of a zip's central directory from its end record (zip64 too), before ``zipfile``
    turns every entry into an object (about ten times the bytes each entry takes on disk)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(max(0, size - (1 << 16) - 22))
        tail = handle.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            raise InputError(f"{path}: not a readable zip archive (no end record)")
        directory = int.from_bytes(tail[at + 12:at + 16], "little")
        if directory == 0xFFFFFFFF and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
            handle.seek(int.from_bytes(tail[at - 12:at - 4], "little"))
            record = handle.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                directory = int.from_bytes(record[40:48], "little")
    return directory


def _read_npz(path):
    """``.npz`` without pickles; every member's declared shape is checked against the file's size
    before NumPy allocates it."""
    budget = torch_files.MAX_EXPANSION * os.path.getsize(path) + torch_files.EXPANSION_SLACK
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = header(member)
                budget -= int(np.prod(shape, dtype=object)) * dtype.itemsize
                if budget < 0:
                    raise InputError(f"{path}: {info.filename} declares {list(shape)} {dtype}, "
                                     f"more than the file's size allows")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a readable .npz file ({err})") from None


def read_weights_object(path):
    """The whole object in a weights file (any format above), tensors as NumPy arrays."""
    path = check_weights_file(path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == ZIP_MAGIC:
        if _zip_directory_bytes(path) > MAX_ZIP_DIRECTORY:
            raise InputError(f"{path}: the zip directory takes {_zip_directory_bytes(path):,} "
                             f"bytes (at most {MAX_ZIP_DIRECTORY:,}): far more entries than a "
                             f"checkpoint has")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise InputError(f"{path}: not a readable zip archive ({err})") from None
        if names and all(name.endswith(".npy") for name in names):
            return _read_npz(path)
        return _read_torch(path, lambda: torch_files.read_zip(path))
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        try:
            first = safe_pickle.load(handle, size)
        except Refused as err:
            if _looks_like_tar(path):
                return _read_torch(path, _tar_unsupported)
            raise _refused(path, err) from None
        if type(first) is int and first == torch_files.LEGACY_MAGIC:
            return _read_torch(path, lambda: torch_files.read_legacy(handle, size))
        if handle.tell() != size:
            raise InputError(f"{path}: {size - handle.tell()} bytes after the end of the pickle "
                             f"(not a weights file, or a corrupt one)")
    return first


def _looks_like_tar(path):
    with open(path, "rb") as handle:
        handle.seek(257)
        return handle.read(5) == b"ustar"


def _tar_unsupported():
    raise torch_files.Unsupported("a tar-format checkpoint (PyTorch before 0.4)")


def _join_split_tensors(obj, path):
    """Paddle saves tensors over 1 GiB as slices ``name@@.0, name@@.1, ...`` plus an index."""
    info = obj.pop(PADDLE_SPLIT_KEY)
    if not isinstance(info, dict):
        raise InputError(f"{path}: malformed {PADDLE_SPLIT_KEY}")
    for name, entry in info.items():
        try:
            parts = [obj.pop(part) for part in entry["slices"]]
            shape = tuple(int(n) for n in entry["OriginShape"])
            flat = np.concatenate([np.asarray(p).ravel() for p in parts])
            obj[name] = flat.reshape(shape)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path}: cannot join the slices of '{name}' ({err})") from None
    return obj


def read_paddle_file(path):
    """What ``paddle.load(path)`` returns for a ``.pdparams``/``.pdopt`` written by
    ``paddle.save``, read without running anything: the pickle through :func:`read_pickle_file`,
    then paddle.load's own post-processing (``paddle/framework/io.py``, Paddle 3.3): slices of big
    tensors joined; with a ``StructuredToParameterName@@`` table (a saved state dict) the listed
    arrays become tensors named as in the table and the table is dropped; otherwise every
    ``(name, array)`` pair, or, when there is none, every array becomes a ``paddle.Tensor``.
    """
    import paddle
    obj = read_pickle_file(path)
    if isinstance(obj, dict) and PADDLE_SPLIT_KEY in obj:
        obj = _join_split_tensors(obj, path)
    table_key = PADDLE_METADATA_KEYS[0]
    if isinstance(obj, dict) and isinstance(obj.get(table_key), dict):
        for key, name in obj.pop(table_key).items():
            if isinstance(obj.get(key), np.ndarray):
                obj[key] = _named_tensor(name, obj[key])
        return obj
    if _contains(obj, _is_named_array):
        return _convert(obj, _is_named_array, lambda pair: _named_tensor(*pair))
    return _convert(obj, lambda v: isinstance(v, np.ndarray), paddle.to_tensor)


def _named_tensor(name, array):
    import paddle
    tensor = paddle.to_tensor(array)
    if isinstance(name, str) and name:
        tensor.name = name
    return tensor


def _is_named_array(value):
    return type(value) is tuple and len(value) == 2 and isinstance(value[0], str) \
        and isinstance(value[1], np.ndarray)


def _contains(obj, test):
    if test(obj):
        return True
    if isinstance(obj, dict):
        return any(_contains(v, test) for v in obj.values())
    if type(obj) in (list, tuple):
        return any(_contains(v, test) for v in obj)
    return False


def _convert(obj, test, make):
    # Depth is bounded: safe_pickle refuses nesting deeper than MAX_DEPTH.
    if test(obj):
        return make(obj)
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _convert(obj[key], test, make)
    elif type(obj) is list:
        obj[:] = [_convert(v, test, make) for v in obj]
    elif type(obj) is tuple:
        obj = tuple(_convert(v, test, make) for v in obj)
    return obj


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if _is_named_array(value):
        return value[1]  # Paddle's pickled tensor: (tensor name, array)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor (torch fallback)
        value = value.detach().cpu()
        try:
            return value.numpy()
        except TypeError:  # bfloat16, float8: no NumPy dtype
            return value.float().numpy()
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
    ``.pth``/``.pt`` (zip or legacy format, read without torch); a state dict may sit under
    ``state_dict``; ``module.`` prefixes are removed. Non-tensor entries (metadata) are dropped
    and logged. bfloat16 tensors become float32.
    """
    path = check_weights_file(path)
    obj = read_weights_object(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        dropped = sorted(str(k) for k in obj if k != "state_dict")
        if dropped:
            logger.info("%s: using 'state_dict'; ignoring %s", path, ", ".join(dropped))
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a state dict (names -> tensors), got "
                         f"{type(obj).__name__}")
    if PADDLE_SPLIT_KEY in obj:
        obj = _join_split_tensors(dict(obj), path)
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
