"""Opening a user's file for reading: a regular file, or a one-line refusal, never a hang.

Every reader of a path a user gave (model files, MNIST files, pictures, training records)
opens it here. A FIFO opened for reading waits for a writer forever, a device may have
side effects when opened, a directory cannot be read: each is refused at once with an
error naming what the path is.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["file_kind", "open_regular", "read_regular"]


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words: ``"a FIFO (named pipe)"``, ..."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _refusal(filename: str, mode: int, what: str) -> ValueError:
    return ValueError(f"{filename}: is {file_kind(mode)}, not {what} (a regular file)")


def open_regular(filename: str | os.PathLike[str], what: str = "a file",
                 error: Callable[[str, int], Exception] | None = None) -> BinaryIO:
    """``filename`` opened for binary reading if it is a regular file (symlinks followed).

    Anything else (a directory, FIFO, device, socket) raises ``error(filename, st_mode)``,
    by default a ``ValueError`` such as ``"x: is a FIFO (named pipe), not an image file (a
    regular file)"`` with ``what="an image file"``; this never blocks. A missing file raises
    ``FileNotFoundError``, other ``OSError`` (no permission) propagate.
    """
    name = os.fspath(filename)
    refuse = error if error is not None else (lambda path, mode: _refusal(path, mode, what))
    # stat first so that a device is refused without even being opened (opening some has
    # side effects); the fstat on the opened descriptor is what counts (no TOCTOU).
    mode = os.stat(name).st_mode
    if not stat.S_ISREG(mode):
        raise refuse(name, mode)
    # O_NONBLOCK: a FIFO swapped in after the stat opens at once instead of waiting for
    # a writer (it has no effect on regular files).
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(name, flags)
    except (IsADirectoryError, PermissionError):
        if os.path.isdir(name):  # Windows cannot open directories at all
            raise refuse(name, stat.S_IFDIR) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(name, st.st_mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(filename: str | os.PathLike[str], max_bytes: int, what: str = "a file",
                 error: Callable[[str, int], Exception] | None = None) -> bytes:
    """The bytes of the regular file ``filename`` (see :func:`open_regular`), refused with
    ``ValueError`` when it holds more than ``max_bytes``; never reads more than that."""
    with open_regular(filename, what, error) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{os.fspath(filename)}: more than {max_bytes:,} bytes, too large for {what}")
    return data


def output_problem(path: str | os.PathLike[str], formats: tuple[str, ...] | None = None) -> str | None:
    """Why a file cannot be written at ``path``, or None: its folder must exist and be
    writable, the path must not be a folder, and its suffix (lower case) must be one of
    ``formats`` (e.g. ``(".png", ".pdf")``) when given. Asked before any work, so that a
    long run does not end in a lost result."""
    name = os.fspath(path)
    if not name or os.path.isdir(name) or name.endswith(("/", os.sep)):
        return f"{name!r} is a folder, not a file name"
    suffix = os.path.splitext(name)[1].lower()
    if formats is not None and suffix not in formats:
        got = f"{suffix!r}" if suffix else "no suffix"
        return f"{name!r} must end in {', '.join(formats)} (got {got})"
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        return f"{name!r}: the folder {os.path.dirname(name) or '.'!r} does not exist"
    if not os.access(folder, os.W_OK):
        return f"{name!r}: no permission to write into the folder {os.path.dirname(name) or '.'!r}"
    return None


def figure_formats() -> tuple[str, ...]:
    """The suffixes matplotlib writes figures in (``.png``, ``.pdf``, ``.svg``, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return tuple(sorted("." + ext for ext in FigureCanvasAgg(Figure()).get_supported_filetypes()))
