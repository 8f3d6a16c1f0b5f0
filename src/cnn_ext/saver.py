"""Save and load the network's parameters: the tutorial's ``ModelSaver``, made safe.

A model file holds three float64 arrays:

* ``conv_filters``    -- shape ``(num_filters, 3, 3)``
* ``softmax_weights`` -- shape ``(input_len, nodes)``, e.g. ``(13 * 13 * 8, 10)`` for MNIST
* ``softmax_biases``  -- shape ``(nodes,)``

Names: :func:`model_filename` (and ``ModelSaver.filename``) takes a name ending in
``.pkl`` or ``.npz`` (any case) literally and appends ``.pkl`` to any other, as the
tutorial did (``'MNIST_CNN'`` -> ``MNIST_CNN.pkl``, ``'m.pkl'`` -> ``m.pkl``).
The functions taking a ``filename`` use it as given.

Two formats, chosen by the file name's suffix:

* ``.npz`` -- a NumPy archive of the three arrays plus ``format_version`` (int, 1), read
  with ``np.load(allow_pickle=False)``: no pickle involved at all.
* anything else (the tutorial's ``.pkl``) -- a plain pickle of the dict
  ``{'conv_filters': ..., 'softmax_weights': ..., 'softmax_biases': ...}``, the format the
  tutorial's ``ModelSaver`` writes, so each reads the other's files. It is read with the
  restricted unpickler of ``cnn_ext._safe_pickle``, which admits only what NumPy's array
  pickles use, so a malicious file cannot run code. (As with any NumPy pickle, a file
  written under NumPy 2 names ``numpy._core``, which plain ``pickle.load`` under NumPy 1.x
  understands only from 1.26 on; this module's loader reads files from any NumPy.)
  Pickles of layer objects, as learners' scripts write them (``pickle.dump([conv, pool,
  softmax], f)``, or a dict or tuple of the layers), load too: the layers are read as
  plain records, never as objects of their class, and only ``filters``, ``weights`` and
  ``biases`` are kept (see ``_params_from_layers``). Saving always writes the dict.

Bounds: a model file is a regular file of at most ``MAX_MODEL_BYTES`` (64 MiB, about 600
times the tutorial's 110 kB model); it holds at most ``MAX_NUM_FILTERS`` filters and
``MAX_NODES`` classes, ``input_len`` is a multiple of ``num_filters`` (the pooled image
area times the filters), and the three arrays together hold at most ``MAX_PARAM_BYTES`` of
float64 (63 MiB: e.g. 1024 filters and 10 classes on 28x28 images is 14 MB). These are
checked on the declared shapes before any array is built, and on saving.

Every load is validated (keys, dtypes, shapes, finiteness) before anything is returned or
assigned, and every save goes through a temporary file ``.NAME.XXXXXXXX.tmp`` in the same
folder and ``os.replace``, so a crash never leaves a half-written model behind; temporary
files left by a killed save are removed by the next save of the same model.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import re
import stat
import struct
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np

from . import _safe_pickle
from ._aligned import aligned_float64
from ._files import file_kind as _file_kind, open_regular
from ._safe_pickle import NUMERIC_KINDS as _NUMERIC_KINDS

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which protects it
    fcntl = None  # type: ignore[assignment]  # tested with `fcntl is None` where it is used

__all__ = [
    "ModelSaver",
    "ModelFileError",
    "ModelWriteError",
    "save_params",
    "load_params",
    "check_writable",
    "model_filename",
    "PARAM_KEYS",
    "PICKLE_PROTOCOL",
    "NPZ_FORMAT_VERSION",
    "MAX_MODEL_BYTES",
    "MAX_PARAM_BYTES",
    "MAX_NUM_FILTERS",
    "MAX_NODES",
]

PARAM_KEYS = ("conv_filters", "softmax_weights", "softmax_biases")

# Protocol 4 (Python >= 3.4) is the default of Python 3.8-3.13, i.e. what the tutorial's
# ``pickle.dump`` writes there. Protocol 5 would make NumPy reference ``_frombuffer``,
# which NumPy < 1.16 lacks, and buys nothing for files this small.
PICKLE_PROTOCOL = 4

NPZ_FORMAT_VERSION = 1
_NPZ_VERSION_KEY = "format_version"

MiB = 1024 * 1024
# Largest model file read (and written). The tutorial's model is 110 kB; the largest
# arrays allowed below (MAX_PARAM_BYTES) fit with 1 MiB to spare for the container (a
# protocol-4 pickle adds ~400 bytes, an .npz ~1 kB; old protocol-0 files of the same data
# are up to 4x larger and fit as long as they stay under this size).
MAX_MODEL_BYTES = 64 * MiB
MAX_PARAM_BYTES = MAX_MODEL_BYTES - MiB
MAX_NUM_FILTERS = 1024  # the tutorial uses 8
MAX_NODES = 1024  # classes: 10 for MNIST, 1000 for ImageNet

# A temporary file of a save is removed by a later save only if no process holds its lock
# and it was last modified this long ago (see _remove_stale_temporaries).
STALE_TEMP_SECONDS = 5.0

if TYPE_CHECKING:
    import numpy.typing as npt

    # What ModelSaver needs of the layers (duck-typed: the tutorial's own classes do too).
    class _HasFilters(Protocol):
        filters: npt.NDArray[np.float64]

    class _HasWeights(Protocol):
        weights: npt.NDArray[np.float64]
        biases: npt.NDArray[np.float64]


class ModelFileError(ValueError):
    """A model file (or the arrays to save) is not a valid cnn_ext model.

    ``filename`` is the file concerned (``None`` if none). Raised instead of the raw
    ``UnpicklingError``/``EOFError``/``KeyError``/... for corrupt, truncated, foreign or
    malicious files, for paths that are not regular files (directories, FIFOs, devices)
    and for files or shapes over the bounds above; a missing file raises
    ``FileNotFoundError`` as usual.
    """

    def __init__(self, message: str, filename: str | None = None) -> None:
        super().__init__(message)
        self.filename = filename


class ModelWriteError(ModelFileError, OSError):
    """A model cannot be written at ``filename``: missing folder, a directory or other
    non-regular file in the way, no permission, read-only file, disk full, ...

    Both a :class:`ModelFileError` and an :class:`OSError` (``errno`` is set when known).
    ``str(exc)`` is one line: ``cannot save FILE: what is wrong``.
    """

    def __init__(self, message: str, filename: str | None = None, errno: int | None = None) -> None:
        ModelFileError.__init__(self, message, filename)
        self.errno = errno
        self.strerror = message
        self.filename = filename  # OSError's slot, set after its own __init__ ran

    def __str__(self) -> str:
        message: str = self.args[0]
        return message


class ModelPermissionError(ModelWriteError, PermissionError):
    """A :class:`ModelWriteError` whose cause is a permission (EACCES, EPERM): a read-only
    folder or file. Also a ``PermissionError``, which the tutorial's users catch.

    The hierarchy: ``ModelFileError`` (a ``ValueError``) > ``ModelWriteError`` (also an
    ``OSError``) > ``ModelPermissionError`` (also a ``PermissionError``).
    """


# ------------------------------------------------------------------------- validation

def _describe(value: object) -> str:
    return type(value).__name__


def _check_shapes(shapes: Mapping[str, tuple[int, ...]], where: str, filename: str | None,
                  expected_shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
    """Check the three declared shapes against each other and the bounds; no data needed.

    ``shapes`` maps each of ``PARAM_KEYS`` to a tuple of ints. Called on the shapes a file
    declares before its arrays are built (.npz headers) or converted (pickles), and on the
    arrays to save.
    """
    filters, weights, biases = (tuple(shapes[k]) for k in PARAM_KEYS)
    if len(filters) != 3 or filters[1:] != (3, 3) or filters[0] < 1:
        raise ModelFileError(f"{where}: 'conv_filters' must have shape (num_filters, 3, 3), "
                             f"found {filters}", filename)
    if len(weights) != 2 or 0 in weights:
        raise ModelFileError(f"{where}: 'softmax_weights' must have shape (input_len, nodes), "
                             f"found {weights}", filename)
    if biases != (weights[1],):
        raise ModelFileError(f"{where}: 'softmax_biases' must have shape (nodes,) = "
                             f"{(weights[1],)} to match 'softmax_weights' "
                             f"{weights}, found {biases}", filename)
    if expected_shapes:
        for key, shape in zip(PARAM_KEYS, (filters, weights, biases)):
            expected = expected_shapes.get(key)
            if expected is not None and shape != tuple(expected):
                raise ModelFileError(f"{where}: {key!r} has shape {shape} but "
                                     f"the layer expects {tuple(expected)}", filename)
    num_filters, (input_len, nodes) = filters[0], weights
    if num_filters > MAX_NUM_FILTERS:
        raise ModelFileError(f"{where}: {num_filters} filters, more than the "
                             f"{MAX_NUM_FILTERS} a model may have", filename)
    if nodes > MAX_NODES:
        raise ModelFileError(f"{where}: {nodes} softmax nodes (classes), more than the "
                             f"{MAX_NODES} a model may have", filename)
    if input_len % num_filters:
        raise ModelFileError(
            f"{where}: 'softmax_weights' has {input_len} rows, which is not a multiple of the "
            f"{num_filters} filters (it must be pooled height * pooled width * num_filters, "
            f"e.g. 13 * 13 * {num_filters} = {169 * num_filters} for 28x28 images)", filename)
    nbytes = 8 * (9 * num_filters + input_len * nodes + nodes)
    if nbytes > MAX_PARAM_BYTES:
        raise ModelFileError(f"{where}: the arrays would hold {nbytes / MiB:,.1f} MiB of "
                             f"float64, more than the {MAX_PARAM_BYTES // MiB} MiB a model "
                             f"file may hold", filename)


def _check_arrays(arrays: object, filename: str, expected_shapes: Mapping[str, tuple[int, ...]] | None = None,
                  saving: bool = False) -> dict[str, npt.NDArray[np.float64]]:
    """Validated float64 C-contiguous writable copies of the three arrays.

    ``arrays`` must be a dict with exactly ``PARAM_KEYS``. When loading, the values must
    be ndarrays; when ``saving``, anything ``np.asarray`` accepts. Shapes and bounds are
    checked before the data is converted or scanned, so a file that declares a huge array
    is refused before any work is done on it.
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

    _check_shapes({k: v.shape for k, v in checked.items()}, where, filename, expected_shapes)

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


