"""Save and load the network's parameters: the tutorial's ``ModelSaver``, made safe.

A model file holds three float64 arrays:

* ``conv_filters``    -- shape ``(num_filters, 3, 3)``
* ``softmax_weights`` -- shape ``(input_len, nodes)``, e.g. ``(13 * 13 * 8, 10)`` for MNIST
* ``softmax_biases``  -- shape ``(nodes,)``

Two formats, chosen by the file name's suffix:

* ``.npz`` -- a NumPy archive of the three arrays plus ``format_version`` (int, 1), read
  with ``np.load(allow_pickle=False)``: no pickle involved at all.
* anything else (the tutorial's ``.pkl``) -- a plain pickle of the dict
  ``{'conv_filters': ..., 'softmax_weights': ..., 'softmax_biases': ...}``, the format the
  tutorial's ``ModelSaver`` writes, so each reads the other's files. It is read with a
  restricted unpickler that admits only the globals NumPy's array pickles use, so a
  malicious file cannot run code. (As with any NumPy pickle, a file written under NumPy 2
  names ``numpy._core``, which plain ``pickle.load`` under NumPy 1.x understands only from
  1.26 on; this module's loader reads files from any NumPy under any NumPy.)

Every load is validated (keys, dtypes, shapes, finiteness) before anything is returned or
assigned, and every save goes through a temporary file and ``os.replace``, so a crash
never leaves a half-written model behind.
"""
import contextlib
import io
import os
import pickle
import pickletools
import stat
import tempfile
import warnings
import zipfile

import numpy as np

__all__ = [
    "ModelSaver",
    "ModelFileError",
    "save_params",
    "load_params",
    "PARAM_KEYS",
    "PICKLE_PROTOCOL",
    "NPZ_FORMAT_VERSION",
]

PARAM_KEYS = ("conv_filters", "softmax_weights", "softmax_biases")

# Protocol 4 (Python >= 3.4) is the default of Python 3.8-3.13, i.e. what the tutorial's
# ``pickle.dump`` writes there. Protocol 5 would make NumPy reference ``_frombuffer``,
# which NumPy < 1.16 lacks, and buys nothing for files this small.
PICKLE_PROTOCOL = 4

NPZ_FORMAT_VERSION = 1
_NPZ_VERSION_KEY = "format_version"


class ModelFileError(ValueError):
    """A model file (or the arrays to save) is not a valid cnn_ext model.

    ``filename`` is the file concerned (``None`` if none). Raised instead of the raw
    ``UnpicklingError``/``EOFError``/``KeyError``/... for corrupt, truncated, foreign or
    malicious files; a missing file raises ``FileNotFoundError`` as usual.
    """

    def __init__(self, message, filename=None):
        super().__init__(message)
        self.filename = filename


# --------------------------------------------------------------------------- unpickling

# The functions NumPy's array pickles call, taken from the running NumPy. NumPy 2 moved
# numpy.core to numpy._core; old files name the old module, new files the new one, and both
# must resolve to the objects of whichever NumPy is installed.
if int(np.__version__.split(".")[0]) >= 2:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
    from numpy._core.numeric import _frombuffer as _np_frombuffer
else:  # pragma: no cover - exercised only under NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.multiarray import scalar as _np_scalar
    from numpy.core.numeric import _frombuffer as _np_frombuffer


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    """Stand-in for ``_codecs.encode`` that only does what pickle needs it for.

    Python 3 writes ``bytes`` at protocols 0-2 as ``_codecs.encode(text, 'latin1')``
    (NumPy arrays' raw data included). The real function accepts any codec name, and
    looking a codec up can import modules, so only that one exact use is allowed.
    """
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise _RefusedGlobal(f"refused _codecs.encode with encoding {encoding!r} "
                             f"(model pickles use it only to encode bytes as 'latin1')")
    return obj.encode("latin1")


class _RefusedGlobal(pickle.UnpicklingError):
    pass


# Kinds of array data a model may hold: signed and unsigned integers, floats.
_NUMERIC_KINDS = "iuf"


def _check_dtype(dtype):
    """Refuse anything but a plain numeric dtype in its canonical state.

    A crafted BUILD could otherwise give a float64 dtype the flags of an object dtype,
    and arrays using it crash NumPy when they are read or freed.
    """
    if (not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS
            or dtype.fields is not None or dtype.subdtype is not None
            or dtype.flags != np.dtype(dtype.str).flags):
        raise _RefusedGlobal(f"refused array dtype {dtype!r}: model arrays hold plain integers "
                             f"or floats")
    return dtype


