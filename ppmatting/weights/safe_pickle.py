"""A pickle reader that builds data and never runs anything a file asks for.

Why not ``pickle.Unpickler`` with a restricted ``find_class``: Python's pickle format is a small
stack machine (opcode table: ``pickletools``; PEP 307, 3154 and 574 for protocols 2, 4 and 5), and
an allowlist of globals only guards one of its doors. ``REDUCE``, ``NEWOBJ(_EX)``, ``INST`` and
``OBJ`` call whatever callable ends up on the stack, ``BUILD`` calls ``__setstate__`` or sets
attributes, ``APPENDS`` calls ``.extend`` on non-lists, ``EXT1/2/4`` import through
``copyreg``'s extension registry, and ``find_class`` resolves dotted names (``numpy.dtypes`` +
``__builtins__.get`` reached ``eval`` in the first version of this file). Even allowed callables
can be turned: ``_codecs.encode`` runs any registered codec (zlib bombs), ``ndarray.__setstate__``
takes object dtypes whose items are arbitrary pickled objects.

So this module interprets the opcodes itself. A global is looked up in a table of exact
``(module, name)`` pairs and becomes a *token*; nothing is imported. Only tokens can be called,
and "calling" one runs this module's own implementation of it, which checks its arguments (a dtype
must be numeric, a byte count must match the declared shape, ...). ``BUILD`` is accepted only by
objects this module is constructing. Containers are exact ``dict``/``list``/``tuple``/``set``/
``OrderedDict``; dict keys and set items are strings, bytes, small ints, bools, None or tuples of
them (no attacker-chosen hash collisions).

Memory and time are bounded: every length the file declares (strings, bytes, frames) is checked
against the bytes left in the file before anything is allocated; arrays must be exactly as large as
the bytes that hold them, and use the buffer read from the file as their memory (so reading costs
the file's size once, as ``pickle.load`` does); the number of opcodes is capped (``MAX_OPCODES``),
as are integer sizes, text-line lengths, nesting depth and the size of structures built from shared
references; cyclic structures are refused.

What the caller gets is plain data: ``dict``, ``OrderedDict``, ``list``, ``tuple``, ``set``,
``frozenset``, ``str``, ``bytes``, ``bytearray``, ``int``, ``float``, ``bool``, ``None``, NumPy arrays
of numeric or bool dtype, NumPy scalars of those dtypes, and NumPy dtypes; plus whatever an extra
global of the caller builds (the ``.pth`` reader's arrays, the checkpoint reader's RNG state).
"""
import codecs
import io
import struct
from collections import OrderedDict

import numpy as np

MAX_OPCODES = 2_000_000     # weights files use a few thousand; a Paddle RNG state about 12,000
MAX_DEPTH = 64              # nesting of containers in the result
MAX_EXPANDED = 10_000_000   # items of the result walked as a tree (shared references repeated)
MAX_INT_BYTES = 1024        # LONG1/LONG4 payload (torch's magic number uses 10)
MAX_LINE = 4096             # text opcodes of protocols 0-1 (numbers, names)
SMALL_INT = 2 ** 31         # dict keys / set items: |int| below this (their hash is the value)
HIGHEST_PROTOCOL = 5


class Refused(Exception):
    """The pickle asks for something this reader does not do. The message says what."""


class Unsupported(Refused):
    """A legitimate feature of a known format that this reader does not implement (for a PyTorch
    file: torch itself may read it)."""


# ---- tokens and objects under construction ----------------------------------------------------
class Global:
    """An allowed global: what ``GLOBAL``/``STACK_GLOBAL`` push instead of importing anything.

    ``call(args)`` implements ``REDUCE`` with this token as the callable; ``new(args)`` implements
    ``NEWOBJ``. Either may be None (then that use is refused). A token that survives into the
    result is refused: a weights file holds data, not references to functions or classes.
    """
    __hash__ = None  # never a dict key or set item

    def __init__(self, module, name, call=None, new=None):
        self.module, self.name, self.call, self.new = module, name, call, new

    @property
    def qualname(self):
        return f"{self.module}.{self.name}"