# ------------------------------------------------------------------------------ names

def model_filename(name: str | os.PathLike[str]) -> str:
    """The file of model ``name`` (str or path-like) as ``ModelSaver`` uses it (a str).

    A name ending in ``.pkl`` or ``.npz`` (any case) is the file name itself; any other
    name gets ``.pkl`` appended, as in the tutorial: ``'MNIST_CNN'`` -> ``'MNIST_CNN.pkl'``,
    ``'m.pkl'`` -> ``'m.pkl'``, ``'m.npz'`` -> ``'m.npz'``, ``'m.v2'`` -> ``'m.v2.pkl'``.
    """
    name = f'{os.fspath(name) if isinstance(name, os.PathLike) else name}'
    return name if name.lower().endswith((".pkl", ".npz")) else f'{name}.pkl'


# ------------------------------------------------------------------------ file formats

def _is_npz(filename: str | os.PathLike[str]) -> bool:
    return os.fspath(filename).lower().endswith(".npz")


def _read_pickle(raw: bytes, filename: str) -> object:
    if not raw:
        raise ModelFileError(f"{filename}: the file is empty", filename)
    try:
        return _safe_pickle.loads(raw)
    except _safe_pickle.RefusedPickle as exc:
        raise ModelFileError(f"{filename}: {exc}", filename) from None
    except Exception as exc:  # anything a damaged or foreign file can provoke
        hint = ""
        if raw.startswith(b"PK\x03\x04"):
            hint = "; it looks like a .npz archive: give it a .npz suffix"
        raise ModelFileError(
            f"{filename}: not a readable model pickle (corrupt, truncated or not a pickle: "
            f"{type(exc).__name__}: {exc}){hint}", filename) from exc