def _safe_dtype(obj, align=False, copy=False):
    """``numpy.dtype(obj, align, copy)`` for the type codes of numeric arrays only."""
    if not isinstance(obj, str):
        raise _RefusedGlobal(f"refused numpy.dtype({obj!r}): model arrays hold plain integers "
                             f"or floats")
    dtype = np.dtype(obj)
    if dtype.kind not in _NUMERIC_KINDS:
        raise _RefusedGlobal(f"refused an array of dtype {dtype}: model arrays hold plain "
                             f"integers or floats")
    return np.dtype(obj, bool(align), bool(copy))


class _ArrayType:
    """Stands for ``numpy.ndarray`` in a pickle: only ``_reconstruct`` may use it.

    It is not callable, so ``REDUCE numpy.ndarray (shape,)`` — an array of uninitialised
    memory of any size, named by a few bytes — cannot be built.
    """


_ARRAY_TYPE = _ArrayType()


def _safe_reconstruct(subtype, shape, typecode):
    # NumPy pickles an array as _reconstruct(ndarray, (0,), b'b') followed by a BUILD that
    # sets its shape, dtype and data (checked in _RestrictedUnpickler.load_build).
    if subtype is not _ARRAY_TYPE or tuple(shape) != (0,) or typecode != b"b":
        raise _RefusedGlobal("refused an array reconstruction that NumPy's own pickles never "
                             "write")
    return _np_reconstruct(np.ndarray, (0,), b"b")


def _safe_frombuffer(buffer, dtype, shape, order):
    # Protocol 5: an array over the pickle's own bytes, whose size must match exactly.
    _check_dtype(dtype)
    shape = tuple(shape)
    if (not all(isinstance(n, int) and n >= 0 for n in shape)
            or int(np.prod(shape, dtype=object)) * dtype.itemsize != memoryview(buffer).nbytes):
        raise _RefusedGlobal(f"refused an array of shape {shape} over {memoryview(buffer).nbytes} "
                             f"bytes of data")
    return _np_frombuffer(buffer, dtype, shape, order)


def _safe_scalar(dtype, data):
    _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _RefusedGlobal("refused a NumPy scalar with the wrong amount of data")
    return _np_scalar(dtype, data)


def _empty_bytes(*args):
    # Protocols 0-2 write b"" as bytes(); bytes(n) would allocate n zero bytes.
    if args:
        raise _RefusedGlobal("refused bytes() with arguments (model pickles only use bytes())")
    return b""


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
    # No other builtin is needed: dicts, lists, tuples, str and numbers have their own
    # opcodes.
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}

_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


def _prescan(raw):
    """Walk the opcodes without executing any, and refuse what could exhaust memory.

    A memo index can only refer to something stored before it, so it is below the count
    of opcodes read so far; a larger one (``LONG_BINPUT 2**30`` in a 12-byte file makes an
    unpickler reserve gigabytes) is refused. ``genops`` also refuses lengths that run past
    the end of the file, before anything is allocated for them.
    """
    count = 0
    try:
        with warnings.catch_warnings():  # protocol-0 strings in a damaged file warn
            warnings.simplefilter("ignore", DeprecationWarning)
            opcodes = list(pickletools.genops(raw))
        for opcode, arg, _ in opcodes:
            count += 1
            if opcode.name in _MEMO_OPCODES and int(arg) > count:
                raise pickle.UnpicklingError(f"memo index {arg} after only {count} opcodes")
    except pickle.UnpicklingError:
        raise
    except Exception as exc:
        raise pickle.UnpicklingError(f"{type(exc).__name__}: {exc}") from None


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that can only build numeric NumPy arrays, dtypes and plain containers.

    It is the pure-Python unpickler (``pickle._Unpickler``), because its memo is a dict and
    its BUILD step can be checked: ``load_build`` lets state through only onto the arrays
    and dtypes the allowed globals made, in the form NumPy itself writes.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        # Called for every GLOBAL/STACK_GLOBAL/INST/EXT opcode; the default would import
        # ``module`` and return any attribute, e.g. os.system.
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"refused to load global '{module}.{name}': a model file may only contain "
                f"NumPy arrays, and loading this one would import or run other code"
            ) from None

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.dtype):
            # Only the state NumPy writes for this dtype in the stated byte order: no flags,
            # no fields, nothing else.
            order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
            if (order not in ("<", ">", "|", "=")
                    or state != inst.newbyteorder(order if order in "<>" else "=").__reduce__()[2]):
                raise _RefusedGlobal(f"refused dtype state {state!r}")
        elif type(inst) is np.ndarray:
            ok = isinstance(state, tuple) and len(state) == 5
            if ok:
                _, shape, dtype, _, data = state
                _check_dtype(dtype)
                ok = (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
                      and isinstance(data, (bytes, bytearray))
                      and int(np.prod(shape, dtype=object)) * dtype.itemsize == len(data))
            if not ok:
                raise _RefusedGlobal("refused array state that does not match its data")
        else:
            raise _RefusedGlobal(f"refused to set the state of a {type(inst).__name__}")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


