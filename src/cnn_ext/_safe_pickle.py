"""The restricted unpickler for model files: cnn_ext's one security boundary.

Threat model
------------
A ``.pkl`` model file may come from anywhere (a download, a shared folder, a classmate)
and must be treated as hostile. Plain ``pickle.load`` on such a file runs any code the
file names. :func:`loads` must, for *any* bytes:

* never import a module, call a function or set an attribute that is not listed below;
* never allocate much more memory than the file's own size (no "pickle bombs": huge
  memo indices, arrays claiming a shape their data does not fill, uninitialised arrays);
* never crash the interpreter (no array whose dtype was rewritten into an object dtype);
* either return plain data or raise :class:`pickle.UnpicklingError` (its subclass
  :class:`RefusedPickle` when the file does something a model file never does).

The caller (``cnn_ext.saver``) bounds the file size before calling :func:`loads`, and
validates the returned object (keys, shapes, dtypes, finiteness) afterwards.

What is allowed
---------------
1. A pre-scan walks the opcodes *lazily* with ``pickletools.genops`` (nothing is
   executed, nothing is kept): at most :data:`MAX_OPCODES` opcodes (a model pickle has
   about 50), only the opcodes in :data:`ALLOWED_OPCODES` (plain data, the memo, framing,
   globals, ``REDUCE`` and ``BUILD``), memo indices below the count of opcodes read so
   far, and lengths that do not run past the end of the file.
2. The unpickler then runs with only the globals of :data:`_ALLOWED_GLOBALS`: the
   functions NumPy's own array pickles call (``_reconstruct``, ``dtype``, ``_frombuffer``,
   ``scalar``) for NumPy 1.x and 2.x names, ``_codecs.encode`` for ``'latin1'`` only and
   ``bytes()`` without arguments. Each is a wrapper that checks its arguments: arrays
   only of plain numeric dtypes, and only with as many bytes of data as their shape needs,
   taken from the file itself.
3. ``BUILD`` may only set the state of those arrays and dtypes, in the exact form NumPy
   writes (:meth:`_RestrictedUnpickler.load_build`).
4. Layer objects, as learners' scripts pickle them (``pickle.dump([conv, pool, softmax],
   f)``): a global whose name is one of :data:`LAYER_CLASS_NAMES`, from any module, is
   *not* imported; it stands for a :class:`PickledLayer`, a record that keeps the
   module and class name and the state dict the file gives it. ``NEWOBJ`` (protocols
   2-5) and ``copyreg._reconstructor`` (protocols 0-1) may create one, without
   arguments, and ``BUILD`` may give it a dict of str keys once. No method of any
   class runs; the caller (``cnn_ext.saver``) keeps only the arrays it needs.

Nothing else is reachable: dicts, lists, tuples, strings, bytes and numbers have their
own opcodes and need no global.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from collections.abc import Iterable
from typing import Any, NoReturn

import numpy as np

__all__ = ["RefusedPickle", "PickledLayer", "loads", "prescan", "ALLOWED_OPCODES", "MAX_OPCODES",
           "NUMERIC_KINDS", "LAYER_CLASS_NAMES"]

# A model pickle (a dict of three arrays, any protocol 0-5, NumPy 1.x or 2.x) has 40-90
# opcodes; 10,000 leaves room for any layout while the scan stays a few milliseconds.
MAX_OPCODES = 10_000

# Everything NumPy array pickles and plain containers use, at protocols 0-5. Left out:
# persistent ids (PERSID, BINPERSID), the extension registry (EXT1/2/4), the class
# instantiation opcodes INST, OBJ and NEWOBJ_EX, and out-of-band buffers (NEXT_BUFFER,
# READONLY_BUFFER), none of which a model file needs; NEWOBJ creates layer records only
# (see load_newobj). An opcode a future Python adds is refused until it is listed here.
ALLOWED_OPCODES = frozenset({
    # structure
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
    # numbers, None, booleans
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "NONE", "NEWTRUE", "NEWFALSE",
    # text and bytes
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    # containers
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND",
    "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS",
    "FROZENSET",
    # the memo
    "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
    # globals (restricted by find_class), calls (only of the allowed globals), state
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
    # objects: layer records only (see load_newobj)
    "NEWOBJ",
})

# Kinds of array data a model may hold: signed and unsigned integers, floats.
NUMERIC_KINDS = "iuf"

_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


class RefusedPickle(pickle.UnpicklingError):
    """The pickle does something a model file never does (a global, opcode or state
    outside what is allowed); nothing it names was imported or called."""


# --------------------------------------------------------------------------- pre-scan

def prescan(raw: bytes, max_opcodes: int = MAX_OPCODES) -> None:
    """Walk the opcodes of ``raw`` (bytes) without executing any; raise on the first problem.

    Lazy: one opcode at a time, nothing kept, so the cost is bounded by the first
    ``max_opcodes`` opcodes whatever the file size. A memo index can only refer to
    something stored before it, so it is below the count of opcodes read so far; a larger
    one (``LONG_BINPUT 2**30`` in a 12-byte file makes an unpickler reserve gigabytes) is
    refused. ``genops`` refuses lengths that run past the end of the file before anything
    is allocated for them. Raises :class:`RefusedPickle` for a refused opcode or too many
    opcodes, :class:`pickle.UnpicklingError` for anything malformed.
    """
    count = 0
    try:
        with warnings.catch_warnings():  # protocol-0 strings in a damaged file warn
            warnings.simplefilter("ignore", DeprecationWarning)
            for opcode, arg, pos in pickletools.genops(raw):
                count += 1
                if count > max_opcodes:
                    raise RefusedPickle(f"more than {max_opcodes} pickle opcodes (a model "
                                        f"pickle has fewer than 100)")
                if opcode.name not in ALLOWED_OPCODES:
                    raise RefusedPickle(f"refused pickle opcode {opcode.name} at byte {pos}: "
                                        f"model files never use it")
                # (type: ignore: the memo opcodes always carry an int argument)
                if opcode.name in _MEMO_OPCODES and int(arg) > count:  # type: ignore[arg-type]
                    raise pickle.UnpicklingError(f"memo index {arg} after only {count} opcodes")
    except pickle.UnpicklingError:
        raise
    except Exception as exc:
        raise pickle.UnpicklingError(f"{type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------- the allowed globals

# The functions NumPy's array pickles call, taken from the running NumPy. NumPy 2 moved
# numpy.core to numpy._core; old files name the old module, new files the new one, and both
# must resolve to the objects of whichever NumPy is installed.
if int(np.__version__.split(".")[0]) >= 2:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
    # (type: ignore: NumPy's stubs do not declare this private function)
    from numpy._core.numeric import _frombuffer as _np_frombuffer  # type: ignore[attr-defined]
else:  # pragma: no cover - exercised only under NumPy 1.x
    # (type: ignore: mypy checks against one NumPy, so these branches define the names twice)
    from numpy.core.multiarray import _reconstruct as _np_reconstruct  # type: ignore[no-redef]
    from numpy.core.multiarray import scalar as _np_scalar  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer as _np_frombuffer  # type: ignore[no-redef]


def _latin1_encode(obj: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that only does what pickle needs it for.

    Python 3 writes ``bytes`` at protocols 0-2 as ``_codecs.encode(text, 'latin1')``
    (NumPy arrays' raw data included). The real function accepts any codec name, and
    looking a codec up can import modules, so only that one exact use is allowed.
    """
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedPickle(f"refused _codecs.encode with encoding {encoding!r} "
                            f"(model pickles use it only to encode bytes as 'latin1')")
    return obj.encode("latin1")