def _describe_item(value: object) -> str:
    if isinstance(value, _safe_pickle.PickledLayer):
        return f"a {value.name} object"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _params_from_layers(data: object, filename: str) -> object:
    """The three arrays of a pickle of layer objects, or ``data`` itself if it holds none.

    Learners' scripts often save ``pickle.dump([conv, pool, softmax], f)`` (a list, tuple
    or dict of the layers, or one layer). The restricted unpickler reads such objects as
    :class:`~cnn_ext._safe_pickle.PickledLayer` records; of those, one ``Conv3x3`` gives
    ``filters`` and one ``Softmax`` its ``weights`` and ``biases`` (checked afterwards like
    any model's arrays), a ``MaxPool2`` has none, and every other attribute is dropped.
    Plain numbers and text beside the layers (an epoch count, a note) are ignored.
    """
    if isinstance(data, _safe_pickle.PickledLayer):
        items: list[object] = [data]
    elif isinstance(data, (list, tuple)):
        items = list(data)
    elif isinstance(data, dict):
        items = list(data.values())
    else:
        return data
    layers = [v for v in items if isinstance(v, _safe_pickle.PickledLayer)]
    if not layers:
        return data
    found = ", ".join(_describe_item(v) for v in items)
    todo = (" Load it with the layers' own script, then save it again with "
            "cnn_ext.ModelSaver, which writes the three arrays.")
    other = [v for v in items if not isinstance(v, (_safe_pickle.PickledLayer, int, float, str,
                                                    type(None)))]
    if other:
        raise ModelFileError(f"{filename}: holds layer objects together with "
                             f"{', '.join(_describe_item(v) for v in other)}; a model of layer "
                             f"objects may hold one Conv3x3, one Softmax and at most one "
                             f"MaxPool2 (found {found}).{todo}", filename)
    by_name: dict[str, list[_safe_pickle.PickledLayer]] = {}
    for layer in layers:
        by_name.setdefault(layer.name, []).append(layer)
    if len(by_name.get("Conv3x3", [])) != 1 or len(by_name.get("Softmax", [])) != 1 \
            or len(by_name.get("MaxPool2", [])) > 1:
        raise ModelFileError(f"{filename}: holds {found}; a model of layer objects needs "
                             f"exactly one Conv3x3 and one Softmax (and at most one "
                             f"MaxPool2).{todo}", filename)
    conv, softmax = by_name["Conv3x3"][0], by_name["Softmax"][0]
    params = {}
    for layer, attribute, key in ((conv, "filters", "conv_filters"),
                                  (softmax, "weights", "softmax_weights"),
                                  (softmax, "biases", "softmax_biases")):
        state = layer.state or {}
        if attribute not in state:
            raise ModelFileError(f"{filename}: the pickled {layer.module}.{layer.name} object "
                                 f"has no {attribute!r} (its attributes: "
                                 f"{', '.join(sorted(state)) or 'none'}).{todo}", filename)
        params[key] = state[attribute]
    return params


