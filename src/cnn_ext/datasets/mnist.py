"""MNIST handwritten digits, loaded like ``tf.keras.datasets.mnist.load_data()`` (the
adaptation's loader) or like the ``mnist`` package (the English original's:
``mnist.train_images()``, ``train_labels()``, ``test_images()``, ``test_labels()``).

The package embeds the full MNIST database as its four original gzipped IDX files in
``cnn_ext/datasets/data/``, so no download is needed: 60,000 training and 10,000 test
grey-scale images of 28x28 pixels (uint8, 0..255) with their digit labels (uint8, 0..9).
:func:`load_data` can also read the same data from a folder of IDX files or from a Keras
``mnist.npz``.

Every file is fully validated; anything malformed raises :class:`MNISTFormatError` (a
``ValueError``) whose message names the file, what was expected and what was found, and a
missing file raises ``FileNotFoundError``. Nothing is ever returned half-loaded.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges
(http://yann.lecun.com/exdb/mnist/) and is distributed under the Creative Commons
Attribution-Share Alike 3.0 license (CC BY-SA 3.0).
"""
from __future__ import annotations

import errno
import math
import os
import struct
import sys
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._files import file_kind, open_regular

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

    _Split: TypeAlias = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]  # (images, labels)

__all__ = ["MNISTFormatError", "load_data", "train_images", "train_labels", "test_images",
           "test_labels"]

ROWS = COLS = 28
NUM_CLASSES = 10

#: The four IDX files (without ``.gz``), per split: (split, images, labels).
FILES = (
    ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
#: The arrays of a Keras ``mnist.npz``.
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # zip with members / empty zip
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
              0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}

#: What reading a hostile zip / .npy can raise (zipfile: BadZipFile, RuntimeError for an
#: encrypted member, NotImplementedError for an unknown compression method, flag bit or
#: version, EOFError for truncated compressed data; NumPy: ValueError for a bad header).
_ZIP_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError,
               OSError, ValueError, MemoryError, OverflowError, struct.error)
try:
    import lzma
except ImportError:  # Python built without lzma: zipfile then refuses such members itself
    pass
else:
    _ZIP_ERRORS += (lzma.LZMAError,)
_NPZ_CHUNK = 1 << 18  # bytes of .npy data read from a zip member at a time


class MNISTFormatError(ValueError):
    """An MNIST file or archive has invalid contents; the message names the file."""