class Pending:
    """An object under construction (``REDUCE``/``NEWOBJ`` made it, ``BUILD`` gives it its state).

    Subclasses implement :meth:`build` and :meth:`finish`; the loader replaces every Pending in the
    result by ``finish()``.
    """
    __hash__ = None
    what = "object"

    def build(self, state):
        raise Refused(f"BUILD on a {self.what} is not supported")

    def finish(self):
        raise NotImplementedError


# ---- NumPy: numeric arrays, scalars and dtypes only -------------------------------------------
NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex


def numeric_dtype(spec, where="dtype"):
    """``np.dtype`` for a short type string such as 'f4', '<i8', 'b1', refusing everything that
    is not a plain number or bool (object, strings, void/structured, datetime, sub-arrays)."""
    if isinstance(spec, PendingDtype):
        return spec.finish()
    if isinstance(spec, np.dtype):
        dtype = spec
    else:
        if not isinstance(spec, str) or not 0 < len(spec) <= 8 or not spec.isascii() or \
                not all(c.isalnum() or c in "<>|=" for c in spec):
            raise Refused(f"{where} {_short(spec)} is not a numeric type code")
        try:
            dtype = np.dtype(spec)
        except (TypeError, ValueError):
            raise Refused(f"{where} {_short(spec)} is not a NumPy type") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.hasobject:
        raise Refused(f"{where} {dtype.str!r} is not numeric (object, text, structured and "
                      f"datetime arrays are refused)")
    return dtype


class PendingDtype(Pending):
    """``numpy.dtype(code, align, copy)`` and then ``BUILD`` with its byte order."""
    what = "dtype"

    def __init__(self, code, *flags):
        if len(flags) > 2 or not all(isinstance(f, bool) for f in flags):
            raise Refused("numpy.dtype takes a type code and two booleans")
        self.dtype = numeric_dtype(code)
        self.built = False

    def build(self, state):
        # NumPy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment,
        # flags[, metadata]); for a plain number everything after the byte order is empty.
        if self.built:
            raise Refused("dtype given its state twice")
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise Refused(f"unexpected dtype state {_short(state)}")
        order = state[1]
        if order not in ("<", ">", "|", "=") or any(v is not None for v in state[2:5]) or \
                (len(state) == 9 and state[8] is not None) or \
                not all(isinstance(v, int) for v in state[5:8]):
            raise Refused(f"dtype state {_short(state)} describes a non-numeric dtype")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)
        self.built = True

    def finish(self):
        return self.dtype


def _shape(value, where):
    if not isinstance(value, tuple) or len(value) > 32 or \
            not all(type(n) is int and n >= 0 for n in value):
        raise Refused(f"{where}: shape {_short(value)} is not a tuple of non-negative ints")
    return value


def array_from_bytes(raw, dtype, shape, fortran=False, where="array"):
    """A writable array of ``shape`` read from ``raw``, whose length must match exactly."""
    if isinstance(raw, str):  # protocol 0-2 files made by Python 2 store bytes as latin-1 text
        raw = raw.encode("latin-1")
    if not isinstance(raw, (bytes, bytearray)):
        raise Refused(f"{where}: data is {type(raw).__name__}, expected bytes (object arrays are "
                      f"refused)")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise Refused(f"{where}: shape {list(shape)} of {dtype.str} needs "
                      f"{count * dtype.itemsize} bytes, the file holds {len(raw)}")
    order = "F" if fortran else "C"
    if isinstance(raw, Payload) and not raw.taken:
        raw.taken = True  # the array is a writable view of the buffer read from the file
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order=order)
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order=order)
    return array.copy(order="K")