# A cnn_ext .npz has exactly these members; anything else is refused before it is read.
_NPZ_MEMBERS = {f"{k}.npy" for k in (*PARAM_KEYS, _NPZ_VERSION_KEY)}


# A model archive's central directory (4 entries) is about 250 bytes. Small archives with
# a few extra entries pass, so that _npz_headers names the unexpected keys.
_MAX_NPZ_ENTRIES = 16
_MAX_NPZ_DIRECTORY = 64 * 1024
_EOCD = struct.Struct("<4s4H2LH")  # zip's end of central directory record


def _check_npz_directory(raw: bytes, filename: str) -> None:
    """Refuse an archive whose central directory no model has, before ``zipfile`` parses it.

    ``zipfile.ZipFile`` builds a ``ZipInfo`` for every entry of the central directory
    first: a 60 MiB archive of 730,000 empty entries costs it ~470 MB and ~10 s. The end
    record, found as ``zipfile`` finds it (at the very end, or before a comment), states the
    directory's size and entry count; a Zip64 archive (for more than 65,535 entries or
    4 GiB) is never a model.
    """
    at = len(raw) - _EOCD.size
    if raw[at:at + 4] != b"PK\x05\x06":
        at = raw.rfind(b"PK\x05\x06", max(0, len(raw) - _EOCD.size - 0xFFFF))
    if at < 0 or len(raw) - at < _EOCD.size:
        return  # no end record: zipfile reports the archive as broken
    _, _, _, _, entries, size, _, _ = _EOCD.unpack_from(raw, at)
    zip64 = at >= 20 and raw[at - 20:at - 16] == b"PK\x06\x07"
    if zip64 or entries > _MAX_NPZ_ENTRIES or size > _MAX_NPZ_DIRECTORY:
        shown = "a Zip64 archive" if zip64 else f"{entries} entries in {size:,} bytes of directory"
        raise ModelFileError(f"{filename}: not a cnn_ext .npz model ({shown}; a model has "
                             f"{len(_NPZ_MEMBERS)} entries)", filename)