def check_dtype(dtype: object) -> np.dtype[Any]:
    """Refuse anything but a plain numeric dtype in its canonical state; return it.

    A crafted BUILD could otherwise give a float64 dtype the flags of an object dtype,
    and arrays using it crash NumPy when they are read or freed.
    """
    if (not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_KINDS
            or dtype.fields is not None or dtype.subdtype is not None
            or dtype.flags != np.dtype(dtype.str).flags):
        raise RefusedPickle(f"refused array dtype {dtype!r}: model arrays hold plain integers "
                            f"or floats")
    return dtype


def _safe_dtype(obj: object, align: object = False, copy: object = False) -> np.dtype[Any]:
    """``numpy.dtype(obj, align, copy)`` for the type codes of numeric arrays only."""
    if not isinstance(obj, str):
        raise RefusedPickle(f"refused numpy.dtype({obj!r}): model arrays hold plain integers "
                            f"or floats")
    dtype = np.dtype(obj)
    if dtype.kind not in NUMERIC_KINDS:
        raise RefusedPickle(f"refused an array of dtype {dtype}: model arrays hold plain "
                            f"integers or floats")
    return np.dtype(obj, bool(align), bool(copy))


class _ArrayType:
    """Stands for ``numpy.ndarray`` in a pickle: only ``_reconstruct`` may use it.

    It is not callable, so ``REDUCE numpy.ndarray (shape,)`` — an array of uninitialised
    memory of any size, named by a few bytes — cannot be built.
    """