class PendingArray(Pending):
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`` and then ``BUILD`` with
    ``(version, shape, dtype, is_fortran, raw bytes)``."""
    what = "array"

    def __init__(self, cls, shape, typecode):
        if not (isinstance(cls, Global) and cls.name == "ndarray"):
            raise Refused("_reconstruct is allowed for numpy.ndarray only")
        _shape(shape, "_reconstruct")
        if typecode not in (b"b", "b"):
            raise Refused("_reconstruct with an unexpected type code")
        self.array = None

    def build(self, state):
        if self.array is not None:
            raise Refused("array given its state twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused(f"unexpected array state {_short(state)}")
        if len(state) == 5:
            if not isinstance(state[0], int):
                raise Refused("unexpected array state version")
            state = state[1:]
        shape, dtype, fortran, raw = state
        if not isinstance(fortran, (bool, int)):
            raise Refused("array state: is_fortran is not a bool")
        dtype = numeric_dtype(dtype, "array dtype")
        self.array = array_from_bytes(raw, dtype, _shape(shape, "array"), bool(fortran))

    def finish(self):
        if self.array is None:
            raise Refused("an array was declared but never given its data")
        return self.array


def _scalar(dtype, raw=None):
    dtype = numeric_dtype(dtype, "scalar dtype")
    if raw is None:
        raw = bytes(dtype.itemsize)
    return array_from_bytes(raw, dtype, (), where="scalar")[()]


def _frombuffer(raw, dtype, shape, order):
    """NumPy's protocol-5 array form ``numpy.core.numeric._frombuffer(buf, dtype, shape, order)``."""
    if order not in ("C", "F"):
        raise Refused("_frombuffer with an unknown order")
    dtype = numeric_dtype(dtype, "array dtype")
    return array_from_bytes(raw, dtype, _shape(shape, "array"), order == "F")


# ---- plain containers and bytes ----------------------------------------------------------------
def _items(args, what):
    """The single optional list/tuple argument of set(), frozenset(), tuple(), OrderedDict()."""
    if args == ():
        return ()
    if len(args) != 1 or type(args[0]) not in (list, tuple):
        raise Refused(f"{what}() takes one list or tuple here")
    return args[0]


def _make_set(kind):
    def call(*args):
        items = _items(args, kind.__name__)
        for item in items:
            check_key(item)
        return kind(items)
    return call


def _make_tuple(*args):
    return tuple(_items(args, "tuple"))


def _make_ordered_dict(*args):
    result = OrderedDict()
    for pair in _items(args, "OrderedDict"):
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise Refused("OrderedDict() items must be (key, value) pairs")
        result[check_key(pair[0])] = pair[1]
    return result


def _latin1(text, encoding):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode is allowed only as (text, 'latin1'), the form pickle uses "
                      "for bytes in protocols 0-2")
    return text.encode("latin-1")


def _make_bytes(kind):
    def call(*args):
        if args == ():
            return kind()
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
            return kind(args[0])
        if len(args) == 2:
            return kind(_latin1(*args))
        raise Refused(f"{kind.__name__}() with these arguments is not allowed")
    return call


def _globals(pairs):
    table = {}
    for modules, name, call in pairs:
        for module in modules:
            table[(module, name)] = Global(module, name, call=call)
    return table


NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
BUILTINS = ("builtins", "__builtin__")  # __builtin__: Python 2 names in protocols 0-2

# The only globals any file may name. Each call is this module's function, not the named one.
BASE_GLOBALS = _globals([
    (NUMPY_CORE, "_reconstruct", PendingArray),
    (NUMPY_CORE, "scalar", _scalar),
    (NUMPY_NUMERIC, "_frombuffer", _frombuffer),
    (("numpy",), "ndarray", None),           # only as _reconstruct's first argument
    (("numpy",), "dtype", PendingDtype),
    (("_codecs",), "encode", _latin1),
    (("collections",), "OrderedDict", _make_ordered_dict),
    (BUILTINS, "set", _make_set(set)),
    (BUILTINS, "frozenset", _make_set(frozenset)),
    (BUILTINS, "tuple", _make_tuple),        # Paddle stores a tensor as tuple((name, array))
    (BUILTINS, "bytes", _make_bytes(bytes)),
    (BUILTINS, "bytearray", _make_bytes(bytearray)),
])


def check_key(value):
    """A dict key or set item must be a str, bytes, bool, None, small int or a tuple of those:
    their hashes are either randomised (str, bytes) or distinct (small ints), so a file cannot
    make dict insertion quadratic with colliding keys."""
    kind = type(value)
    if kind in (str, bytes, bool) or value is None or \
            (kind is int and -SMALL_INT < value < SMALL_INT):
        return value
    if kind is tuple and len(value) <= 16 and all(
            type(v) in (str, bytes, bool) or v is None or
            (type(v) is int and -SMALL_INT < v < SMALL_INT) for v in value):
        return value
    raise Refused(f"a dict key or set item of type {kind.__name__} ({_short(value)})")