def _npz_headers(archive: zipfile.ZipFile, filename: str,
                 expected_shapes: Mapping[str, tuple[int, ...]] | None) -> None:
    """Check every member's .npy header before any data is read.

    A small compressed archive can claim arrays of any size: the declared shapes are
    checked against each other and the bounds (``_check_shapes``), against the layers'
    (when known) and against the bytes each member says it holds, so a "zip bomb" is
    refused before it is inflated and no array is allocated for a shape no model has.
    """
    infos = archive.infolist()
    names = [info.filename for info in infos]
    unexpected = [n for n in names if n not in _NPZ_MEMBERS]
    if unexpected or len(names) != len(set(names)):
        shown = ", ".join(repr(n[:-4] if n.endswith(".npy") else n) for n in unexpected[:5])
        raise ModelFileError(f"{filename}: unexpected key(s) {shown or '(duplicates)'} "
                             f"(expected exactly {', '.join(map(repr, PARAM_KEYS))} and "
                             f"{_NPZ_VERSION_KEY!r})", filename)
    shapes = {}
    for info in infos:
        key = info.filename[:-4]
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
        if key == _NPZ_VERSION_KEY and int(np.prod(shape, dtype=object)) > 16:
            raise ModelFileError(f"{filename}: unsupported {_NPZ_VERSION_KEY} of shape "
                                 f"{tuple(shape)}", filename)
        if header + int(np.prod(shape, dtype=object)) * dtype.itemsize != info.file_size:
            raise ModelFileError(f"{filename}: {key!r} claims shape {tuple(shape)} but holds "
                                 f"{info.file_size - header} bytes of data", filename)
        shapes[key] = tuple(shape)
    if all(k in shapes for k in PARAM_KEYS):  # missing keys: reported after reading
        _check_shapes(shapes, filename, filename, expected_shapes)


def _read_npz(raw: bytes, filename: str, expected_shapes: Mapping[str, tuple[int, ...]] | None = None
              ) -> dict[str, npt.NDArray[Any]]:
    if not raw:
        raise ModelFileError(f"{filename}: the file is empty", filename)
    if not raw.startswith(b"PK"):
        # np.load would otherwise try other formats (.npy, pickle) on this file.
        hint = "; it looks like a pickle: give it a .pkl suffix" if raw[:1] == b"\x80" else ""
        raise ModelFileError(f"{filename}: not a .npz archive{hint}", filename)
    _check_npz_directory(raw, filename)
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


def _not_regular(filename: str, mode: int) -> ModelFileError:
    return ModelFileError(f"{filename}: is {_file_kind(mode)}, not a model file (a model is "
                          f"a regular file)", filename)


def _read_model_bytes(filename: str) -> bytes:
    """The bytes of ``filename``: a regular file (symlinks followed) of at most
    ``MAX_MODEL_BYTES``; never blocks, never reads more than the cap."""
    # cnn_ext._files.open_regular: a directory, FIFO or device is refused at once, never
    # waited on; the fstat of the opened descriptor is what counts (no TOCTOU).
    with open_regular(filename, error=_not_regular) as f:
        st = os.fstat(f.fileno())
        if st.st_size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{filename}: {st.st_size / MiB:,.1f} MiB, larger than any "
                                 f"model (at most {MAX_MODEL_BYTES // MiB} MiB)", filename)
        # One byte more than the size: f.read(n) reserves n bytes up front, so never ask
        # for the cap itself; a file still growing is refused rather than read on.
        raw = f.read(st.st_size + 1)
    if len(raw) != st.st_size:
        raise ModelFileError(f"{filename}: its size changed while it was read (another "
                             f"program is writing it?)", filename)
    return raw