# ------------------------------------------------------------------------- validation

def _describe(value):
    return type(value).__name__


def _check_arrays(arrays, filename, expected_shapes=None, saving=False):
    """Validated float64 C-contiguous writable copies of the three arrays.

    ``arrays`` must be a dict with exactly ``PARAM_KEYS``. When loading, the values must
    be ndarrays; when ``saving``, anything ``np.asarray`` accepts. Shapes are checked
    before the data is converted or scanned, so a file that declares a huge array is
    refused before any work is done on it.
    """
    where = f"cannot save {filename}" if saving else filename
    if not isinstance(arrays, dict):
        raise ModelFileError(
            f"{where}: expected a dict with keys {', '.join(map(repr, PARAM_KEYS))}, "
            f"found {_describe(arrays)}", filename)
    missing = [k for k in PARAM_KEYS if k not in arrays]
    if missing:
        raise ModelFileError(f"{where}: missing key(s) {', '.join(map(repr, missing))}",
                             filename)
    extra = [k for k in arrays if k not in PARAM_KEYS]
    if extra:
        raise ModelFileError(
            f"{where}: unexpected key(s) {', '.join(map(repr, extra))} "
            f"(expected exactly {', '.join(map(repr, PARAM_KEYS))})", filename)

    checked = {}
    for key in PARAM_KEYS:
        value = arrays[key]
        if not saving and not isinstance(value, np.ndarray):
            raise ModelFileError(f"{where}: {key!r} must be a NumPy array, found "
                                 f"{_describe(value)}", filename)
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:  # e.g. ragged nested lists
            raise ModelFileError(f"{where}: {key!r} is not an array: {exc}", filename) from None
        # Signed/unsigned integers and floats only: bool, complex, object, str, bytes,
        # structured and datetime arrays are not weights.
        if value.dtype.kind not in _NUMERIC_KINDS or value.dtype.flags != np.dtype(value.dtype.str).flags:
            raise ModelFileError(f"{where}: {key!r} must be a real-valued numeric array, "
                                 f"found dtype {value.dtype}", filename)
        checked[key] = value

    filters, weights, biases = (checked[k] for k in PARAM_KEYS)
    if filters.ndim != 3 or filters.shape[1:] != (3, 3) or filters.shape[0] < 1:
        raise ModelFileError(f"{where}: 'conv_filters' must have shape (num_filters, 3, 3), "
                             f"found {filters.shape}", filename)
    if weights.ndim != 2 or 0 in weights.shape:
        raise ModelFileError(f"{where}: 'softmax_weights' must have shape (input_len, nodes), "
                             f"found {weights.shape}", filename)
    if biases.shape != (weights.shape[1],):
        raise ModelFileError(f"{where}: 'softmax_biases' must have shape (nodes,) = "
                             f"{(weights.shape[1],)} to match 'softmax_weights' "
                             f"{weights.shape}, found {biases.shape}", filename)
    if expected_shapes:
        for key in PARAM_KEYS:
            expected = expected_shapes.get(key)
            if expected is not None and checked[key].shape != tuple(expected):
                raise ModelFileError(f"{where}: {key!r} has shape {checked[key].shape} but "
                                     f"the layer expects {tuple(expected)}", filename)

    result = {}
    for key in PARAM_KEYS:
        # Always a copy: the caller owns the result, and arrays unpickled at protocol 5
        # are read-only views of the file's bytes. longdouble may overflow to inf here,
        # which the finiteness check below reports.
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.array(checked[key], dtype=np.float64, order="C", copy=True)
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ModelFileError(f"{where}: {key!r} contains {bad} non-finite value(s) "
                                 f"(NaN or inf)", filename)
        result[key] = array
    return result


# ------------------------------------------------------------------------ file formats

def _is_npz(filename):
    return os.fspath(filename).lower().endswith(".npz")


