"""MNIST handwritten digits, loaded like ``tf.keras.datasets.mnist.load_data()``.

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
import os
import struct
import zipfile
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["MNISTFormatError", "load_data"]

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

_Split = tuple[np.ndarray, np.ndarray]  # (images, labels)


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
        28x28, label outside 0..9, image and label counts that differ; or an npz with a
        missing key, an array of the wrong dtype or shape, or a pickled object array.
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


# --------------------------------------------------------------------------- IDX files


def _load_idx_folder(folder, embedded: bool = False) -> tuple[_Split, _Split]:
    # Locate all four files before decompressing anything, so a missing one fails fast.
    located = [(split, _find(folder, img, embedded), _find(folder, lab, embedded))
               for split, img, lab in FILES]
    result = []
    for split, img_file, lab_file in located:
        x = _parse_idx(_read(img_file), str(img_file), images=True)
        y = _parse_idx(_read(lab_file), str(lab_file), images=False)
        _check_split(x, y, str(img_file), str(lab_file), split)
        result.append((x, y))
    return result[0], result[1]


def _find(folder, stem: str, embedded: bool):
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


def _read(file) -> bytes:
    """The file's bytes, gunzipped if they are a gzip stream (required for ``*.gz``)."""
    data = file.read_bytes()
    where = str(file)
    if data[:2] == _GZIP_MAGIC:
        return _gunzip(data, where)
    if where.endswith(".gz"):
        found = f"first bytes {data[:4].hex(' ')}" if data else "an empty file"
        raise MNISTFormatError(
            f"{where}: corrupt gzip stream: expected gzip magic bytes 1f 8b, found {found}")
    return data