def load_params(filename: str | os.PathLike[str], *,
                expected_shapes: Mapping[str, tuple[int, ...]] | None = None
                ) -> dict[str, npt.NDArray[np.float64]]:
    """Read and validate a model file; return ``{key: array}`` for the three ``PARAM_KEYS``.

    ``filename`` is used as given (no suffix added). The format follows the suffix:
    ``.npz`` is read with ``np.load(allow_pickle=False)``, anything else as the tutorial's
    pickle through the restricted unpickler (``cnn_ext._safe_pickle``). Returned arrays
    are fresh float64, C-contiguous, writable. ``expected_shapes`` (optional dict key ->
    shape tuple) adds exact shape checks, e.g. against existing layers.

    Cheap and bounded: only a regular file of at most ``MAX_MODEL_BYTES`` is read (a
    directory, FIFO or device is refused at once, without blocking), and the declared
    shapes are checked against each other and the bounds before arrays are built, so a
    load needs at most a few times the file's size in memory.

    Raises ``FileNotFoundError`` if the file does not exist and ``ModelFileError`` if it is
    not a valid model, not a regular file or over the bounds (other ``OSError`` such as
    permission errors propagate).
    """
    filename = os.fspath(filename)
    # Read first, parse after: I/O errors stay OSError, parsing errors become
    # ModelFileError.
    raw = _read_model_bytes(filename)
    if _is_npz(filename):
        data: object = _read_npz(raw, filename, expected_shapes)
    else:
        data = _params_from_layers(_read_pickle(raw, filename), filename)
    return _check_arrays(data, filename, expected_shapes)


# ------------------------------------------------------------------------------ saving

def _current_umask() -> int:
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


def _fsync_directory(directory: str) -> None:
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


def _shown(path: str) -> str:
    return repr(path or ".")


def _shown_dir(filename: str, directory: str) -> str:
    # The folder as the user wrote it, unless a symlink took the file elsewhere.
    given = os.path.dirname(filename)
    return given if os.path.realpath(given or ".") == directory else directory


def _write_error(filename: str, directory: str, exc: OSError) -> ModelWriteError:
    """A one-line ModelWriteError for the OSError ``exc`` raised while writing ``filename``."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT and not os.path.isdir(directory or "."):
        why = f"the folder {_shown(directory)} does not exist"
    elif code == errno.ENOTDIR:
        why = f"{_shown(directory)} is not a folder"
    elif code in (errno.EACCES, errno.EPERM):
        why = f"no permission to create files in the folder {_shown(directory)}"
    elif code == errno.EROFS:
        why = f"the folder {_shown(directory)} is on a read-only file system"
    elif code == errno.ENOSPC:
        why = "no space left on the device"
    elif code == getattr(errno, "EDQUOT", None):
        why = "disk quota exceeded"
    elif code == errno.ENAMETOOLONG:
        why = "the file name is too long"
    elif code == errno.EISDIR:
        why = "it is a directory"
    else:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if code in (errno.EACCES, errno.EPERM):
        return ModelPermissionError(f"cannot save {filename}: {why}", filename, code)
    return ModelWriteError(f"cannot save {filename}: {why}", filename, code)


def _check_target(filename: str, target: str) -> None:
    """Refuse a target that ``os.replace`` must not or cannot replace."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as exc:  # e.g. ELOOP, ENOTDIR, EACCES on a parent
        raise _write_error(filename, os.path.dirname(target), exc) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ModelWriteError(f"cannot save {filename}: it is a directory", filename,
                              errno.EISDIR)
    if not stat.S_ISREG(st.st_mode):
        raise ModelWriteError(f"cannot save {filename}: it is {_file_kind(st.st_mode)}, not "
                              f"a regular file", filename)
    # The tutorial's open(name, 'wb') refused a file its user made read-only; os.replace
    # would not, so ask the same question open() would.
    if not os.access(target, os.W_OK):
        raise ModelPermissionError(f"cannot save {filename}: the existing file is read-only (no "
                                   f"write permission)", filename, errno.EACCES)


def _target_of(filename: str) -> tuple[str, str]:
    # Write through a symlink like open() would, instead of replacing the link itself.
    target = os.path.realpath(filename)
    return target, os.path.dirname(target)


def _temp_pattern(basename: str) -> re.Pattern[str]:
    # tempfile.mkstemp(prefix='.NAME.', suffix='.tmp') names: 8 characters from
    # tempfile's alphabet (a-z, 0-9, _) between them. Anchored: another model's temporary
    # files (".NAME.x.pkl.abcdefgh.tmp") never match.
    return re.compile(rf"\.{re.escape(basename)}\.[a-z0-9_]{{8}}\.tmp\Z")


def _mkstemp(filename: str, directory: str, basename: str) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".{basename}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _write_error(filename, _shown_dir(filename, directory), exc) from exc


