"""PyTorch checkpoints (``.pth``) read with NumPy alone: no torch import, no code from the file.

Two container formats, both described by ``torch/serialization.py`` (PyTorch 2.13, read for this):

* zip (``torch.save`` since PyTorch 1.6): ``<archive>/data.pkl`` is a pickle of the object in which
  every storage is a persistent id ``('storage', <torch.XStorage>, key, location, numel)``, and
  ``<archive>/data/<key>`` holds that storage's raw bytes; ``<archive>/byteorder`` says 'little'
  or 'big' (absent: little). Tensors are rebuilt by
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])``
  (element offset and strides into the storage); ``_rebuild_tensor_v3`` adds a dtype for
  uint16/32/64; ``_rebuild_parameter`` wraps a tensor as an ``nn.Parameter``.
* legacy (before 1.6): five pickles in a row (magic number 0x1950a86a20f9469cfc6c, protocol
  version 1001, system info, the object, the sorted list of storage keys), then for each key an
  8-byte little-endian element count and the storage's bytes. Persistent ids have a sixth item,
  an optional view ``(view key, element offset, element count)`` into the root storage.

The pickles go through :mod:`ppmatting.weights.safe_pickle` with exactly the rebuild functions and
storage types added, implemented here with NumPy. bfloat16 becomes float32 (exact: bf16 is the top
half of an fp32); other dtypes keep their NumPy equivalent; quantised, float8 and sparse tensors are
refused. Every size is checked before memory is allocated: a storage must be exactly as large as
its element count says, a tensor must lie inside its storage, and the arrays made may total at most
``MAX_EXPANSION`` times the file size (plus ``EXPANSION_SLACK``).
"""
import io
import os
import zipfile
import zlib

import numpy as np

from ppmatting.weights import safe_pickle
from ppmatting.weights.safe_pickle import Global, Pending, Refused, Unsupported  # noqa: F401

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_EXPANSION = 4          # arrays made (storages + tensor copies) per byte of file
EXPANSION_SLACK = 64 << 20

# torch.XStorage -> NumPy dtype of one element (little-endian); None: bfloat16 (read as uint16)
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": None,
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexFloatStorage": "<c8",
    "ComplexDoubleStorage": "<c16", "UntypedStorage": "u1",
}
# _rebuild_tensor_v3's dtype argument (torch.<name>) for the dtypes that have no XStorage class
V3_DTYPES = {"uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "uint8": "u1", "int8": "i1",
             "int16": "<i2", "int32": "<i4", "int64": "<i8", "float16": "<f2", "float32": "<f4",
             "float64": "<f8", "bfloat16": None, "bool": "?"}


def _element(dtype_code):
    """(NumPy dtype the bytes are read as, True when it is bfloat16 to widen to float32)."""
    return (np.dtype("<u2"), True) if dtype_code is None else (np.dtype(dtype_code), False)


class Storage(Pending):
    """One storage: its key, element type and count; ``data`` (a 1-D array) once read. Only
    tensors may use it: a storage left in the result is refused."""
    what = "storage"

    def __init__(self, key, dtype_code, numel):
        self.key, self.numel = key, numel
        self.dtype, self.bf16 = _element(dtype_code)
        self.data = None
        self.base, self.base_offset = None, 0   # legacy views: a range of another storage
        self.users = 0                          # tensors built on it

    @property
    def nbytes(self):
        return self.numel * self.dtype.itemsize

    def finish(self):
        raise Refused(f"a bare storage ('{self.key}') outside any tensor")

    def elements(self):
        if self.base is not None:
            root = self.base.elements()
            return root[self.base_offset:self.base_offset + self.numel]
        if self.data is None:
            raise Refused(f"storage '{self.key}' has no data in the file")
        return self.data


class _Budget:
    def __init__(self, file_size):
        self.left = MAX_EXPANSION * int(file_size) + EXPANSION_SLACK

    def take(self, nbytes, what):
        if nbytes > self.left:
            raise Refused(f"{what} needs {nbytes:,} bytes, more than the file's size allows "
                          f"(at most {MAX_EXPANSION}x the file)")
        self.left -= nbytes


