"""Turn a user's picture of a digit into an MNIST-style 28x28 image.

MNIST was made from binary NIST scans: each digit was scaled, keeping its aspect ratio,
to fit a 20x20 box (the antialiasing of that scaling is where its grey levels come from),
then placed in a 28x28 frame so that its centre of mass, the intensity-weighted mean of
the row and column indices, lands at (14, 14). Digits are white (255) on black (0).
:func:`to_mnist` applies the same recipe to a photo, a scan or a drawing-board canvas,
so that a network trained on MNIST sees the kind of input it was trained on.

Only Pillow and NumPy are used; no step loops over pixels in Python.
"""
from __future__ import annotations

import errno
import os
import struct
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ._files import open_regular

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    # What to_mnist takes: a PIL image, a path, or an array of real numbers.
    _Picture: TypeAlias = (Image.Image | str | os.PathLike[str]
                           | npt.NDArray[np.bool_ | np.integer[Any] | np.floating[Any]])

__all__ = ["to_mnist", "load_image", "digit_problem", "has_digit"]

SIZE = 28  # side of the MNIST frame
BOX = 20  # side of the box the digit is scaled to fit
CENTRE = 14.0  # where MNIST puts the centre of mass (row and column index)

# Border brighter than this (on a 0..1 scale) means dark ink on a light background.
LIGHT_BACKGROUND = 0.5
# Less contrast than this between the darkest ink and the background is "no digit":
# about 25 grey levels, above JPEG noise on a blank page, below a faint pencil stroke.
MIN_CONTRAST = 0.1
# After removing the background, ink weaker than NOISE_FRACTION of the strongest ink is
# noise (JPEG ringing, paper grain) and is zeroed, as MNIST's background is exactly 0.
NOISE_FRACTION = 0.05
# So is anything closer to the background than NOISE_MARGIN times the paper's own
# variation, measured on the border where it is darker than the background level (ink
# is never there, so ink touching the edge does not count): a photo's sensor noise and
# uneven lighting show there. A drawing board's border is uniform: this term is 0.
NOISE_MARGIN = 2.0
# The digit's extent (the box scaled to 20 pixels) only counts ink of at least
# EXTENT_FRACTION of the strongest: a blurred photo's or upscaled drawing's faint halo
# would otherwise make the digit come out small. MNIST digits keep their 20-pixel extent
# at this cut (99.9% of them even at 0.25), so MNIST input comes back nearly unchanged.
EXTENT_FRACTION = 0.2

# What a digit looks like in MNIST, from MNIST's own 70,000 images (raw, and after
# to_mnist; the test suite checks every test digit passes). A picture outside these
# bounds holds no digit the network could read, and predicting on it would only give a
# confident wrong answer (a blank page was "1 (93%)").
# - Ink pixels (> 0): MNIST digits have 34..351 (the digit's 20x20 box holds 400, and
#   strokes are thin). More fills the box: noise, a texture, a blob (to_mnist scales
#   a speck up to fill it too). Fewer than 15 is a speck left in a 28x28 frame: to_mnist
#   scales any stroke to 20 pixels, so a thin pen's "1" still has about 20.
MIN_INK_PIXELS = 15
MAX_INK_PIXELS = 380
# - Share of the ink mass in strong pixels (>= half white): at least 0.57 in MNIST, whose
#   strokes are solid with a thin antialiased rim. Noise and faint smudges are mostly grey.
MIN_STRONG_SHARE = 0.5
# - Share of the ink pixels with no ink among their 8 neighbours: at most 4.5% in MNIST
#   (strokes are connected). Scattered specks (noise that survived to_mnist) are not.
MAX_ISOLATED_SHARE = 0.15
# - Share of the strong pixels (>= half white) at the centre of a 5x5 square of strong
#   pixels, i.e. inside a blob wider than a stroke: at most 0.43 in MNIST (bold 0s and
#   8s), above 0.5 for a dot or a click that to_mnist scaled up to a filled disc.
MAX_SOLID_SHARE = 0.45