def check_writable(filename: str | os.PathLike[str]) -> None:
    """Check that a model can be saved at ``filename`` (used as given); return ``None``.

    Raises :class:`ModelWriteError` (an ``OSError`` and a ``ModelFileError``) with a
    one-line message if the folder is missing or is not a folder, ``filename`` is a
    directory, a FIFO, device or socket, an existing model there is read-only, or no file
    can be created in the folder (permissions, read-only file system). The last is found
    by really creating and removing a temporary file as a save would, so nothing is left
    behind. Cheap (a few system calls): call it before training, not only after.
    """
    filename = os.fspath(filename)
    if not filename:
        raise ModelWriteError("cannot save '': empty file name", filename, errno.ENOENT)
    target, directory = _target_of(filename)
    if not os.path.isdir(directory):
        exc = OSError(errno.ENOTDIR if os.path.exists(directory) else errno.ENOENT, "")
        raise _write_error(filename, _shown_dir(filename, directory), exc)
    _check_target(filename, target)
    fd, tmp = _mkstemp(filename, directory, os.path.basename(target))
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _lock(fd: int) -> bool | None:
    """Take an exclusive lock on ``fd`` without waiting; True if taken, False if another
    process holds it, None if locks are not available here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP, ... (some network or FUSE file systems)
        return None


def _remove_stale_temporaries(directory: str, basename: str, keep: str | None = None) -> None:
    """Remove ``.BASENAME.XXXXXXXX.tmp`` files left in ``directory`` by killed saves.

    Only files matching the exact name pattern of this model's temporary files, that are
    regular files, were last modified at least ``STALE_TEMP_SECONDS`` ago and are not
    locked. Every save holds an exclusive ``flock`` on its temporary file from creation
    until after the rename, and the kernel drops the lock when the process dies (even by
    SIGKILL), so a file this function can lock belongs to no running save; the age test
    covers the instant between a save's mkstemp and its flock. Where flock is not
    available, nothing is removed on POSIX; on Windows a file another process still has
    open cannot be deleted, so unlink itself is the test. Errors are ignored: cleaning
    up never makes a save fail.
    """
    pattern = _temp_pattern(basename)
    try:
        entries = [e for e in os.scandir(directory) if pattern.match(e.name)]
    except OSError:
        return
    now = time.time()
    for entry in entries:
        path = entry.path
        if keep is not None and os.path.basename(path) == keep:
            continue
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < STALE_TEMP_SECONDS:
                continue
            if fcntl is None:
                os.unlink(path)
                continue
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            st2 = os.fstat(fd)
            if (st2.st_ino, st2.st_dev) == (st.st_ino, st.st_dev) and _lock(fd):
                os.unlink(path)  # while holding the lock
        except OSError:
            pass
        finally:
            os.close(fd)


def _atomic_write(filename: str, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(binary_file)`` on a temporary file, then move it onto ``filename``.

    Either the new file is complete at ``filename`` or the old one is untouched: the
    temporary file ``.NAME.XXXXXXXX.tmp`` lives in the same folder (so ``os.replace`` is an
    atomic rename), is locked while it is written, is fsynced before the rename, and is
    removed on any exception, KeyboardInterrupt included. An ``OSError`` becomes a
    one-line :class:`ModelWriteError`; other exceptions from ``write`` pass unchanged.
    """
    target, directory = _target_of(filename)
    basename = os.path.basename(target)
    _check_target(filename, target)
    fd, tmp = _mkstemp(filename, directory, basename)
    f = None
    try:
        _lock(fd)  # tells other saves' clean-up that this file is in use
        _remove_stale_temporaries(directory, basename, keep=os.path.basename(tmp))
        f = os.fdopen(fd, "wb")
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
        else:
            f.close()  # Windows cannot rename an open file
        # On POSIX the file stays open, and locked, until it has its final name.
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
        else:
            with contextlib.suppress(OSError):
                os.close(fd)
        if isinstance(exc, OSError) and not isinstance(exc, ModelWriteError):
            raise _write_error(filename, _shown_dir(filename, directory), exc) from exc
        raise
    with contextlib.suppress(OSError):
        f.close()
    _fsync_directory(directory)