class PendingTensor(Pending):
    """A tensor declared by a rebuild call; made into an array when its storage has been read."""
    what = "tensor"

    def __init__(self, storage, offset, size, stride, budget, view_dtype=None):
        if not isinstance(storage, Storage):
            raise Refused(f"a tensor rebuilt from {type(storage).__name__}, not a storage")
        for name, value in (("size", size), ("stride", stride)):
            if type(value) is not tuple or len(value) > 32 or \
                    not all(type(n) is int and n >= 0 for n in value):
                raise Refused(f"tensor {name} {safe_pickle._short(value)} is not a tuple of "
                              f"non-negative ints")
        if len(size) != len(stride) or type(offset) is not int or offset < 0:
            raise Refused(f"tensor with size {size}, stride {stride}, offset "
                          f"{safe_pickle._short(offset)}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.view_dtype = view_dtype      # v3: untyped storage read as this dtype
        storage.users += 1
        count = 1
        for n in size:
            count *= n
        itemsize = (view_dtype[0] if view_dtype else storage.dtype).itemsize
        budget.take(count * itemsize, f"tensor of size {list(size)}")
        self.count = count

    def finish(self):
        elements = self.storage.elements()
        bf16 = self.storage.bf16
        if self.view_dtype is not None:
            dtype, bf16 = self.view_dtype
            if len(elements) % dtype.itemsize:
                raise Refused(f"storage '{self.storage.key}' is not a whole number of {dtype} items")
            elements = elements.view(dtype)
        if self.count == 0:
            array = np.zeros(self.size, elements.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if last >= len(elements):
                raise Refused(f"tensor of size {list(self.size)}, stride {list(self.stride)}, "
                              f"offset {self.offset} reaches element {last} of storage "
                              f"'{self.storage.key}', which has {len(elements)}")
            itemsize = elements.dtype.itemsize
            if self._whole_storage(len(elements)):
                # the usual case: one tensor, its own storage, C order; the buffer read from the
                # file becomes the array's memory
                array = elements.reshape(self.size)
            else:
                view = np.lib.stride_tricks.as_strided(
                    elements[self.offset:], shape=self.size,
                    strides=tuple(s * itemsize for s in self.stride), writeable=False)
                array = np.array(view, order="C")   # a copy: tensors never share memory
        if bf16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(array.dtype.newbyteorder("="), copy=False)

    def _whole_storage(self, numel):
        if self.storage.users != 1 or self.storage.base is not None or self.offset != 0 or \
                self.count != numel or not self.storage.data.flags.writeable:
            return False
        expected = 1
        for n, s in zip(reversed(self.size), reversed(self.stride)):
            if n > 1 and s != expected:
                return False
            expected *= n
        return True


def _rebuild_globals(budget):
    """The torch globals a checkpoint pickle may name, implemented with NumPy."""

    def rebuild_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        _check_hooks(hooks)
        return PendingTensor(storage, offset, tuple(size), tuple(stride), budget)

    def rebuild_v1(storage, offset, size, stride):
        return PendingTensor(storage, offset, tuple(size), tuple(stride), budget)

    def rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
        _check_hooks(hooks)
        if not (isinstance(dtype, Global) and dtype.module == "torch" and dtype.name in V3_DTYPES):
            raise Unsupported(f"tensor dtype {safe_pickle._short(dtype)}")
        return PendingTensor(storage, offset, tuple(size), tuple(stride), budget,
                             view_dtype=_element(V3_DTYPES[dtype.name]))

    def rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
        _check_hooks(hooks)
        if not isinstance(data, PendingTensor):
            raise Refused("_rebuild_parameter of something that is not a tensor")
        return data

    table = {("torch._utils", "_rebuild_tensor_v2"): rebuild_v2,
             ("torch._utils", "_rebuild_tensor"): rebuild_v1,
             ("torch._utils", "_rebuild_tensor_v3"): rebuild_v3,
             ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
             ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter}
    tokens = {key: Global(*key, call=call) for key, call in table.items()}
    # Storage classes and dtypes appear only inside persistent ids and v3 calls: tokens, not callable.
    tokens.update({("torch", name): Global("torch", name) for name in STORAGE_DTYPES})
    tokens.update({("torch", name): Global("torch", name) for name in V3_DTYPES})
    return tokens


def _check_hooks(hooks):
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise Refused("a tensor with backward hooks")


class _StorageTable:
    """Persistent ids -> :class:`Storage` objects (one per key)."""

    def __init__(self, legacy):
        self.legacy = legacy
        self.storages = {}

    def __call__(self, pid):
        if type(pid) is not tuple or not pid or pid[0] != "storage":
            raise Refused(f"persistent id {safe_pickle._short(pid)} is not a storage")
        expected = 6 if self.legacy else 5
        if len(pid) != expected:
            raise Refused(f"storage id with {len(pid)} items, expected {expected}")
        storage_type, key, location, numel = pid[1:5]
        if not (isinstance(storage_type, Global) and storage_type.module == "torch"):
            raise Refused(f"storage type {safe_pickle._short(storage_type)}")
        if storage_type.name not in STORAGE_DTYPES:
            raise Unsupported(f"storage type torch.{storage_type.name}")
        if not isinstance(key, str) or not key or "/" in key or key.startswith(".") or \
                not isinstance(location, str) or type(numel) is not int or numel < 0:
            raise Refused(f"malformed storage id {safe_pickle._short(pid)}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = Storage(key, STORAGE_DTYPES[storage_type.name], numel)
        elif storage.numel != numel and not self.legacy:
            raise Refused(f"storage '{key}' declared with {storage.numel} and {numel} elements")
        if self.legacy and pid[5] is not None:
            return self._view(storage, pid[5])
        return storage

    def _view(self, root, view):
        if type(view) is not tuple or len(view) != 3:
            raise Refused(f"malformed storage view {safe_pickle._short(view)}")
        view_key, offset, count = view
        if not isinstance(view_key, str) or type(offset) is not int or type(count) is not int or \
                offset < 0 or count < 0 or offset + count > root.numel:
            raise Refused(f"storage view {safe_pickle._short(view)} outside storage '{root.key}'")
        storage = self.storages.get(view_key)
        if storage is None:
            storage = Storage(view_key, None, count)
            storage.dtype, storage.bf16 = root.dtype, root.bf16
            storage.base, storage.base_offset = root, offset
            self.storages[view_key] = storage
        return storage


def _unpickle(handle, size, table, budget):
    unpickler = safe_pickle.SafeUnpickler(handle, size, extra_globals=_rebuild_globals(budget),
                                          persistent_load=table, unsupported_modules={"torch"})
    return unpickler.load()


# ---- zip ------------------------------------------------------------------------------------------
def _zip_prefix(names):
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise Unsupported("a TorchScript archive (torch.jit.save), not a checkpoint")
        raise Refused("not a PyTorch checkpoint archive (expected one '<name>/data.pkl', found "
                      f"{len(pickles)})")
    return pickles[0][:-len("data.pkl")]


def _read_member(archive, info, budget, expected=None):
    if expected is not None and info.file_size != expected:
        raise Refused(f"{info.filename} holds {info.file_size} bytes, the pickle declares {expected}")
    budget.take(info.file_size, info.filename)
    data = bytearray(info.file_size)   # writable: arrays may use it as their memory
    try:
        with archive.open(info) as member:
            if member.readinto(data) != info.file_size or member.read(1):
                raise Refused(f"{info.filename}: size differs from the archive's directory")
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError,
            zlib.error) as err:  # CRC mismatch, encryption, unknown compression, damage
        raise Refused(f"{info.filename}: cannot be read from the archive "
                      f"({safe_pickle.one_line(err)})") from None
    return data


def read_zip(path):
    """The object stored in a zip-format ``.pth``, with tensors as NumPy arrays."""
    file_size = os.path.getsize(path)
    budget = _Budget(file_size)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise Refused(f"not a readable zip archive ({err})") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        prefix = _zip_prefix(list(infos))
        byteorder = "little"
        if prefix + "byteorder" in infos:
            byteorder = _read_member(archive, infos[prefix + "byteorder"], budget).decode(
                "ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise Refused(f"unknown byte order '{byteorder[:20]}'")
        data_pkl = _read_member(archive, infos[prefix + "data.pkl"], budget)
        table = _StorageTable(legacy=False)
        value = _unpickle(io.BytesIO(data_pkl), len(data_pkl), table, budget)
        for key, storage in table.storages.items():
            name = f"{prefix}data/{key}"
            if name not in infos:
                raise Refused(f"storage '{key}' is missing from the archive")
            raw = _read_member(archive, infos[name], budget, expected=storage.nbytes)
            dtype = storage.dtype.newbyteorder(">" if byteorder == "big" else "<")
            storage.data = np.frombuffer(raw, dtype=dtype)
    return safe_pickle.finish(value)


# ---- legacy ---------------------------------------------------------------------------------------
def read_legacy(handle, file_size):
    """The object stored in a legacy ``.pth`` (``handle`` positioned after the magic number's
    pickle, ``file_size`` the whole file's size)."""
    budget = _Budget(file_size)

    def left():
        return file_size - handle.tell()

    protocol = safe_pickle.load(handle, left())
    if protocol != LEGACY_PROTOCOL:
        raise Unsupported(f"legacy PyTorch format version {safe_pickle._short(protocol)} "
                          f"(expected {LEGACY_PROTOCOL})")
    sys_info = safe_pickle.load(handle, left())
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise Unsupported("a legacy checkpoint written on a big-endian machine")
    table = _StorageTable(legacy=True)
    value = _unpickle(handle, left(), table, budget)
    keys = safe_pickle.load(handle, left())
    if type(keys) is not list or not all(isinstance(k, str) for k in keys):
        raise Refused("the storage key list is malformed")
    roots = {k: s for k, s in table.storages.items() if s.base is None}
    if set(keys) != set(roots):
        raise Refused(f"the file stores storages {sorted(keys)[:5]} but the pickle uses "
                      f"{sorted(roots)[:5]}")
    for key in keys:
        storage = roots[key]
        numel = int.from_bytes(_read_exact(handle, 8, left()), "little", signed=True)
        if numel != storage.numel:
            raise Refused(f"storage '{key}' holds {numel} elements, the pickle declares "
                          f"{storage.numel}")
        budget.take(storage.nbytes, f"storage '{key}'")
        raw = _read_exact(handle, storage.nbytes, left())
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return safe_pickle.finish(value)


def _read_exact(handle, n, available):
    if n > available:
        raise Refused(f"a storage declares {n} bytes but only {available} remain in the file")
    data = bytearray(n)
    if handle.readinto(data) != n:
        raise Refused("the file ends early")
    return data