_ARRAY_TYPE = _ArrayType()


def _data_matches(shape: object, dtype: np.dtype[Any], nbytes: int) -> bool:
    return (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
            and int(np.prod(shape, dtype=object)) * dtype.itemsize == nbytes)


def _safe_reconstruct(subtype: object, shape: Iterable[object], typecode: object) -> object:
    # NumPy pickles an array as _reconstruct(ndarray, (0,), b'b') followed by a BUILD that
    # sets its shape, dtype and data (checked in _RestrictedUnpickler.load_build).
    if subtype is not _ARRAY_TYPE or tuple(shape) != (0,) or typecode != b"b":
        raise RefusedPickle("refused an array reconstruction that NumPy's own pickles never "
                            "write")
    return _np_reconstruct(np.ndarray, (0,), b"b")


def _safe_frombuffer(buffer: bytes | bytearray | memoryview | pickle.PickleBuffer, dtype: object,
                     shape: Iterable[int], order: str) -> object:
    # Protocol 5: an array over the pickle's own bytes, whose size must match exactly.
    dtype = check_dtype(dtype)  # the same object, now known to be a dtype
    shape = tuple(shape)
    nbytes = memoryview(buffer).nbytes
    if not _data_matches(shape, dtype, nbytes):
        raise RefusedPickle(f"refused an array of shape {shape} over {nbytes} bytes of data")
    return _np_frombuffer(buffer, dtype, shape, order)


def _safe_scalar(dtype: object, data: object) -> object:
    dtype = check_dtype(dtype)  # the same object, now known to be a dtype
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise RefusedPickle("refused a NumPy scalar with the wrong amount of data")
    return _np_scalar(dtype, data)


def _empty_bytes(*args: object) -> bytes:
    # Protocols 0-2 write b"" as bytes(); bytes(n) would allocate n zero bytes.
    if args:
        raise RefusedPickle("refused bytes() with arguments (model pickles only use bytes())")
    return b""


# ------------------------------------------------------------------ layer objects

#: The class names of the tutorials' layers, whatever module a script defined them in
#: (``conv``, ``__main__``, ``cnn_ext.conv``, ...): such a global becomes a record.
LAYER_CLASS_NAMES = frozenset({"Conv3x3", "MaxPool2", "Softmax"})


