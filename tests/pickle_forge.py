"""Test helper: write pickles opcode by opcode, and PyTorch checkpoints without PyTorch.

Written from the pickle opcode table (``pickletools``) and PyTorch's save format
(``torch/serialization.py``), for the tests that need files no library would write on purpose:
hostile pickles, and ``.pth`` files on a machine without torch. ``tools/dev/make_pth_fixtures.py``
checks once, in an environment with torch, that ``torch.load`` reads what :func:`write_pth` writes
with exactly the values meant.
"""
import io
import struct
import zipfile
from collections import OrderedDict

import numpy as np


class Forge:
    """Append pickle opcodes to a buffer. ``value()`` serialises plain data the way pickle's
    protocol 2 does; everything else is spelt out opcode by opcode by the caller."""

    def __init__(self, protocol=2, legacy=False):
        self.out = bytearray()
        self.storage_keys = {}   # id(TorchStorage) -> (key, storage), filled by TorchTensor
        self.legacy = legacy     # TorchTensor writes legacy persistent ids (with a view item)
        if protocol >= 2:
            self.out += bytes([0x80, protocol])

    def raw(self, data):
        self.out += data
        return self

    def mark(self):
        return self.raw(b"(")

    def glob(self, module, name):                 # GLOBAL 'c'
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def stack_global(self, module, name):         # STACK_GLOBAL (protocol 4)
        return self.text(module).text(name).raw(b"\x93")

    def text(self, value):                        # BINUNICODE 'X'
        data = value.encode("utf-8")
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def binbytes(self, value):                    # BINBYTES 'B' (protocol 3)
        return self.raw(b"B" + struct.pack("<I", len(value)) + bytes(value))

    def int(self, value):
        if 0 <= value < 256:
            return self.raw(b"K" + bytes([value]))
        if -2 ** 31 <= value < 2 ** 31:
            return self.raw(b"J" + struct.pack("<i", value))
        data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return self.raw(b"\x8a" + bytes([len(data)]) + data)

    def tuple_of(self, items):
        self.mark()
        for item in items:
            self.value(item)
        return self.raw(b"t")

    def reduce(self, module, name, args):
        """``module.name(*args)`` via GLOBAL + tuple + REDUCE."""
        self.glob(module, name)
        self.tuple_of(args)
        return self.raw(b"R")

    def value(self, obj):
        if isinstance(obj, Emit):
            obj.emit(self)
        elif obj is None:
            self.raw(b"N")
        elif obj is True or obj is False:
            self.raw(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            self.int(obj)
        elif isinstance(obj, float):
            self.raw(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, str):
            self.text(obj)
        elif isinstance(obj, bytes):
            self.binbytes(obj)
        elif isinstance(obj, tuple):
            self.tuple_of(obj)
        elif isinstance(obj, list):
            self.raw(b"]").mark()
            for item in obj:
                self.value(item)
            self.raw(b"e")
        elif isinstance(obj, OrderedDict):
            self.glob("collections", "OrderedDict").raw(b")R")
            self._items(obj)
        elif isinstance(obj, dict):
            self.raw(b"}")
            self._items(obj)
        else:
            raise TypeError(f"Forge cannot write {type(obj).__name__}")
        return self

    def _items(self, mapping):
        self.mark()
        for key, item in mapping.items():
            self.value(key)
            self.value(item)
        self.raw(b"u")

    def stop(self):
        return bytes(self.raw(b".").out)


class Emit:
    """A value that writes its own opcodes (a hostile payload, a torch tensor)."""

    def emit(self, forge):
        raise NotImplementedError


class Call(Emit):
    """``module.name(*args)``: GLOBAL or STACK_GLOBAL, then REDUCE."""

    def __init__(self, module, name, *args, stack_global=False):
        self.module, self.name, self.args, self.stack_global = module, name, args, stack_global

    def emit(self, forge):
        if self.stack_global:
            forge.stack_global(self.module, self.name)
        else:
            forge.glob(self.module, self.name)
        forge.tuple_of(self.args).raw(b"R")


# ---- PyTorch checkpoints -------------------------------------------------------------------------
TORCH_STORAGE = {np.dtype("<f4"): "FloatStorage", np.dtype("<f8"): "DoubleStorage",
                 np.dtype("<f2"): "HalfStorage", np.dtype("<i8"): "LongStorage",
                 np.dtype("<i4"): "IntStorage", np.dtype("<i2"): "ShortStorage",
                 np.dtype("i1"): "CharStorage", np.dtype("u1"): "ByteStorage",
                 np.dtype("?"): "BoolStorage"}


class TorchStorage:
    """A storage: a 1-D array of elements. ``bf16=True`` stores float32 values as bfloat16 (the top
    16 bits, i.e. truncated: the test values are chosen exactly representable)."""

    def __init__(self, elements, bf16=False):
        elements = np.array(elements, order="C").ravel()
        self.bf16 = bf16
        if bf16:
            bits = elements.astype("<f4").view("<u4")
            self.data = (bits >> 16).astype("<u2").tobytes()
            self.type_name = "BFloat16Storage"
            self.itemsize = 2
        else:
            dtype = elements.dtype.newbyteorder("<") if elements.dtype.itemsize > 1 else elements.dtype
            self.data = elements.astype(dtype).tobytes()
            self.type_name = TORCH_STORAGE[dtype]
            self.itemsize = dtype.itemsize
        self.numel = len(elements)


class TorchTensor(Emit):
    """``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""

    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset = storage, offset
        self.size, self.stride, self.parameter = tuple(size), tuple(stride), parameter

    @classmethod
    def of(cls, array, bf16=False, parameter=False):
        array = np.array(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        strides = tuple(s // array.itemsize for s in array.strides)
        return cls(TorchStorage(array, bf16), 0, array.shape, strides, parameter)

    def emit(self, forge):
        if self.parameter:
            forge.glob("torch._utils", "_rebuild_parameter").mark()
        forge.glob("torch._utils", "_rebuild_tensor_v2").mark()
        key = forge.storage_keys.setdefault(id(self.storage), (str(len(forge.storage_keys)),
                                                               self.storage))[0]
        forge.mark().text("storage").glob("torch", self.storage.type_name).text(key).text("cpu")
        forge.int(self.storage.numel)
        if forge.legacy:
            forge.raw(b"N")             # no view
        forge.raw(b"t").raw(b"Q")       # TUPLE, BINPERSID
        forge.int(self.offset).tuple_of(self.size).tuple_of(self.stride).raw(b"\x89")
        forge.glob("collections", "OrderedDict").raw(b")R")
        forge.raw(b"tR")
        if self.parameter:
            forge.raw(b"\x89").glob("collections", "OrderedDict").raw(b")R").raw(b"tR")


def write_pth(path, obj, archive="archive"):
    """Write ``obj`` (plain data with :class:`TorchTensor` values; NumPy arrays become tensors)
    as a zip-format ``.pth`` the way ``torch.save`` lays it out."""
    forge = Forge(protocol=2)
    data_pkl = forge.value(_tensors(obj)).stop()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive_file:
        archive_file.writestr(f"{archive}/data.pkl", data_pkl)
        archive_file.writestr(f"{archive}/byteorder", "little")
        for key, storage in forge.storage_keys.values():
            archive_file.writestr(f"{archive}/data/{key}", storage.data)
        archive_file.writestr(f"{archive}/version", "3\n")
    return path


def write_pth_legacy(path, obj):
    """Write ``obj`` in PyTorch's legacy (pre-1.6) format."""
    forge = Forge(protocol=2, legacy=True)
    body = forge.value(_tensors(obj)).stop()
    header = b"".join(Forge().value(v).stop() for v in (
        0x1950A86A20F9469CFC6C, 1001,
        {"protocol_version": 1001, "little_endian": True,
         "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    keys = sorted(key for key, _ in forge.storage_keys.values())
    storages = dict(forge.storage_keys.values())
    out = io.BytesIO()
    out.write(header + body + Forge().value(keys).stop())
    for key in keys:
        out.write(struct.pack("<q", storages[key].numel))
        out.write(storages[key].data)
    with open(path, "wb") as handle:
        handle.write(out.getvalue())
    return path


def _tensors(obj):
    if isinstance(obj, np.ndarray):
        return TorchTensor.of(obj)
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _tensors(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _tensors(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_tensors(v) for v in obj]
    return obj