def load_data(path: str | os.PathLike[str] | None = None) -> tuple[_Split, _Split]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``, like Keras does.

    Parameters
    ----------
    path : str or os.PathLike, optional
        ``None`` (default) loads the copy embedded in the package. Otherwise either a
        folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``,
        preferred when both exist) or raw, or a Keras ``mnist.npz`` with the arrays
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` (read with ``allow_pickle=False``).
        Unlike Keras, ``path`` is never a download cache location.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train``: uint8 (60000, 28, 28); ``y_train``: uint8 (60000,);
        ``x_test``: uint8 (10000, 28, 28); ``y_test``: uint8 (10000,), for the real set,
        in file order. Pixels are 0..255, labels 0..9. The arrays are fresh, writable and
        C-contiguous.

    Raises
    ------
    FileNotFoundError
        ``path`` or one of the four files does not exist.
    MNISTFormatError
        A file is malformed: corrupt or truncated gzip stream, wrong IDX magic number,
        truncated header, payload shorter or longer than the header says, image size not
        28x28, label outside 0..9, image and label counts that differ; or an npz that is
        a damaged zip, with a missing key, a damaged, encrypted or unsupported member, an
        array of the wrong dtype or shape, an array whose data does not match its .npy
        header, or a pickled object array. Headers are checked before any data is
        inflated or allocated, so a small file claiming huge data costs nothing.
    """
    if path is None:
        return _load_idx_folder(resources.files(__package__) / "data", embedded=True)
    p = Path(os.fsdecode(path)).expanduser()
    if p.is_dir():
        return _load_idx_folder(p)
    if p.is_file():
        return _load_npz(p)
    if p.exists():
        raise MNISTFormatError(
            f"{p}: not an MNIST source: expected a folder holding the four IDX files or a "
            f"Keras mnist.npz, found something that is neither a folder nor a regular file")
    raise FileNotFoundError(
        errno.ENOENT,
        "MNIST path not found (expected a folder holding the four IDX files or a Keras "
        "mnist.npz)",
        str(p),
    )


# ------------------------------------------------------- the ``mnist`` package's loader
# The English tutorial loads MNIST with the ``mnist`` package (``import mnist``), whose
# download address no longer answers. These four functions are its API on the embedded
# copy, so ``import mnist`` becomes ``from cnn_ext.datasets import mnist``: each parses
# just its own file and returns a fresh array, as that package does.


def _embedded_file(stem: str, images: bool) -> npt.NDArray[np.uint8]:
    file = _find(resources.files(__package__) / "data", stem, embedded=True)
    array = _parse_idx(_open(file), str(file), images=images)
    if not images:
        _check_split(array, array, str(file), str(file), stem)  # labels 0..9
    return array


def train_images() -> npt.NDArray[np.uint8]:
    """The 60,000 training images: uint8 (60000, 28, 28), pixels 0..255, as the ``mnist``
    package's ``train_images()`` (the same values as ``load_data()[0][0]``)."""
    return _embedded_file(FILES[0][1], images=True)


def train_labels() -> npt.NDArray[np.uint8]:
    """The 60,000 training labels: uint8 (60000,), digits 0..9, as ``mnist.train_labels()``."""
    return _embedded_file(FILES[0][2], images=False)


def test_images() -> npt.NDArray[np.uint8]:
    """The 10,000 test images: uint8 (10000, 28, 28), as ``mnist.test_images()``."""
    return _embedded_file(FILES[1][1], images=True)


def test_labels() -> npt.NDArray[np.uint8]:
    """The 10,000 test labels: uint8 (10000,), as ``mnist.test_labels()``."""
    return _embedded_file(FILES[1][2], images=False)


# Not tests, whatever a test collector that imports this module makes of their names.
test_images.__test__ = False  # type: ignore[attr-defined]
test_labels.__test__ = False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- IDX files


def _load_idx_folder(folder: Traversable, embedded: bool = False) -> tuple[_Split, _Split]:
    # Locate all four files before decompressing anything, so a missing one fails fast.
    located = [(split, _find(folder, img, embedded), _find(folder, lab, embedded))
               for split, img, lab in FILES]
    result = []
    for split, img_file, lab_file in located:
        x = _parse_idx(_open(img_file), str(img_file), images=True)
        y = _parse_idx(_open(lab_file), str(lab_file), images=False)
        _check_split(x, y, str(img_file), str(lab_file), split)
        result.append((x, y))
    return result[0], result[1]


def _find(folder: Traversable, stem: str, embedded: bool) -> Traversable:
    """``folder/stem.gz`` if it exists, else ``folder/stem``, else FileNotFoundError."""
    for name in (stem + ".gz", stem):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    where = "the data embedded in cnn_ext (broken installation? reinstall cnn_ext)" \
        if embedded else "the MNIST folder"
    raise FileNotFoundError(
        errno.ENOENT,
        f"MNIST file {stem}.gz (or uncompressed {stem}) not found in {where}",
        str(folder / (stem + ".gz")),
    )


def _not_a_file(filename: str, mode: int) -> MNISTFormatError:
    return MNISTFormatError(f"{filename}: is {file_kind(mode)}, not an MNIST file (a regular file)")


def _open(file: Traversable) -> _RawReader | _GzipReader:
    """A reader of the file's bytes, gunzipped on the fly if they are a gzip stream
    (required for ``*.gz``)."""
    if isinstance(file, Path):  # a user's folder: never wait on a FIFO swapped in
        with open_regular(file, "an MNIST IDX file", _not_a_file) as f:
            data = f.read()
    else:  # the package's own data
        data = file.read_bytes()
    where = str(file)
    if data[:2] == _GZIP_MAGIC:
        return _GzipReader(data, where)
    if where.endswith(".gz"):
        found = f"first bytes {data[:4].hex(' ')}" if data else "an empty file"
        raise MNISTFormatError(
            f"{where}: corrupt gzip stream: expected gzip magic bytes 1f 8b, found {found}")
    return _RawReader(data)


class _RawReader:
    """``read(n)`` over bytes in memory: up to ``n`` bytes, fewer only at the end."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def read(self, n: int) -> bytes | memoryview:
        start, self._pos = self._pos, min(self._pos + n, len(self._data))
        if start == 0 and self._pos == len(self._data):
            return self._data
        return memoryview(self._data)[start:self._pos]

    def skip_rest(self) -> int:
        """Skip to the end; return the number of bytes skipped."""
        rest, self._pos = len(self._data) - self._pos, len(self._data)
        return rest


class _GzipReader:
    """``read(n)`` of the decompressed bytes of all gzip members of ``data``, inflating
    only what is asked for, so a header can be checked before a bomb is inflated.

    zlib checks each member's CRC-32 and length when it reaches the member's trailer;
    corrupt, truncated or trailing data raise :class:`MNISTFormatError` as soon as they
    are met. ``read(n)`` returns fewer than ``n`` bytes only at the end of the stream, so
    asking for one byte more than expected drives a correct file to its end (and through
    every check).
    """

    _SKIP_CHUNK = 1 << 20  # bytes inflated at a time when an over-long payload is counted

    def __init__(self, data: bytes, where: str):
        self._size = len(data)
        self._where = where
        self._d: zlib._Decompress | None = zlib.decompressobj(wbits=31)  # 31 = gzip header and trailer
        self._tail = data  # compressed input not yet given to zlib (or kept by it)

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0 and self._d is not None:
            try:
                out = self._d.decompress(self._tail, n)  # n >= 1: at most n bytes out
            except zlib.error as e:
                raise MNISTFormatError(
                    f"{self._where}: corrupt gzip stream: expected valid deflate data with a "
                    f"matching CRC-32, found zlib error: {e}") from None
            self._tail = self._d.unconsumed_tail
            if out:
                parts.append(out)
                n -= len(out)
            if self._d.eof:
                self._next_member()
            elif not out and not self._tail:  # no input left, no output pending
                raise MNISTFormatError(
                    f"{self._where}: corrupt gzip stream (truncated): expected the "
                    f"end-of-stream marker and trailer, found the file ends after "
                    f"{self._size} compressed bytes")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _next_member(self) -> None:
        rest = self._d.unused_data  # type: ignore[union-attr]  # read() calls it on an open member
        if not rest.strip(b"\0"):  # end of file, or zero padding as gzip tolerates
            self._d, self._tail = None, b""
        elif rest[:2] != _GZIP_MAGIC:
            raise MNISTFormatError(
                f"{self._where}: corrupt gzip stream: expected end of file or another gzip "
                f"member, found {len(rest)} trailing bytes of garbage")
        else:
            self._d, self._tail = zlib.decompressobj(wbits=31), rest

    def skip_rest(self) -> int:
        """Inflate (and check) the rest chunk by chunk; return its decompressed size."""
        total = 0
        while True:
            k = len(self.read(self._SKIP_CHUNK))
            total += k
            if k < self._SKIP_CHUNK:
                return total


def _parse_idx(reader: _RawReader | _GzipReader, where: str, images: bool) -> npt.NDArray[np.uint8]:
    """Validate one IDX file, reading it through ``reader``; return a fresh uint8 array.

    The header is read and checked first; then at most one byte more than the header
    announces is read, so a file claiming (or inflating to) huge data costs nothing.
    """
    kind = "images" if images else "labels"
    magic_expected, ndim = (_IMAGES_MAGIC, 3) if images else (_LABELS_MAGIC, 1)
    header_len = 4 * (1 + ndim)
    header = bytes(reader.read(header_len))
    if len(header) < header_len:
        raise MNISTFormatError(
            f"{where}: truncated header: expected an IDX {kind} header of {header_len} bytes, "
            f"found only {len(header)} bytes")
    magic, *dims = struct.unpack_from(f">{1 + ndim}I", header)
    if magic != magic_expected:
        raise MNISTFormatError(
            f"{where}: wrong magic number: expected {magic_expected} (0x{magic_expected:08x}, "
            f"IDX unsigned-byte {ndim}-D {kind}), found {magic} (0x{magic:08x}, "
            f"{_describe_magic(magic, header)})")
    if images and (dims[1], dims[2]) != (ROWS, COLS):
        raise MNISTFormatError(
            f"{where}: wrong image size: expected {ROWS}x{COLS} pixels, "
            f"found {dims[1]}x{dims[2]}")
    count = dims[0]
    shape = (count, ROWS, COLS) if images else (count,)
    expected = count * (ROWS * COLS if images else 1)
    payload = reader.read(expected + 1)  # one byte more: an over-long payload shows
    found = len(payload)
    if found > expected:
        found += reader.skip_rest()
    if found != expected:
        problem = "truncated payload" if found < expected else "over-long payload"
        item = f"images of {ROWS}x{COLS} bytes" if images else "one-byte labels"
        raise MNISTFormatError(
            f"{where}: {problem}: expected {expected} bytes after the {header_len}-byte header "
            f"({count} {item}), found {found} bytes")
    array: npt.NDArray[np.uint8] = np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()
    return array


def _describe_magic(magic: int, raw: bytes) -> str:
    if magic == _IMAGES_MAGIC:
        return "an IDX images file"
    if magic == _LABELS_MAGIC:
        return "an IDX labels file"
    if raw[:2] == _GZIP_MAGIC:
        return "gzip-compressed data, compressed twice?"
    if magic >> 16 == 0:
        code, n = (magic >> 8) & 0xFF, magic & 0xFF
        return f"IDX type 0x{code:02x} ({_IDX_TYPES.get(code, 'unknown')}) with {n} dimension(s)"
    return "not an IDX file"


# --------------------------------------------------------------------------- npz archive


def _load_npz(path: Path) -> tuple[_Split, _Split]:
    where = str(path)
    with open_regular(path, "a Keras mnist.npz", _not_a_file) as f:
        head = f.read(4)
        if head not in _ZIP_MAGICS:
            found = f"first bytes {head.hex(' ')}" if head else "an empty file"
            raise MNISTFormatError(
                f"{where}: not an MNIST source: expected a folder holding the four IDX files "
                f"or a Keras mnist.npz (zip) archive, found a file with {found} (to read IDX "
                f"files, pass the folder that holds them)")
        f.seek(0)
        # zipfile directly, not np.load: each member's .npy header is checked against the
        # member's size before any data is read, and zipfile's own errors are caught.
        try:
            archive = zipfile.ZipFile(f)
        except _ZIP_ERRORS as e:
            raise MNISTFormatError(
                f"{where}: unreadable .npz archive: expected a Keras mnist.npz, "
                f"found {_describe_exc(e)}") from None
        with archive:
            archive_size = os.fstat(f.fileno()).st_size
            names = archive.namelist()
            files = [n[:-4] if n.endswith(".npy") else n for n in names]  # as np.load
            missing = [k for k in NPZ_KEYS if k not in files]
            if missing:
                raise MNISTFormatError(
                    f"{where}: npz missing key(s) {', '.join(missing)}: expected arrays "
                    f"{', '.join(NPZ_KEYS)}, found {', '.join(sorted(files)) or 'no arrays'}")
            arrays = {}
            for key in NPZ_KEYS:
                member = key if key in names else key + ".npy"  # np.load's precedence
                try:
                    arrays[key] = _npz_array(archive, archive_size, member, key, where)
                except MNISTFormatError:  # a ValueError, already explained
                    raise
                except _ZIP_ERRORS as e:
                    raise MNISTFormatError(
                        f"{where}: npz array {key!r} is unreadable: {_describe_exc(e)}") from None
    splits = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_split(x, y, f"{where} [x_{split}]", f"{where} [y_{split}]", split)
        splits.append((x, y))
    return splits[0], splits[1]


def _npz_array(archive: zipfile.ZipFile, archive_size: int, member: str, key: str,
               where: str) -> npt.NDArray[np.uint8]:
    """Read one .npy member: header first, checked against MNIST and the member's size,
    then exactly the data it announces (never a pickle)."""
    info = archive.getinfo(member)
    with archive.open(member) as m:  # by name: zipfile's messages then name it
        prefix = m.read(len(np.lib.format.MAGIC_PREFIX))
        if prefix != np.lib.format.MAGIC_PREFIX:  # a zip member that is not a .npy file
            raise MNISTFormatError(
                f"{where}: npz member {key!r} is not a .npy array: expected a uint8 array, "
                f"found {info.file_size} bytes of other data")
        version = tuple(m.read(2))
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(m)
        elif version in ((2, 0), (3, 0)):
            # 3.0 is 2.0 with a UTF-8 header; the header of a uint8 array is plain ASCII.
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(m)
        else:
            raise MNISTFormatError(
                f"{where}: npz array {key!r} is unreadable: expected .npy format version "
                f"1.0, 2.0 or 3.0, found {'.'.join(map(str, version)) or 'nothing'}")
        header_len = m.tell()
        if dtype.hasobject:
            raise MNISTFormatError(
                f"{where}: npz array {key!r} is a pickled object array: expected dtype uint8, "
                f"found dtype {dtype} (refused: pickled data is never loaded)")
        if dtype != np.uint8:
            raise MNISTFormatError(
                f"{where}: npz array {key!r} has the wrong dtype: expected uint8, found {dtype}")
        images = key.startswith("x")
        ndim = len(shape)
        ok = (ndim == 3 and shape[1:] == (ROWS, COLS)) if images else ndim == 1
        if not ok or min(shape, default=0) < 0:
            want = f"a 3-D array of shape (N, {ROWS}, {COLS})" if images else "a 1-D array (N,)"
            raise MNISTFormatError(
                f"{where}: npz array {key!r} has the wrong shape: expected {want}, "
                f"found a {ndim}-D array of shape {shape}")
        expected = math.prod(shape)  # * itemsize 1; Python ints: no overflow
        found = info.file_size - header_len
        if found != expected:
            problem = "truncated payload" if found < expected else "over-long payload"
            raise MNISTFormatError(
                f"{where}: npz array {key!r}: {problem}: expected {expected} bytes after the "
                f"{header_len}-byte .npy header (shape {shape}), found {found} bytes in the "
                f"zip member")
        # The sizes in the zip directory may lie, so nothing is allocated for data that is
        # not known to exist: a stored member that lies within the file is read straight
        # into its array; any other is read in bounded chunks into a growing buffer.
        if (info.compress_type == zipfile.ZIP_STORED and info.compress_size == info.file_size
                and info.header_offset + info.compress_size <= archive_size):
            a = np.empty(expected, np.uint8)
            view, got = a.data, 0  # a.data: the array's memoryview
            while got < expected:
                # (type: ignore: ZipFile.open returns a ZipExtFile, a BufferedIOBase, typed as IO[bytes])
                n = m.readinto(view[got:got + _NPZ_CHUNK])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
        else:
            data = bytearray()  # grows by realloc: about the real size, never the claim
            while len(data) < expected:
                chunk = m.read(min(_NPZ_CHUNK, expected - len(data)))
                if not chunk:
                    break
                data += chunk
            got = len(data)
            a = np.frombuffer(data, np.uint8) if got else np.empty(0, np.uint8)
        if got < expected:
            raise MNISTFormatError(
                f"{where}: npz array {key!r}: truncated payload: expected {expected} bytes "
                f"after the {header_len}-byte .npy header (shape {shape}), found the zip "
                f"member's data ends after {got} bytes")
    if fortran_order:
        return np.ascontiguousarray(a.reshape(shape[::-1]).T)
    return a.reshape(shape)


def _describe_exc(e: BaseException) -> str:
    text = str(e) or ("out of memory" if isinstance(e, MemoryError) else
                      "the data ends early" if isinstance(e, EOFError) else "no details")
    return f"{_exc_name(e)}: {text}"


def _exc_name(e: BaseException) -> str:
    return "zlib.error" if isinstance(e, zlib.error) else type(e).__name__


# --------------------------------------------------------------------------- both formats


def _check_split(x: npt.NDArray[np.uint8], y: npt.NDArray[np.uint8], x_where: str, y_where: str,
                 split: str) -> None:
    if len(x) != len(y):
        raise MNISTFormatError(
            f"{x_where} and {y_where}: image/label count mismatch in the {split} split: "
            f"expected equal counts, found {len(x)} images and {len(y)} labels")
    bad = np.flatnonzero(y >= NUM_CLASSES)
    if bad.size:
        raise MNISTFormatError(
            f"{y_where}: label out of range: expected labels 0..{NUM_CLASSES - 1}, "
            f"found {y[bad[0]]} at index {bad[0]} ({bad.size} label(s) out of range)")