def save_params(filename: str | os.PathLike[str], conv_filters: npt.ArrayLike, softmax_weights: npt.ArrayLike,
                softmax_biases: npt.ArrayLike) -> None:
    """Validate the three arrays and write them atomically to ``filename`` (used as given).

    ``conv_filters`` ``(num_filters, 3, 3)``, ``softmax_weights`` ``(input_len, nodes)``,
    ``softmax_biases`` ``(nodes,)``: real numeric and finite, stored as float64, within the
    module's bounds. A ``.npz`` suffix writes the pickle-free archive (plus
    ``format_version`` = 1), any other name the tutorial's pickle (protocol
    ``PICKLE_PROTOCOL``). Raises ``ModelFileError`` on invalid arrays, before the file is
    touched, and :class:`ModelWriteError` (an ``OSError``) if the file cannot be written;
    either way no temporary file is left behind and an existing model is untouched.
    """
    filename = os.fspath(filename)
    arrays = _check_arrays(
        {"conv_filters": conv_filters, "softmax_weights": softmax_weights,
         "softmax_biases": softmax_biases},
        filename, saving=True)

    if _is_npz(filename):
        def write(f: IO[bytes]) -> None:
            # Given a file object, np.savez writes exactly there (no suffix appended).
            version = {_NPZ_VERSION_KEY: np.array(NPZ_FORMAT_VERSION, dtype=np.int64)}
            # (type: ignore: mypy matches the ** arrays against savez's allow_pickle: bool too.)
            np.savez(f, **arrays, **version)  # type: ignore[arg-type]
    else:
        def write(f: IO[bytes]) -> None:
            # A plain dict of ndarrays, key order as the tutorial's: its pickle.load reads it.
            pickle.dump(arrays, f, protocol=PICKLE_PROTOCOL)

    _atomic_write(filename, write)


# -------------------------------------------------------------------------- ModelSaver

class ModelSaver:
    """The tutorial's ``ModelSaver`` (same API and messages), safe to use on any file.

    ``ModelSaver(model_name='MNIST_CNN')`` saves to and loads from ``f'{model_name}.pkl'``
    as the tutorial did, in a format the tutorial's own ``ModelSaver`` reads and writes.
    A ``model_name`` that already ends in ``.pkl`` or ``.npz`` (any case) is the file name
    itself: ``ModelSaver('m.pkl').filename == 'm.pkl'``, and ``ModelSaver('m.npz')`` uses
    the pickle-free ``.npz`` format. See :func:`model_filename`. The name is relative to
    the current directory unless absolute.

    Layers are duck-typed: ``conv`` needs ``filters``, ``softmax`` needs ``weights`` and
    ``biases`` (float64 arrays); ``pool`` is accepted for compatibility and unused.
    """

    def __init__(self, model_name: str | os.PathLike[str] = 'MNIST_CNN') -> None:
        self.model_name = model_name

    @property
    def filename(self) -> str:
        """The file used (str): ``model_name`` if it ends in ``.pkl`` or ``.npz``, else
        ``model_name + '.pkl'``."""
        return model_filename(self.model_name)

    def save(self, conv: _HasFilters, pool: object, softmax: _HasWeights) -> None:
        """Write ``conv.filters``, ``softmax.weights``, ``softmax.biases`` atomically.

        Prints ``保存参数到{filename}``. Raises ``ModelFileError`` (nothing written) if an
        array has the wrong shape or dtype, is not finite or is over the bounds, and
        :class:`ModelWriteError` if the file cannot be written there (the old file, if
        any, is untouched and no temporary file is left).
        """
        filename = self.filename
        save_params(filename, conv.filters, softmax.weights, softmax.biases)
        print(f"保存参数到{filename}")

    def load(self, conv: _HasFilters, pool: object, softmax: _HasWeights) -> bool:
        """Load the file into the layers; return ``True``, or ``False`` if it does not exist.

        Prints ``模型参数加载成功`` or ``无可用模型参数``. The arrays must match the layers'
        current shapes (a 16-filter model does not load into an 8-filter layer); on any
        problem ``ModelFileError`` is raised and the layers are left untouched: also for a
        path that is a directory, FIFO or device (refused without blocking) and for a file
        over ``MAX_MODEL_BYTES``.
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
            softmax.weights = aligned_float64(params['softmax_weights'])
            softmax.biases = params['softmax_biases']
        except BaseException:
            # A layer whose setter refuses a value must not be left half-updated.
            conv.filters, softmax.weights, softmax.biases = old
            raise
        print("模型参数加载成功")
        return True