def _read_pickle(raw, filename):
    if not raw:
        raise ModelFileError(f"{filename}: the file is empty", filename)
    try:
        _prescan(raw)
        return _RestrictedUnpickler(io.BytesIO(raw)).load()
    except _RefusedGlobal as exc:
        raise ModelFileError(f"{filename}: {exc}", filename) from None
    except Exception as exc:  # anything a damaged or foreign file can provoke
        hint = ""
        if raw.startswith(b"PK\x03\x04"):
            hint = "; it looks like a .npz archive: give it a .npz suffix"
        raise ModelFileError(
            f"{filename}: not a readable model pickle (corrupt, truncated or not a pickle: "
            f"{type(exc).__name__}: {exc}){hint}", filename) from exc


def _npz_headers(archive, filename, expected_shapes):
    """Check every member's .npy header against its size before any data is read.

    A small compressed archive can claim arrays of any size: the shapes are compared with
    the layers' (when known) and with the bytes each member really holds, so a "zip bomb"
    is refused before it is inflated.
    """
    for info in archive.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            header = f.tell()
        if dtype.hasobject:
            raise ModelFileError(f"{filename}: {key!r} holds Python objects: object arrays "
                                 f"are refused (reading them would need pickle)", filename)
        if key in PARAM_KEYS and dtype.kind not in _NUMERIC_KINDS:
            raise ModelFileError(f"{filename}: {key!r} must be a real-valued numeric array, "
                                 f"found dtype {dtype}", filename)
        expected = (expected_shapes or {}).get(key)
        if expected is not None and tuple(shape) != tuple(expected):
            raise ModelFileError(f"{filename}: {key!r} has shape {tuple(shape)} but the layer "
                                 f"expects {tuple(expected)}", filename)
        if header + int(np.prod(shape, dtype=object)) * dtype.itemsize != info.file_size:
            raise ModelFileError(f"{filename}: {key!r} claims shape {tuple(shape)} but holds "
                                 f"{info.file_size - header} bytes of data", filename)


def _read_npz(raw, filename, expected_shapes=None):
    if not raw:
        raise ModelFileError(f"{filename}: the file is empty", filename)
    if not raw.startswith(b"PK"):
        # np.load would otherwise try other formats (.npy, pickle) on this file.
        hint = "; it looks like a pickle: give it a .pkl suffix" if raw[:1] == b"\x80" else ""
        raise ModelFileError(f"{filename}: not a .npz archive{hint}", filename)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            _npz_headers(archive, filename, expected_shapes)
        # allow_pickle=False: an object array inside the archive is refused, not unpickled.
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            members = {name: npz[name] for name in npz.files}
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{filename}: not a readable .npz model (corrupt, truncated or "
                             f"containing object arrays: {type(exc).__name__}: {exc})",
                             filename) from exc

    if _NPZ_VERSION_KEY not in members:
        raise ModelFileError(f"{filename}: no {_NPZ_VERSION_KEY!r} entry; not a cnn_ext "
                             f".npz model", filename)
    version = members.pop(_NPZ_VERSION_KEY)
    if (version.shape != () or version.dtype.kind not in "iu"
            or int(version) != NPZ_FORMAT_VERSION):
        shown = version.item() if version.shape == () else version.tolist()
        raise ModelFileError(f"{filename}: unsupported {_NPZ_VERSION_KEY} {shown!r} (this "
                             f"cnn_ext reads version {NPZ_FORMAT_VERSION})", filename)
    return members


def load_params(filename, *, expected_shapes=None):
    """Read and validate a model file; return ``{key: array}`` for the three ``PARAM_KEYS``.

    The format follows the suffix: ``.npz`` is read with ``np.load(allow_pickle=False)``,
    anything else as the tutorial's pickle through the restricted unpickler. Returned
    arrays are fresh float64, C-contiguous, writable. ``expected_shapes`` (optional dict
    key -> shape tuple) adds exact shape checks, e.g. against existing layers.

    Raises ``FileNotFoundError`` if the file does not exist and ``ModelFileError`` if it is
    not a valid model (other ``OSError`` such as permission errors propagate).
    """
    filename = os.fspath(filename)
    with open(filename, "rb") as f:
        # Read first, parse after: I/O errors stay OSError, parsing errors become
        # ModelFileError.
        raw = f.read()
    if _is_npz(filename):
        data = _read_npz(raw, filename, expected_shapes)
    else:
        data = _read_pickle(raw, filename)
    return _check_arrays(data, filename, expected_shapes)


# ------------------------------------------------------------------------------ saving