def _gunzip(data: bytes, where: str) -> bytes:
    """Decompress all gzip members of ``data`` in one go (zlib checks each CRC-32)."""
    parts = []
    rest = data
    while True:
        d = zlib.decompressobj(wbits=31)  # 31 = gzip header and trailer
        try:
            parts.append(d.decompress(rest))
        except zlib.error as e:
            raise MNISTFormatError(
                f"{where}: corrupt gzip stream: expected valid deflate data with a matching "
                f"CRC-32, found zlib error: {e}") from None
        if not d.eof:
            raise MNISTFormatError(
                f"{where}: corrupt gzip stream (truncated): expected the end-of-stream marker "
                f"and trailer, found the file ends after {len(data)} compressed bytes")
        rest = d.unused_data
        if not rest.strip(b"\0"):  # end of file, or zero padding as gzip tolerates
            break
        if rest[:2] != _GZIP_MAGIC:
            raise MNISTFormatError(
                f"{where}: corrupt gzip stream: expected end of file or another gzip member, "
                f"found {len(rest)} trailing bytes of garbage")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse_idx(raw: bytes, where: str, images: bool) -> np.ndarray:
    """Validate one uncompressed IDX file and return a fresh uint8 array."""
    kind = "images" if images else "labels"
    magic_expected, ndim = (_IMAGES_MAGIC, 3) if images else (_LABELS_MAGIC, 1)
    header_len = 4 * (1 + ndim)
    if len(raw) < header_len:
        raise MNISTFormatError(
            f"{where}: truncated header: expected an IDX {kind} header of {header_len} bytes, "
            f"found only {len(raw)} bytes")
    magic, *dims = struct.unpack_from(f">{1 + ndim}I", raw)
    if magic != magic_expected:
        raise MNISTFormatError(
            f"{where}: wrong magic number: expected {magic_expected} (0x{magic_expected:08x}, "
            f"IDX unsigned-byte {ndim}-D {kind}), found {magic} (0x{magic:08x}, "
            f"{_describe_magic(magic, raw)})")
    if images and (dims[1], dims[2]) != (ROWS, COLS):
        raise MNISTFormatError(
            f"{where}: wrong image size: expected {ROWS}x{COLS} pixels, "
            f"found {dims[1]}x{dims[2]}")
    count = dims[0]
    shape = (count, ROWS, COLS) if images else (count,)
    expected = count * (ROWS * COLS if images else 1)
    found = len(raw) - header_len
    if found != expected:
        problem = "truncated payload" if found < expected else "over-long payload"
        item = f"images of {ROWS}x{COLS} bytes" if images else "one-byte labels"
        raise MNISTFormatError(
            f"{where}: {problem}: expected {expected} bytes after the {header_len}-byte header "
            f"({count} {item}), found {found} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape).copy()


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
    # Open the file ourselves: np.load leaks its own handle when the zip is unreadable.
    with open(path, "rb") as f:
        head = f.read(4)
        if head not in _ZIP_MAGICS:
            found = f"first bytes {head.hex(' ')}" if head else "an empty file"
            raise MNISTFormatError(
                f"{where}: not an MNIST source: expected a folder holding the four IDX files "
                f"or a Keras mnist.npz (zip) archive, found a file with {found} (to read IDX "
                f"files, pass the folder that holds them)")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise MNISTFormatError(
                f"{where}: unreadable .npz archive: expected a Keras mnist.npz, "
                f"found {_exc_name(e)}: {e}") from None
        with npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise MNISTFormatError(
                    f"{where}: npz missing key(s) {', '.join(missing)}: expected arrays "
                    f"{', '.join(NPZ_KEYS)}, found {', '.join(sorted(npz.files)) or 'no arrays'}")
            arrays = {key: _npz_array(npz, key, where) for key in NPZ_KEYS}
    splits = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_split(x, y, f"{where} [x_{split}]", f"{where} [y_{split}]", split)
        splits.append((x, y))
    return splits[0], splits[1]


def _npz_array(npz, key: str, where: str) -> np.ndarray:
    try:
        a = npz[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise MNISTFormatError(
                f"{where}: npz array {key!r} is a pickled object array: expected dtype uint8, "
                f"found dtype object (refused: pickled data is never loaded)") from None
        raise MNISTFormatError(
            f"{where}: npz array {key!r} is unreadable: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise MNISTFormatError(
            f"{where}: npz array {key!r} is unreadable: {_exc_name(e)}: {e}") from None
    if not isinstance(a, np.ndarray):  # a zip member that is not a .npy file
        raise MNISTFormatError(
            f"{where}: npz member {key!r} is not a .npy array: expected a uint8 array, "
            f"found {len(a)} bytes of other data")
    if a.dtype != np.uint8:
        raise MNISTFormatError(
            f"{where}: npz array {key!r} has the wrong dtype: expected uint8, found {a.dtype}")
    images = key.startswith("x")
    ok = (a.ndim == 3 and a.shape[1:] == (ROWS, COLS)) if images else a.ndim == 1
    if not ok:
        want = f"a 3-D array of shape (N, {ROWS}, {COLS})" if images else "a 1-D array (N,)"
        raise MNISTFormatError(
            f"{where}: npz array {key!r} has the wrong shape: expected {want}, "
            f"found a {a.ndim}-D array of shape {a.shape}")
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = np.array(a, order="C", copy=True)
    return a


def _exc_name(e: BaseException) -> str:
    return "zlib.error" if isinstance(e, zlib.error) else type(e).__name__


# --------------------------------------------------------------------------- both formats


def _check_split(x: np.ndarray, y: np.ndarray, x_where: str, y_where: str, split: str) -> None:
    if len(x) != len(y):
        raise MNISTFormatError(
            f"{x_where} and {y_where}: image/label count mismatch in the {split} split: "
            f"expected equal counts, found {len(x)} images and {len(y)} labels")
    bad = np.flatnonzero(y >= NUM_CLASSES)
    if bad.size:
        raise MNISTFormatError(
            f"{y_where}: label out of range: expected labels 0..{NUM_CLASSES - 1}, "
            f"found {y[bad[0]]} at index {bad[0]} ({bad.size} label(s) out of range)")