def _short(value, limit=60):
    """A bounded description of a value for a message (never the repr of a whole container: a few
    bytes of shared references can stand for a structure whose repr would not fit in memory)."""
    if isinstance(value, Global):
        return value.qualname
    if isinstance(value, Pending):
        return f"<{value.what}>"
    if isinstance(value, (str, bytes, bytearray)):
        text = repr(value[:limit])
    elif value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
    elif isinstance(value, (tuple, list, dict, set, frozenset)):
        text = f"<{type(value).__name__} of {len(value)}>"
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def one_line(error, limit=200):
    """An exception's message on one bounded line."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."


# ---- the machine ---------------------------------------------------------------------------------
BIG_PAYLOAD = 1 << 16  # bytes: read into a Payload, which arrays use without copying


class Payload(bytearray):
    """A large ``BINBYTES`` payload (pickle's bytes), read into a writable buffer so that the
    array it holds is a view of it rather than a second copy (peak memory = the file's size).
    One array may take it as its memory; any other use copies. Left in the result (bytes that
    were not array data), :func:`finish` turns it back into ``bytes``."""
    __hash__ = None
    taken = False


class _Input:
    """Bytes from a binary file with a known number of bytes left; every read is checked first."""

    def __init__(self, handle, size):
        self.handle, self.left = handle, int(size)

    def read(self, n, what="data"):
        if n < 0 or n > self.left:
            raise Refused(f"{what} declares {n} bytes but only {self.left} remain in the file")
        data = self.handle.read(n)
        if len(data) != n:
            raise Refused("the file ends early")
        self.left -= n
        return data

    def read_payload(self, n):
        """``n`` bytes as ``bytes``, or as a :class:`Payload` when large."""
        if n < BIG_PAYLOAD:
            return self.read(n, "bytes")
        if n > self.left:
            raise Refused(f"bytes declares {n} bytes but only {self.left} remain in the file")
        payload = Payload(n)
        if self.handle.readinto(payload) != n:
            raise Refused("the file ends early")
        self.left -= n
        return payload

    def readline(self, what, limit=MAX_LINE):
        """One text line (protocols 0-1). Numbers and names are short (``limit``); the text of
        a string may take the rest of the file."""
        line = self.handle.readline(min(limit + 1, self.left))
        if not line.endswith(b"\n"):
            raise Refused(f"{what}: text line longer than {limit} bytes or missing its end")
        self.left -= len(line)
        return line[:-1]


def _uint(data):
    return int.from_bytes(data, "little", signed=False)


class SafeUnpickler:
    """Interpret one pickle from ``handle`` (binary, positioned at the pickle) without running code.

    Args:
        handle: a binary file object.
        size: bytes available from the current position (the file's size for a whole file); no
            length the pickle declares may exceed what is left.
        extra_globals: ``{(module, name): Global}`` added to :data:`BASE_GLOBALS` for this load
            (the ``.pth`` reader's tensor rebuild functions, the checkpoint reader's RNG state).
        persistent_load: called with the persistent id (``BINPERSID``); None refuses them.
        unsupported_modules: top-level module names (e.g. ``{"torch"}``) whose other globals
            raise :class:`Unsupported` instead of :class:`Refused`.
        max_opcodes: cap on opcodes executed (default :data:`MAX_OPCODES`).
    """

    def __init__(self, handle, size, extra_globals=None, persistent_load=None, max_opcodes=None,
                 unsupported_modules=()):
        self.input = _Input(handle, size)
        self.globals = dict(BASE_GLOBALS)
        self.globals.update(extra_globals or {})
        self.persistent_load = persistent_load
        self.unsupported_modules = frozenset(unsupported_modules)
        self.max_opcodes = MAX_OPCODES if max_opcodes is None else max_opcodes
        self.protocol = 0

    # -- helpers
    def _global(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise Refused("a global named by something other than two strings")
        if "." in name or not name.isidentifier():
            raise Refused(f"the pickle asks for '{module}.{name}': dotted or odd attribute names "
                          f"are never allowed")
        token = self.globals.get((module, name))
        if token is None and module.split(".")[0] in self.unsupported_modules:
            raise Unsupported(f"'{module}.{name}' (a {module.split('.')[0]} feature this reader "
                              f"does not implement)")
        if token is None:
            raise Refused(f"the pickle refers to '{module}.{name}', which a weights file does "
                          f"not need")
        return token

    def _pop_mark(self):
        if not self.metastack:
            raise Refused("MARK expected")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _pop(self):
        if not self.stack:
            raise Refused("stack underflow")
        return self.stack.pop()

    def _top(self):
        if not self.stack:
            raise Refused("stack underflow")
        return self.stack[-1]

    def _memo_get(self, index):
        if index not in self.memo:
            raise Refused(f"memo entry {index} used before it was stored")
        return self.memo[index]

    def _set_items(self, target, items):
        if type(target) not in (dict, OrderedDict):
            raise Refused(f"SETITEM(S) on a {type(target).__name__}")
        if len(items) % 2:
            raise Refused("SETITEMS with an odd number of items")
        for i in range(0, len(items), 2):
            target[check_key(items[i])] = items[i + 1]

    def _append(self, target, items):
        if type(target) is not list:  # pickle would call .append/.extend on any object
            raise Refused(f"APPEND(S) on a {type(target).__name__}")
        target.extend(items)

    def _call(self, func, args, opcode):
        if not isinstance(func, Global):
            raise Refused(f"{opcode} on {_short(func)}: only allowed globals can be called")
        impl = func.new if opcode.startswith("NEWOBJ") else func.call
        if impl is None:
            raise Refused(f"{opcode} on '{func.qualname}' is not allowed")
        if type(args) is not tuple:
            raise Refused(f"{opcode}: arguments are not a tuple")
        try:
            return impl(*args)
        except Refused:
            raise
        except (TypeError, ValueError, OverflowError, MemoryError) as err:
            raise Refused(f"{func.qualname}: {type(err).__name__}: {one_line(err)}") from None

    def _build(self, target, state):
        if isinstance(target, Pending):
            target.build(state)
        elif type(target) is OrderedDict and (state is None or type(state) is dict):
            # torch's state_dict() is an OrderedDict whose instance dict holds '_metadata'
            # (module versions); attributes are never set, so the state is dropped.
            pass
        else:
            raise Refused(f"BUILD on a {type(target).__name__} (pickle would call its "
                          f"__setstate__ or set its attributes)")

    # -- the loop
    def load(self):
        self.stack, self.metastack, self.memo = [], [], {}
        read = self.input.read
        stack = None
        for _ in range(self.max_opcodes):
            if self.input.left <= 0:
                raise Refused("the file ends before the pickle's STOP (truncated?)")
            code = read(1)[0]
            stack = self.stack
            # Most frequent first. Each branch pushes at most one object built from bytes it read.
            if code == 0x94:                                       # MEMOIZE
                self.memo[len(self.memo)] = self._top()
            elif code == 0x8C:                                     # SHORT_BINUNICODE
                stack.append(self._text(read(read(1)[0], "string")))
            elif code == 0x71:                                     # BINPUT 'q'
                self.memo[read(1)[0]] = self._top()
            elif code == 0x72:                                     # LONG_BINPUT 'r'
                self.memo[_uint(read(4))] = self._top()
            elif code == 0x68:                                     # BINGET 'h'
                stack.append(self._memo_get(read(1)[0]))
            elif code == 0x6A:                                     # LONG_BINGET 'j'
                stack.append(self._memo_get(_uint(read(4))))
            elif code == 0x4B:                                     # BININT1 'K'
                stack.append(read(1)[0])
            elif code == 0x4D:                                     # BININT2 'M'
                stack.append(_uint(read(2)))
            elif code == 0x4A:                                     # BININT 'J'
                stack.append(int.from_bytes(read(4), "little", signed=True))
            elif code == 0x28:                                     # MARK '('
                self.metastack.append(self.stack)
                self.stack = []
            elif code == 0x58:                                     # BINUNICODE 'X'
                stack.append(self._text(read(_uint(read(4)), "string")))
            elif code == 0x8D:                                     # BINUNICODE8
                stack.append(self._text(read(_uint(read(8)), "string")))
            elif code == 0x43:                                     # SHORT_BINBYTES 'C'
                stack.append(read(read(1)[0], "bytes"))
            elif code == 0x42:                                     # BINBYTES 'B'
                stack.append(self.input.read_payload(_uint(read(4))))
            elif code == 0x8E:                                     # BINBYTES8
                stack.append(self.input.read_payload(_uint(read(8))))
            elif code == 0x96:                                     # BYTEARRAY8
                stack.append(bytearray(read(_uint(read(8)), "bytearray")))
            elif code == 0x4E:                                     # NONE 'N'
                stack.append(None)
            elif code == 0x88:                                     # NEWTRUE
                stack.append(True)
            elif code == 0x89:                                     # NEWFALSE
                stack.append(False)
            elif code == 0x47:                                     # BINFLOAT 'G'
                stack.append(struct.unpack(">d", read(8))[0])
            elif code == 0x8A:                                     # LONG1
                stack.append(self._long(read(1)[0]))
            elif code == 0x8B:                                     # LONG4
                stack.append(self._long(int.from_bytes(read(4), "little", signed=True)))
            elif code == 0x29:                                     # EMPTY_TUPLE ')'
                stack.append(())
            elif code in (0x85, 0x86, 0x87):                       # TUPLE1, TUPLE2, TUPLE3
                n = code - 0x84
                if len(stack) < n:
                    raise Refused("stack underflow")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif code == 0x74:                                     # TUPLE 't'
                items = self._pop_mark()
                self.stack.append(tuple(items))
            elif code == 0x7D:                                     # EMPTY_DICT '}'
                stack.append({})
            elif code == 0x5D:                                     # EMPTY_LIST ']'
                stack.append([])
            elif code == 0x8F:                                     # EMPTY_SET
                stack.append(set())
            elif code == 0x73:                                     # SETITEM 's'
                value, key = self._pop(), self._pop()
                self._set_items(self._top(), [key, value])
            elif code == 0x75:                                     # SETITEMS 'u'
                items = self._pop_mark()
                self._set_items(self._top(), items)
            elif code == 0x61:                                     # APPEND 'a'
                value = self._pop()
                self._append(self._top(), [value])
            elif code == 0x65:                                     # APPENDS 'e'
                items = self._pop_mark()
                self._append(self._top(), items)
            elif code == 0x90:                                     # ADDITEMS
                items = self._pop_mark()
                target = self._top()
                if type(target) is not set:
                    raise Refused(f"ADDITEMS on a {type(target).__name__}")
                for item in items:
                    target.add(check_key(item))
            elif code == 0x91:                                     # FROZENSET
                items = self._pop_mark()
                self.stack.append(frozenset(check_key(item) for item in items))
            elif code == 0x64:                                     # DICT 'd'
                items = self._pop_mark()
                result = {}
                self._set_items(result, items)
                self.stack.append(result)
            elif code == 0x6C:                                     # LIST 'l'
                items = self._pop_mark()
                self.stack.append(list(items))
            elif code == 0x93:                                     # STACK_GLOBAL
                name, module = self._pop(), self._pop()
                self.stack.append(self._global(module, name))
            elif code == 0x63:                                     # GLOBAL 'c'
                module = self._line_text("GLOBAL module")
                name = self._line_text("GLOBAL name")
                stack.append(self._global(module, name))
            elif code == 0x52:                                     # REDUCE 'R'
                args, func = self._pop(), self._pop()
                self.stack.append(self._call(func, args, "REDUCE"))
            elif code == 0x81:                                     # NEWOBJ
                args, cls = self._pop(), self._pop()
                self.stack.append(self._call(cls, args, "NEWOBJ"))
            elif code == 0x92:                                     # NEWOBJ_EX
                kwargs, args, cls = self._pop(), self._pop(), self._pop()
                if kwargs != {}:
                    raise Refused("NEWOBJ_EX with keyword arguments")
                self.stack.append(self._call(cls, args, "NEWOBJ_EX"))
            elif code == 0x62:                                     # BUILD 'b'
                state = self._pop()
                self._build(self._top(), state)
            elif code == 0x51:                                     # BINPERSID 'Q'
                self.stack.append(self._persistent(self._pop()))
            elif code == 0x50:                                     # PERSID 'P'
                stack.append(self._persistent(self._line_text("PERSID")))
            elif code == 0x30:                                     # POP '0'
                if stack:
                    stack.pop()
                else:
                    self._pop_mark()
            elif code == 0x31:                                     # POP_MARK '1'
                self._pop_mark()
            elif code == 0x32:                                     # DUP '2'
                stack.append(self._top())
            elif code == 0x80:                                     # PROTO
                self.protocol = read(1)[0]
                if self.protocol > HIGHEST_PROTOCOL:
                    raise Refused(f"pickle protocol {self.protocol} is newer than {HIGHEST_PROTOCOL}")
            elif code == 0x95:                                     # FRAME: a read-ahead hint
                length = _uint(read(8))
                if length > self.input.left:
                    raise Refused(f"frame declares {length} bytes but only {self.input.left} remain")
            elif code == 0x2E:                                     # STOP '.'
                if len(self.stack) != 1 or self.metastack:
                    raise Refused("STOP with an unbalanced stack")
                return self.stack[0]
            # ---- protocol 0-1 text forms
            elif code == 0x49:                                     # INT 'I'
                line = self._line_ascii("INT")
                stack.append(True if line == "01" else False if line == "00" else self._int(line))
            elif code == 0x4C:                                     # LONG 'L'
                stack.append(self._int(self._line_ascii("LONG").rstrip("L")))
            elif code == 0x46:                                     # FLOAT 'F'
                try:
                    stack.append(float(self._line_ascii("FLOAT")))
                except ValueError:
                    raise Refused("FLOAT with an unreadable number") from None
            elif code == 0x56:                                     # UNICODE 'V'
                line = self.input.readline("UNICODE", self.input.left)
                stack.append(self._decode(line, "raw-unicode-escape"))
            elif code == 0x53:                                     # STRING 'S' (Python 2 str)
                stack.append(self._py2_string(self.input.readline("STRING", self.input.left)))
            elif code == 0x54:                                     # BINSTRING 'T'
                length = int.from_bytes(read(4), "little", signed=True)
                stack.append(read(length, "string").decode("latin-1"))
            elif code == 0x55:                                     # SHORT_BINSTRING 'U'
                stack.append(read(read(1)[0], "string").decode("latin-1"))
            elif code == 0x67:                                     # GET 'g'
                stack.append(self._memo_get(self._int(self._line_ascii("GET"))))
            elif code == 0x70:                                     # PUT 'p'
                self.memo[self._int(self._line_ascii("PUT"))] = self._top()
            elif code == 0x98:                                     # READONLY_BUFFER: a flag
                self._top()
            elif code == 0x69:                                     # INST 'i'
                raise Refused("INST (create an instance of a named class) is not used by "
                              "weights files")
            elif code == 0x6F:                                     # OBJ 'o'
                raise Refused("OBJ (create an instance of a class) is not used by weights files")
            elif code in (0x82, 0x83, 0x84):                       # EXT1, EXT2, EXT4
                raise Refused("EXT opcodes (copyreg's extension registry) are not allowed")
            elif code == 0x97:                                     # NEXT_BUFFER
                raise Refused("out-of-band buffers (NEXT_BUFFER) are not supported")
            else:
                raise Refused(f"unknown opcode 0x{code:02x}")
        raise Refused(f"more than {self.max_opcodes:,} opcodes; weights files need far fewer")

    # -- value helpers
    @staticmethod
    def _text(data):
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise Refused("a string that is not UTF-8") from None

    @staticmethod
    def _decode(data, encoding):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            raise Refused(f"a string that is not valid {encoding}") from None

    def _line_ascii(self, what):
        line = self.input.readline(what)
        try:
            return line.decode("ascii")
        except UnicodeDecodeError:
            raise Refused(f"{what}: not ASCII") from None

    def _line_text(self, what):
        return self._decode(self.input.readline(what), "utf-8")

    @staticmethod
    def _int(text):
        try:
            return int(text)
        except ValueError:
            raise Refused(f"unreadable integer {_short(text)}") from None

    def _long(self, n):
        if n < 0 or n > MAX_INT_BYTES:
            raise Refused(f"an integer of {n} bytes (at most {MAX_INT_BYTES})")
        return int.from_bytes(self.input.read(n, "integer"), "little", signed=True)

    @staticmethod
    def _py2_string(line):
        # Python 2's repr of a str: quoted, backslash escapes; pickle decodes it as latin-1 bytes
        if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
            raise Refused("STRING without quotes")
        try:
            return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
        except (ValueError, UnicodeDecodeError):
            raise Refused("STRING with bad escapes") from None

    def _persistent(self, pid):
        if self.persistent_load is None:
            raise Refused("persistent ids (references to data outside the pickle) are not "
                          "allowed in this file")
        return self.persistent_load(pid)


def finish(value):
    """Replace every :class:`Pending` in ``value`` by its result; refuse tokens left as values,
    cycles, nesting deeper than :data:`MAX_DEPTH`, and structures that shared references make
    larger than :data:`MAX_EXPANDED` items when walked as a tree (a few hundred bytes of memo
    references can describe a list of 10**9 items). Returns the finished value."""
    done = {}          # id -> (finished value, items when walked as a tree)
    on_path = set()

    def visit(obj, depth):
        if isinstance(obj, Global):
            raise Refused(f"'{obj.qualname}' appears as a value; a weights file holds data")
        kind = type(obj)
        if not isinstance(obj, Pending) and kind not in (dict, OrderedDict, list, tuple, set,
                                                         frozenset, Payload):
            return obj, 1
        key = id(obj)
        if key in done:
            return done[key]
        if kind is Payload:   # bytes that were not array data; converted once, however shared
            done[key] = (bytes(obj), 1)
            return done[key]
        if isinstance(obj, Pending):  # finished once, however often the memo repeats it
            done[key] = (obj.finish(), 1)
            return done[key]
        if key in on_path:
            raise Refused("a container that contains itself")
        if depth > MAX_DEPTH:
            raise Refused(f"containers nested more than {MAX_DEPTH} deep")
        on_path.add(key)
        weight = 1
        try:
            if kind in (dict, OrderedDict):
                for k in obj:
                    obj[k], w = visit(obj[k], depth + 1)
                    weight += w + 1
                result = obj
            elif kind is list:
                for i, item in enumerate(obj):
                    obj[i], w = visit(item, depth + 1)
                    weight += w
                result = obj
            else:
                items = []
                for item in obj:
                    item, w = visit(item, depth + 1)
                    items.append(item)
                    weight += w
                result = obj if all(a is b for a, b in zip(items, obj)) else kind(items)
            if weight > MAX_EXPANDED:
                raise Refused(f"shared references expand the data to more than {MAX_EXPANDED:,} "
                              f"items")
        finally:
            on_path.discard(key)
        done[key] = (result, weight)
        return done[key]

    # Recursion is bounded: nesting deeper than MAX_DEPTH is refused before going further.
    return visit(value, 0)[0]


def load(handle, size, extra_globals=None, persistent_load=None):
    """Read one pickle from ``handle`` (``size`` bytes available) into plain data.

    Raises :class:`Refused` (message without a path) when the pickle asks for anything this reader
    does not do; nothing from the file is executed either way.
    """
    try:
        value = SafeUnpickler(handle, size, extra_globals, persistent_load).load()
        return finish(value)
    except Refused:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
            struct.error) as err:
        # every opcode checks its operands; this is the net for a combination it did not foresee
        raise Refused(f"malformed pickle ({type(err).__name__}: {one_line(err)})") from None


def loads(data, extra_globals=None, persistent_load=None):
    """:func:`load` for a bytes object."""
    return load(io.BytesIO(data), len(data), extra_globals, persistent_load)