def _current_umask():
    # os.umask can only be read by changing it, which races with other threads; Linux
    # exposes it in /proc, so ask there first.
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    # Makes the rename itself durable. POSIX only: Windows cannot open a directory.
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file, then move it onto ``path``.

    Either the new file is complete at ``path`` or the old one is untouched: the
    temporary file lives in the same folder (so ``os.replace`` is an atomic rename), is
    fsynced before the rename, and is removed on any exception, KeyboardInterrupt included.
    """
    # Write through a symlink like open() would, instead of replacing the link itself.
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.name == "posix":
            # mkstemp creates files 0600; give the model the permissions open() would have
            # (the old file's, or the umask default for a new one).
            try:
                mode = stat.S_IMODE(os.stat(target).st_mode)
            except FileNotFoundError:
                mode = 0o666 & ~_current_umask()
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def save_params(filename, conv_filters, softmax_weights, softmax_biases):
    """Validate the three arrays and write them atomically to ``filename``.

    ``conv_filters`` ``(num_filters, 3, 3)``, ``softmax_weights`` ``(input_len, nodes)``,
    ``softmax_biases`` ``(nodes,)``: real numeric and finite, stored as float64. A
    ``.npz`` suffix writes the pickle-free archive (plus ``format_version`` = 1), any other
    name the tutorial's pickle (protocol ``PICKLE_PROTOCOL``). Raises ``ModelFileError`` on
    invalid arrays, before the file is touched.
    """
    filename = os.fspath(filename)
    arrays = _check_arrays(
        {"conv_filters": conv_filters, "softmax_weights": softmax_weights,
         "softmax_biases": softmax_biases},
        filename, saving=True)

    if _is_npz(filename):
        def write(f):
            # Given a file object, np.savez writes exactly there (no suffix appended).
            np.savez(f, **arrays,
                     **{_NPZ_VERSION_KEY: np.array(NPZ_FORMAT_VERSION, dtype=np.int64)})
    else:
        def write(f):
            # A plain dict of ndarrays, key order as the tutorial's: its pickle.load reads it.
            pickle.dump(arrays, f, protocol=PICKLE_PROTOCOL)

    _atomic_write(filename, write)


# -------------------------------------------------------------------------- ModelSaver

class ModelSaver:
    """The tutorial's ``ModelSaver`` (same API and messages), safe to use on any file.

    ``ModelSaver(model_name='MNIST_CNN')`` saves to and loads from ``f'{model_name}.pkl'``
    as the tutorial did, in a format the tutorial's own ``ModelSaver`` reads and writes.
    If ``model_name`` ends with ``.npz`` it is the file name itself and the pickle-free
    ``.npz`` format is used instead (``ModelSaver('MNIST_CNN.npz')`` -> ``MNIST_CNN.npz``).
    The name is relative to the current directory unless absolute.

    Layers are duck-typed: ``conv`` needs ``filters``, ``softmax`` needs ``weights`` and
    ``biases`` (float64 arrays); ``pool`` is accepted for compatibility and unused.
    """

    def __init__(self, model_name='MNIST_CNN'):
        self.model_name = model_name

    @property
    def filename(self):
        """The file used: ``model_name`` if it ends with ``.npz``, else ``model_name + '.pkl'``."""
        name = f'{self.model_name}'
        return name if _is_npz(name) else f'{name}.pkl'

    def save(self, conv, pool, softmax):
        """Write ``conv.filters``, ``softmax.weights``, ``softmax.biases`` atomically.

        Prints ``保存参数到{filename}``. Raises ``ModelFileError`` (nothing written) if an
        array has the wrong shape or dtype or is not finite.
        """
        filename = self.filename
        save_params(filename, conv.filters, softmax.weights, softmax.biases)
        print(f"保存参数到{filename}")

    def load(self, conv, pool, softmax):
        """Load the file into the layers; return ``True``, or ``False`` if it does not exist.

        Prints ``模型参数加载成功`` or ``无可用模型参数``. The arrays must match the layers'
        current shapes (a 16-filter model does not load into an 8-filter layer); on any
        problem ``ModelFileError`` is raised and the layers are left untouched.
        """
        filename = self.filename
        expected = {
            'conv_filters': np.shape(conv.filters),
            'softmax_weights': np.shape(softmax.weights),
            'softmax_biases': np.shape(softmax.biases),
        }
        try:
            params = load_params(filename, expected_shapes=expected)
        except FileNotFoundError:
            print("无可用模型参数")
            return False
        old = (conv.filters, softmax.weights, softmax.biases)
        try:
            conv.filters = params['conv_filters']
            softmax.weights = params['softmax_weights']
            softmax.biases = params['softmax_biases']
        except BaseException:
            # A layer whose setter refuses a value must not be left half-updated.
            conv.filters, softmax.weights, softmax.biases = old
            raise
        print("模型参数加载成功")
        return True