# ITU-R 601-2 luma, the weights Pillow's convert("L") uses, so that an RGB array and
# the same picture as a PIL image give the same grey levels.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# A digit ends up 20 pixels wide: a picture with a longer side than this is reduced first
# (a box average in Pillow), so that the work and memory are bounded by the output, not by
# the picture (a float32 copy of a 100-megapixel scan alone would take 400 MB).
MAX_SIDE = 2048

_ImageOrArray = "PIL.Image.Image, a path (str or os.PathLike) or a numpy array"
# Pillow >= 9.1 names its filters Image.Resampling.*; 9.0 only has the Image.* constants.
_Resampling = getattr(Image, "Resampling", Image)


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open the PNG/JPEG (or any Pillow-readable) file at ``path`` as a PIL image.

    The EXIF orientation of camera photos is applied, so the image is upright. The file
    is read completely and closed before returning.

    A large JPEG is decoded at a reduced scale (Pillow's ``draft``): the digit ends up 20
    pixels wide anyway.

    Raises ``FileNotFoundError`` if there is no such file, ``ValueError`` if the path is not
    a regular file (a FIFO, a folder: refused at once, never waited on), if the file is not
    an image Pillow can read (wrong content, truncated file), or would decode to more than
    Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb, or a picture far larger than
    any digit needs), or does not fit in the memory available.
    """
    name = os.fspath(path)
    try:
        file = open_regular(name, "an image file")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "No such image file", name) from None
    try:
        with file, warnings.catch_warnings():
            # Pillow only warns between its limit and twice it: such a picture (a 37 kB PNG
            # of 13,000 x 13,000 pixels, say) would take gigabytes: refuse it like a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as opened:
                if opened.format == "JPEG" and max(opened.size) > 2 * MAX_SIDE:
                    opened.draft(opened.mode, (MAX_SIDE, MAX_SIDE))  # decode at 1/2, 1/4 or 1/8 scale
                opened.load()  # decode now, so that truncated files fail here
                image = ImageOps.exif_transpose(opened)
                if image is opened:  # detach from the file that is about to close
                    image = opened.copy()
    except (PermissionError, IsADirectoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # A small file that would decode to gigapixels: refuse it before any memory is used.
        raise ValueError(f"{name!r} is too large to be a digit's picture ({exc})") from None
    except MemoryError:
        raise ValueError(f"{name!r}: not enough memory to decode this picture") from None
    # Pillow's decoders signal a bad or truncated file with any of these.
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError, struct.error) as exc:
        raise ValueError(f"{name!r} is not a PNG/JPEG image Pillow can read ({exc})") from exc
    return image


def to_mnist(image: _Picture) -> npt.NDArray[np.uint8]:
    """The digit in ``image`` as MNIST would have it: a (28, 28) uint8 array.

    ``image`` is one of

    - a ``PIL.Image.Image`` in any mode (transparent pixels count as white paper);
    - a path (``str`` or ``os.PathLike``) to a PNG/JPEG file, opened with :func:`load_image`;
    - a numpy array of shape (H, W) or (H, W, C), C = 1 (grey), 2 (grey, alpha),
      3 (RGB) or 4 (RGBA); uint8 0..255, uint16 0..65535, other integers 0..255,
      bool, or float 0..1.

    Dark-on-light and light-on-dark pictures are both accepted: the median of the border
    is taken as the paper, so the ink must cover less than half of the picture's edge.
    Noise and uneven lighting as large as the paper's variation along the border are
    dropped, and so are isolated specks. The result is a new array: a white digit
    (maximum exactly 255) on black (0), scaled so that its longer side spans 20 pixels,
    with its centre of mass within half a pixel of (14, 14). A picture without ink
    (blank, uniform, or too faint) gives all zeros.
    """
    try:
        gray = _as_gray(image)
    except MemoryError:
        raise ValueError("to_mnist(image): not enough memory to convert this picture") from None

    # Polarity: the border is mostly background (its median is the background level for
    # any picture whose ink covers less than half the edge); MNIST wants light on dark.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > LIGHT_BACKGROUND:
        gray, border, background = 1.0 - gray, 1.0 - border, 1.0 - background
    paper = background - border[border < background]  # the side away from the ink
    spread = float(np.percentile(paper, 90)) if paper.size else 0.0

    # Ink is what differs from the background towards white; shadows on the other side
    # of the background level (darker paper, after the inversion) are not ink.
    ink = np.clip(gray - background, 0.0, None)
    peak = float(ink.max())
    floor = max(NOISE_FRACTION * peak, NOISE_MARGIN * spread)
    if peak < MIN_CONTRAST or peak <= floor:  # nothing stands out of the paper
        return np.zeros((SIZE, SIZE), np.uint8)
    ink[ink < floor] = 0.0

    # Crop to the digit's extent; weaker ink inside it stays (it is antialiasing).
    strong = _without_specks(ink >= EXTENT_FRACTION * peak)
    rows = np.flatnonzero(strong.any(axis=1))
    cols = np.flatnonzero(strong.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    patch = _fit_box(ink)
    patch = np.rint(patch * (255.0 / patch.max())).astype(np.uint8)
    return _centre(patch)


def digit_problem(image: _Picture) -> str | None:
    """Why ``image`` holds no digit the network can read, or ``None`` if it holds one.

    ``image`` is a (28, 28) uint8 array in MNIST's conventions (an MNIST digit, or what
    :func:`to_mnist` returns), taken as it is; anything else that :func:`to_mnist`
    accepts (a file, a PIL image, another array) is converted with it first. The answer
    is a short reason, e.g. ``"the picture is blank"``, based on MNIST's own statistics:
    how many pixels carry ink, whether they form strokes, and how much of the ink is in
    solid strokes.
    """
    if not (isinstance(image, np.ndarray) and image.shape == (SIZE, SIZE) and image.dtype == np.uint8):
        image = to_mnist(image)
    ink = image.astype(np.float64) / 255.0
    pixels = int(np.count_nonzero(ink))
    if pixels == 0:
        return "the picture is blank: no ink stands out of the background"
    if pixels < MIN_INK_PIXELS:
        return (f"too little ink: {pixels} pixels of the 28x28 digit, where MNIST digits have "
                f"at least 34; a speck, not a digit")
    if pixels > MAX_INK_PIXELS:
        return (f"too much ink: {pixels} pixels of the 28x28 digit, where MNIST digits have at "
                f"most 351; noise, a texture or a filled shape, not a stroke")
    on = ink > 0
    padded = np.pad(on, 1)
    neighbours = np.zeros(on.shape, np.int8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                neighbours += padded[dy:dy + SIZE, dx:dx + SIZE]
    isolated = float(np.count_nonzero(on & (neighbours == 0))) / pixels
    if isolated > MAX_ISOLATED_SHARE:
        return (f"scattered specks: {100 * isolated:.0f}% of the ink pixels touch no other, where "
                f"MNIST digits have at most 5%; noise, not a stroke")
    solid = ink >= 0.5
    padded = np.pad(solid, 2)
    inside = solid.copy()
    for dy in range(5):
        for dx in range(5):
            inside &= padded[dy:dy + SIZE, dx:dx + SIZE]
    solid_share = float(np.count_nonzero(inside)) / max(int(np.count_nonzero(solid)), 1)
    if solid_share > MAX_SOLID_SHARE:
        return (f"a filled blob, not a stroke: {100 * solid_share:.0f}% of the solid ink lies more than "
                f"2 pixels inside it, where MNIST digits have at most 43%; a dot or a filled shape")
    strong = float(ink[ink >= 0.5].sum() / ink.sum())
    if strong < MIN_STRONG_SHARE:
        return (f"no clear stroke: only {100 * strong:.0f}% of the ink is solid, where MNIST "
                f"digits have at least 57%; noise or a smudge")
    return None


def has_digit(image: _Picture) -> bool:
    """Whether ``image`` (as for :func:`digit_problem`) holds a digit: ``digit_problem(image) is None``."""
    return digit_problem(image) is None


# --------------------------------------------------------------------------- helpers


def _as_gray(image: object) -> npt.NDArray[np.float32]:
    """``image`` as a float32 (H, W) array in 0..1, 0 black, 1 white."""
    if isinstance(image, (str, os.PathLike)):
        return _pil_to_gray(load_image(image))
    if isinstance(image, Image.Image):
        # Same as for a file: a photo opened with Image.open must come out upright too.
        return _pil_to_gray(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return _array_to_gray(image, "to_mnist(image)")
    raise TypeError(
        f"to_mnist(image) expects a {_ImageOrArray}, got {type(image).__qualname__} {image!r:.60}"
    )


def _pil_to_gray(image: Image.Image) -> npt.NDArray[np.float32]:
    mode = image.mode
    if image.width == 0 or image.height == 0:
        raise ValueError(f"to_mnist(image) expects a non-empty image, got size {image.size}")
    image = _reduced(image)
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        # More than 8 bits: read the values, as Pillow's conversion to L would clip them.
        arr = np.asarray(image, dtype=np.float32)
        if not np.isfinite(arr).all():  # as for a float array: one inf would swamp the digit
            raise ValueError("to_mnist(image): float pictures must be finite, got NaN or inf")
        if mode.startswith("I;16"):
            full = 65535.0
        elif mode == "F" and arr.max() <= 1.0:  # floats are 0..1 or 0..255 by convention
            full = 1.0
        else:  # "I" holds 16-bit PNGs, or 0..255 data from Image.fromarray
            full = 255.0 if arr.max() <= 255 else 65535.0
        scaled: npt.NDArray[np.float32] = np.clip(arr / np.float32(full), 0.0, 1.0)
        return scaled

    # 8-bit modes: Pillow does the colour maths in uint8, which keeps a phone photo's
    # memory small (a float RGB copy of 12 megapixels would take 144 MB).
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    try:
        if has_alpha:
            # Composite over white paper: a transparent pixel is background, not black ink.
            rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")  # no La->RGBA
            paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(paper, rgba)
        gray = image.convert("L")
    except ValueError as exc:  # e.g. LAB, which Pillow cannot convert
        raise ValueError(f"to_mnist(image) cannot read a {mode} image as grey levels: {exc}") from None
    levels: npt.NDArray[np.float32] = np.asarray(gray, dtype=np.float32) / np.float32(255)
    return levels


def _reduced(image: Image.Image) -> Image.Image:
    """``image`` with its longer side at most MAX_SIDE, by Pillow's box-average ``reduce``
    (an integer factor), or itself when it is no larger."""
    factor = -(-max(image.size) // MAX_SIDE)
    if factor <= 1:
        return image
    mode = image.mode
    if mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):  # what reduce takes
        has_alpha = mode in ("PA", "La", "RGBa") or "transparency" in image.info
        target = ("RGBA" if has_alpha else "RGB") if mode in ("P", "PA", "RGBa", "CMYK", "YCbCr") else \
            "LA" if has_alpha else "I" if mode.startswith("I;16") else "L"
        if mode == "La":
            image = image.convert("LA")
        image = image.convert(target)
    return image.reduce(factor)


def _array_to_gray(arr: npt.NDArray[Any], where: str) -> npt.NDArray[np.float32]:
    if arr.dtype.kind not in "buif":
        raise TypeError(
            f"{where} expects a real numeric array (uint8 0..255 or float 0..1), got dtype {arr.dtype}"
        )
    if arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4):
        channels = arr.shape[2]
    elif arr.ndim == 2:
        channels = 0
    else:
        raise ValueError(
            f"{where} expects shape (H, W) or (H, W, C) with C in 1..4 "
            f"(grey, grey+alpha, RGB, RGBA), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{where} expects a non-empty image, got shape {arr.shape}")

    x = _unit_scale(arr, where)
    if channels == 0:
        return x
    if channels in (2, 4):
        # Composite over white paper: a transparent pixel is background, not black ink.
        alpha = x[..., -1:]
        x = x[..., :-1] * alpha + (1.0 - alpha)
    if x.shape[2] == 3:
        return x @ _LUMA
    return x[..., 0]


def _unit_scale(arr: npt.NDArray[Any], where: str) -> npt.NDArray[np.float32]:
    """``arr`` as float32 in 0..1, according to its dtype's convention (float32 is ample
    for 8- and 16-bit data and halves the memory of a large photo)."""
    kind, itemsize = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return arr.astype(np.float32)
    if kind == "u" and itemsize == 2:
        scaled: npt.NDArray[np.float32] = arr.astype(np.float32) / np.float32(65535)
        return scaled
    if kind in "ui":
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{where}: integer arrays other than uint16 must hold 0..255, got values {lo}..{hi}"
            )
        scaled = arr.astype(np.float32) / np.float32(255)
        return scaled
    x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: float arrays must be finite (values 0..1), got NaN or inf")
    lo, hi = x.min(), x.max()
    if lo < -1e-6 or hi > 1.0 + 1e-6:
        raise ValueError(
            f"{where}: float arrays must hold 0..1, got values {lo:g}..{hi:g} "
            "(divide 0..255 data by 255, or pass it as uint8)"
        )
    return np.clip(x, 0.0, 1.0)


def _without_specks(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``mask`` without pixels that have no set 4-neighbour: isolated noise (a hot pixel,
    a speck of dust) must not stretch the digit's extent. A picture that is nothing but
    such pixels (a single dot) keeps them."""
    neighbour = np.zeros_like(mask)
    neighbour[1:] |= mask[:-1]
    neighbour[:-1] |= mask[1:]
    neighbour[:, 1:] |= mask[:, :-1]
    neighbour[:, :-1] |= mask[:, 1:]
    kept = mask & neighbour
    return kept if kept.any() else mask