class _LayerClass:
    """Stands for a layer class named in a pickle; nothing is imported for it."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        raise RefusedPickle(f"refused to call {self.module}.{self.name}: layer objects are "
                            f"read as records, nothing of their class is run")


class PickledLayer:
    """A layer object read from a pickle, as plain data: ``module`` and ``name`` of its
    class as the file wrote them, and ``state``, the dict of its attributes (``None``
    when the file set none)."""

    __slots__ = ("module", "name", "state")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        self.state: dict[str, object] | None = None

    def __repr__(self) -> str:
        keys = sorted(self.state) if self.state else []
        return f"<pickled {self.module}.{self.name} with {', '.join(keys) or 'no attributes'}>"


class _ObjectType:
    """Stands for ``object``, which protocols 0-1 name as the base of a reconstructed
    instance; it can be used for nothing else."""


_OBJECT_TYPE = _ObjectType()


def _safe_reconstructor(cls: object, base: object, state: object) -> PickledLayer:
    # copyreg._reconstructor(cls, object, None) is how protocols 0-1 create an instance.
    if not isinstance(cls, _LayerClass) or base is not _OBJECT_TYPE or state is not None:
        raise RefusedPickle("refused copyreg._reconstructor for anything but a layer object")
    return PickledLayer(cls.module, cls.name)


def _is_dotted_name(module: str) -> bool:
    return bool(module) and all(part.isidentifier() for part in module.split("."))


# (module, name) as written in the pickle -> the object it stands for. Nothing else is
# importable while loading a model, and each callable checks its arguments, so REDUCE can
# only build numeric dtypes and arrays whose data is in the file.
_ALLOWED_GLOBALS = {
    # What NumPy 1.x and 2.x emit for arrays of any layout at protocols 0-5.
    ("numpy", "ndarray"): _ARRAY_TYPE,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,  # NumPy 1.x, protocols 0-5
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,  # NumPy 2.x
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,  # NumPy 1.x, protocol 5
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,  # NumPy 2.x, protocol 5
    # NumPy scalars (np.float64(...)); never part of a valid model but harmless, and
    # admitting them lets such a file fail validation with a clear message.
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    # Protocols 0-2 only: how Python 3 spells bytes there (see _latin1_encode), and
    # ``bytes()`` for empty bytes (``__builtin__`` is the protocol-2 name of ``builtins``).
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    # Protocols 0-1 create a layer object as copyreg._reconstructor(cls, object, None).
    ("copy_reg", "_reconstructor"): _safe_reconstructor,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("__builtin__", "object"): _OBJECT_TYPE,
    ("builtins", "object"): _OBJECT_TYPE,
}


# -------------------------------------------------------------------- the unpickler

class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that can only build numeric NumPy arrays, dtypes and plain containers.

    It is the pure-Python unpickler (``pickle._Unpickler``), because its memo is a dict and
    its BUILD step can be checked: ``load_build`` lets state through only onto the arrays
    and dtypes the allowed globals made, in the form NumPy itself writes.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> object:
        # Called for every GLOBAL/STACK_GLOBAL opcode; the default would import ``module``
        # and return any attribute, e.g. os.system.
        if name in LAYER_CLASS_NAMES and _is_dotted_name(module):
            return _LayerClass(module, name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedPickle(
                f"refused to load global '{module}.{name}': a model file may only contain "
                f"NumPy arrays, and loading this one would import or run other code"
            ) from None

    def persistent_load(self, pid: object) -> NoReturn:  # unreachable after the pre-scan; refused regardless
        raise RefusedPickle("refused a persistent id: model files never use them")

    # (type: ignore[attr-defined] below: typeshed does not declare the pure-Python
    # unpickler's stack and load_build, which this class exists to check)
    def load_newobj(self) -> None:
        # cls.__new__(cls, *args) in the default: here only a layer record, no arguments.
        args = self.stack.pop()  # type: ignore[attr-defined]
        cls = self.stack.pop()  # type: ignore[attr-defined]
        if not isinstance(cls, _LayerClass) or args != ():
            raise RefusedPickle("refused to create an object: a model file holds only arrays "
                                "and the tutorials' layer objects")
        self.append(PickledLayer(cls.module, cls.name))  # type: ignore[attr-defined]

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]  # type: ignore[attr-defined]
        if type(inst) is PickledLayer:
            # A layer's attributes, set once, as plain data: nothing of the class runs.
            # A copy: the file's own dict stays in the memo, where later opcodes could still
            # add to it; the record keeps what was checked here.
            copied = dict(state) if isinstance(state, dict) else None
            if inst.state is not None or copied is None or not all(isinstance(k, str) for k in copied):
                raise RefusedPickle(f"refused state for a {inst.name} object: expected one dict "
                                    f"of its attributes")
            self.stack.pop()  # type: ignore[attr-defined]
            inst.state = copied
            return
        if isinstance(inst, np.dtype):
            # Only the state NumPy writes for this dtype in the stated byte order: no flags,
            # no fields, nothing else.
            order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
            if (order not in ("<", ">", "|", "=")
                    or state != inst.newbyteorder(order if order in "<>" else "=").__reduce__()[2]):
                raise RefusedPickle(f"refused dtype state {state!r}")
        elif type(inst) is np.ndarray:
            ok = isinstance(state, tuple) and len(state) == 5
            if ok:
                _, shape, dtype, _, data = state
                dtype = check_dtype(dtype)  # the same object, now known to be a dtype
                ok = isinstance(data, (bytes, bytearray)) and _data_matches(shape, dtype,
                                                                            len(data))
            if not ok:
                raise RefusedPickle("refused array state that does not match its data")
        else:
            raise RefusedPickle(f"refused to set the state of a {type(inst).__name__}")
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    # (type: ignore: dispatch's entries are called with this unpickler, not any Unpickler)
    dispatch[pickle.BUILD[0]] = load_build  # type: ignore[assignment]
    dispatch[pickle.NEWOBJ[0]] = load_newobj  # type: ignore[assignment]


def loads(raw: bytes, max_opcodes: int = MAX_OPCODES) -> object:
    """Unpickle ``raw`` (bytes) under the rules of this module's docstring.

    Returns plain data (dicts, lists, tuples, str, bytes, numbers, numeric ndarrays, and
    :class:`PickledLayer` records of layer objects).
    Raises :class:`RefusedPickle` if the file does something a model never does, and
    :class:`pickle.UnpicklingError` (or whatever the pure-Python unpickler raises on
    malformed data: ``EOFError``, ``ValueError``, ...) if it is not a well-formed pickle.
    """
    prescan(raw, max_opcodes)
    return _RestrictedUnpickler(io.BytesIO(raw)).load()