def _fit_box(ink: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """``ink`` (h, w) scaled so its longer side is BOX pixels, aspect ratio kept."""
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow wants (w, h)
    # BOX averages the covered area, i.e. it antialiases like MNIST: the grey levels stay
    # inside the 20-pixel box (MNIST's do) and nothing rings. Growing a small picture,
    # BOX would repeat pixels into blocks, so LANCZOS interpolates instead.
    resample = _Resampling.BOX if scale <= 1 else _Resampling.LANCZOS
    resized = Image.fromarray(np.ascontiguousarray(ink)).resize(size, resample)  # float32: "F"
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, None)  # LANCZOS undershoots


def _centre(patch: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``patch`` (h, w) uint8, at most BOX x BOX, pasted into a SIZE x SIZE black frame
    with its centre of mass at (CENTRE, CENTRE).

    The shift is by whole pixels, as in MNIST, so nothing is blurred; the centre of mass
    then lies within half a pixel of the centre. The shift is computed on the uint8 values
    returned, so that bound holds exactly for the output. Ink pushed past the frame is cut
    (only lopsided shapes reach it; 1.3% of MNIST's digits touch the frame's edge too).
    """
    weights = patch.astype(np.float64)
    total = weights.sum()
    cy = weights.sum(axis=1) @ np.arange(patch.shape[0]) / total
    cx = weights.sum(axis=0) @ np.arange(patch.shape[1]) / total
    top, left = int(np.rint(CENTRE - cy)), int(np.rint(CENTRE - cx))

    out = np.zeros((SIZE, SIZE), np.uint8)
    # Intersection of the shifted patch with the frame, in frame and in patch coordinates.
    y0, y1 = max(top, 0), min(top + patch.shape[0], SIZE)
    x0, x1 = max(left, 0), min(left + patch.shape[1], SIZE)
    out[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    if 0 < out.max() < 255:  # the brightest pixel was cut off: saturate again
        out = np.rint(out * (255.0 / out.max())).astype(np.uint8)
    return out
