"""cnn_ext.imaging: users' pictures of digits turned into MNIST's 28x28 conventions."""
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from cnn_ext import imaging
from cnn_ext.imaging import load_image, to_mnist

# Pillow >= 9.1 spells these BICUBIC etc.; the old names work everywhere.
BICUBIC, ROTATE_90, NO_DITHER = Image.BICUBIC, Image.ROTATE_90, Image.NONE

N_DIGITS = 200
CANVAS = 280  # the drawing board's canvas side


# --------------------------------------------------------------------------- helpers


def centre_of_mass(img):
    """(row, column) as MNIST computes it: the intensity-weighted mean of the indices."""
    weights = np.asarray(img, dtype=np.float64)
    total = weights.sum()
    index = np.arange(weights.shape[0])
    return weights.sum(axis=1) @ index / total, weights.sum(axis=0) @ index / total


def extent(img):
    """Longer side of the bounding box of the non-zero pixels."""
    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    return max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)


def corr(a, b):
    return np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1]


def shifted(img, dy, dx):
    """``img`` moved by (dy, dx) whole pixels, zeros coming in (no wrap-around)."""
    padded = np.pad(img, 1)
    return padded[1 - dy : 1 - dy + img.shape[0], 1 - dx : 1 - dx + img.shape[1]]


def best_corr(a, b):
    """Correlation, allowing a one-pixel shift: whole-pixel centring (MNIST's and ours)
    rounds the centre of mass, so a centre near x.5 can land one pixel either way."""
    return max(corr(shifted(a, dy, dx), b) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


# MNIST's own convention, measured on all 70,000 digits: shifted by whole pixels so the
# centre of mass rounds to (14, 14), i.e. each coordinate lies in 13.5..14.5, and the
# digit's longer side is 20 pixels (19 for 16 digits).
COM_LOW, COM_HIGH = 13.5, 14.5


def assert_mnist_like(out):
    assert out.shape == (28, 28)
    assert out.dtype == np.uint8
    assert out.max() == 255
    cy, cx = centre_of_mass(out)
    assert COM_LOW <= cy <= COM_HIGH, f"centre-of-mass row {cy:.3f} outside {COM_LOW}..{COM_HIGH}"
    assert COM_LOW <= cx <= COM_HIGH, f"centre-of-mass column {cx:.3f} outside {COM_LOW}..{COM_HIGH}"
    # 20 by construction; 19 if an edge row/column of the scaled box rounds to 0;
    # 21 allowed for antialiasing spilling over.
    assert 19 <= extent(out) <= 21, f"extent {extent(out)}"


def draw_like_user(digit, rng):
    """An MNIST digit as a user would draw it on the board: black on a 280x280 white
    canvas, 40%..90% of its size, somewhere off-centre."""
    side = int(CANVAS * rng.uniform(0.4, 0.9))
    strokes = Image.fromarray(255 - digit).resize((side, side), BICUBIC)
    canvas = Image.new("L", (CANVAS, CANVAS), 255)
    corner = rng.integers(0, CANVAS - side + 1, size=2)
    canvas.paste(strokes, (int(corner[0]), int(corner[1])))
    return canvas


def summary(values):
    return f"median {np.median(values):.4f}, 5th percentile {np.percentile(values, 5):.4f}, min {np.min(values):.4f}"


@pytest.fixture(scope="module")
def digits(mnist):
    """200 test digits, chosen with a fixed seed."""
    (_, _), (x_test, _) = mnist
    pick = np.random.default_rng(2024).choice(len(x_test), N_DIGITS, replace=False)
    return x_test[pick]


@pytest.fixture(scope="module")
def canvas(digits):
    """One digit drawn on the board (L mode), the reference for the input-type tests."""
    return draw_like_user(digits[0], np.random.default_rng(7))


@pytest.fixture(scope="module")
def expected(canvas):
    return to_mnist(canvas)


# --------------------------------------------------------------------------- the contract


def test_mnist_itself_meets_the_contract(digits):
    """The checks in ``assert_mnist_like`` are MNIST's own properties."""
    for digit in digits:
        cy, cx = centre_of_mass(digit)
        assert COM_LOW <= cy <= COM_HIGH and COM_LOW <= cx <= COM_HIGH
        assert 19 <= extent(digit) <= 20


def test_output_contract_on_drawn_digits(digits):
    rng = np.random.default_rng(1)
    for digit in digits[:50]:
        assert_mnist_like(to_mnist(draw_like_user(digit, rng)))


@pytest.mark.parametrize("shape", ["tall", "wide", "ring", "diagonal"])
def test_output_contract_on_shapes(shape):
    img = np.zeros((300, 400), np.uint8)  # white strokes on black: no inversion
    if shape == "tall":  # a "1": the height becomes 20, the width a few pixels
        img[40:260, 190:205] = 255
    elif shape == "wide":
        img[140:160, 30:370] = 255
    elif shape == "ring":
        yy, xx = np.mgrid[:300, :400]
        r = np.hypot(yy - 120, xx - 250)
        img[(r > 60) & (r < 80)] = 255
    else:
        yy, xx = np.mgrid[:300, :400]
        img[np.abs(yy - 0.6 * xx) < 6] = 255
    out = to_mnist(img)
    assert_mnist_like(out)
    if shape == "tall":
        rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
        assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 3


def test_round_trip_of_mnist_digits(digits):
    """An MNIST digit is already in MNIST's conventions, so it comes back (nearly) as is."""
    outs = [to_mnist(d) for d in digits]
    plain = np.array([corr(o, d) for o, d in zip(outs, digits)])
    tolerant = np.array([best_corr(o, d) for o, d in zip(outs, digits)])
    print(f"\nMNIST round trip, correlation with the original: {summary(plain)}; "
          f"allowing a 1-pixel shift: {summary(tolerant)}")
    # Not exact: faint edge pixels (< 5% or, beside the digit, < 20% of the maximum) are
    # dropped, which can move the rounded centre of mass by one pixel.
    assert np.median(plain) > 0.99, summary(plain)
    assert np.mean(plain > 0.9) >= 0.95, summary(plain)
    assert tolerant.min() > 0.9, summary(tolerant)
    for out in outs:
        assert_mnist_like(out)


def test_digits_drawn_like_a_user_come_back(digits):
    """Black-on-white, big, off-centre drawings map back onto the original digits."""
    rng = np.random.default_rng(0)
    outs = [to_mnist(draw_like_user(d, rng)) for d in digits]
    plain = np.array([corr(o, d) for o, d in zip(outs, digits)])
    tolerant = np.array([best_corr(o, d) for o, d in zip(outs, digits)])
    print(f"\ndrawn digits, correlation with the original: {summary(plain)}; "
          f"allowing a 1-pixel shift: {summary(tolerant)}")
    assert np.median(plain) > 0.95, summary(plain)
    # The rest are mostly one-pixel shifts from rounding the centre of mass (see best_corr).
    assert np.mean(plain > 0.9) >= 0.8, summary(plain)
    assert np.mean(tolerant > 0.9) >= 0.95, summary(tolerant)
    assert tolerant.min() > 0.8, summary(tolerant)


def photograph(digit, rng, gradient=0.2, noise=0.02, contrast=0.5):
    """A phone-photo-like JPEG (opened with Pillow) of ``digit`` in grey ink on paper lit
    unevenly (brightness falling by ``gradient`` across), with sensor noise."""
    height, width, side = 300, 400, 180
    ink = np.asarray(Image.fromarray(digit).resize((side, side), BICUBIC), dtype=np.float32) / 255
    picture = np.repeat(np.linspace(0.95, 0.95 - gradient, width)[None, :], height, axis=0)
    picture[60 : 60 + side, 120 : 120 + side] -= contrast * ink
    picture += rng.normal(0.0, noise, picture.shape)
    tint = np.array([1.0, 0.97, 0.9])  # warm light
    rgb = np.clip(picture[..., None] * tint * 255, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=85)
    buffer.seek(0)
    return Image.open(buffer)


def test_photographs_with_uneven_light_and_noise(digits):
    rng = np.random.default_rng(5)
    outs = [to_mnist(photograph(d, rng)) for d in digits[:20]]
    tolerant = np.array([best_corr(o, d) for o, d in zip(outs, digits)])
    for out in outs:
        assert_mnist_like(out)
    print(f"\nphotographs, correlation allowing a 1-pixel shift: {summary(tolerant)}")
    assert np.median(tolerant) > 0.95, summary(tolerant)
    assert tolerant.min() > 0.85, summary(tolerant)


def test_ink_touching_the_edges(digits):
    """A tight crop: the strokes reach all four edges of the picture."""
    digit = digits[1]
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = 255 - digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    picture = Image.fromarray(crop).resize((crop.shape[1] * 10, crop.shape[0] * 10), BICUBIC)
    out = to_mnist(picture)
    assert_mnist_like(out)
    assert best_corr(out, digit) > 0.9


def test_polarity_does_not_matter(canvas, expected):
    assert np.array_equal(to_mnist(ImageOps.invert(canvas)), expected)


def test_light_background_with_grey_offset(canvas, expected):
    """Grey paper and grey ink: the background level is removed, the ink stretched to 255."""
    paper = np.asarray(canvas, dtype=np.float64) / 255 * 0.5 + 0.3  # ink 0.3, paper 0.8
    out = to_mnist(paper)
    assert_mnist_like(out)
    assert corr(out, expected) > 0.98


# --------------------------------------------------------------------------- input types


def _rgba_transparent(canvas):
    """Black strokes on a transparent background; the transparent pixels' colour is
    black too, so only compositing over white gives the right answer."""
    ink = 255 - np.asarray(canvas)
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[..., 3] = ink
    return Image.fromarray(rgba)


def _palette_transparent(canvas):
    """A palette image whose white entry is declared transparent (as GIFs and some PNGs
    do) and whose palette colour for it is black: again only compositing works."""
    image = canvas.convert("P")
    palette = image.getpalette()
    white = int(np.asarray(image)[0, 0])  # the paper's palette index
    palette[3 * white : 3 * white + 3] = [0, 0, 0]
    image.putpalette(palette)
    image.info["transparency"] = white
    return image


LOSSLESS = {
    "L": lambda c, tmp: c,
    "RGB": lambda c, tmp: c.convert("RGB"),
    "RGBA transparent": lambda c, tmp: _rgba_transparent(c),
    "LA": lambda c, tmp: c.convert("LA"),
    "P": lambda c, tmp: c.convert("P"),
    "P with a transparent palette entry": lambda c, tmp: _palette_transparent(c),
    "PA": lambda c, tmp: _rgba_transparent(c).convert("PA"),
    "La": lambda c, tmp: _rgba_transparent(c).convert("LA").convert("La"),
    "RGBa": lambda c, tmp: _rgba_transparent(c).convert("RGBa"),
    "CMYK": lambda c, tmp: c.convert("CMYK"),
    "I;16": lambda c, tmp: Image.fromarray(np.asarray(c).astype(np.uint16) * 257),
    "I": lambda c, tmp: c.convert("I"),
    "F": lambda c, tmp: c.convert("F"),
    "uint8 (H, W)": lambda c, tmp: np.asarray(c),
    "uint8 (H, W, 3)": lambda c, tmp: np.asarray(c.convert("RGB")),
    "uint8 (H, W, 4)": lambda c, tmp: np.asarray(_rgba_transparent(c)),
    "float (H, W)": lambda c, tmp: np.asarray(c) / 255.0,
    "float32 (H, W, 3)": lambda c, tmp: np.asarray(c.convert("RGB"), dtype=np.float32) / 255,
    "float (H, W, 1)": lambda c, tmp: np.asarray(c)[..., None] / 255.0,
    "read-only, non-contiguous": lambda c, tmp: np.asarray(c.convert("RGB"))[:, ::-1][:, ::-1],
    "PNG path (str)": lambda c, tmp: _save(c, tmp / "digit.png", str),
    "PNG path (pathlib)": lambda c, tmp: _save(c.convert("RGB"), tmp / "digit.png", None),
}
LOSSY = {
    "1 (bilevel)": lambda c, tmp: c.convert("1", dither=NO_DITHER),
    "1 (dithered)": lambda c, tmp: c.convert("1"),
    "JPEG path": lambda c, tmp: _save(c.convert("RGB"), tmp / "digit.jpg", str),
    "JPEG grey, low quality": lambda c, tmp: _save(c, tmp / "digit.jpeg", None, quality=40),
}


def _save(image, path, as_type, **options):
    image.save(path, **options)
    return as_type(path) if as_type else path


@pytest.mark.parametrize("kind", list(LOSSLESS))
def test_lossless_inputs_give_the_same_result(kind, canvas, expected, tmp_path):
    out = to_mnist(LOSSLESS[kind](canvas, tmp_path))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    # float rounding may move a grey level by one
    assert np.abs(out.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("kind", list(LOSSY))
def test_lossy_inputs_give_nearly_the_same_result(kind, canvas, expected, tmp_path):
    out = to_mnist(LOSSY[kind](canvas, tmp_path))
    assert_mnist_like(out)
    # Dithering scatters the strokes' grey edges into dots; the rest keep their shape.
    assert best_corr(out, expected) > (0.9 if "dithered" in kind else 0.95)


def test_input_is_not_modified(canvas):
    arr = np.asarray(canvas.convert("RGB")).copy()
    before = arr.copy()
    to_mnist(arr)
    assert np.array_equal(arr, before)


def test_exif_orientation_is_applied(canvas, expected, tmp_path):
    """A camera photo stored sideways with an EXIF Orientation tag is read upright."""
    wide = Image.new("L", (CANVAS + 60, CANVAS), 255)
    wide.paste(canvas, (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "photo.jpg"
    wide.transpose(ROTATE_90).save(path, exif=exif, quality=95)

    loaded = load_image(path)
    assert loaded.size == wide.size
    assert best_corr(to_mnist(path), expected) > 0.95
    with Image.open(path) as opened:  # an opened photo is turned upright too
        assert best_corr(to_mnist(opened), expected) > 0.95


def test_load_image_reads_the_whole_file(canvas, tmp_path):
    path = _save(canvas, tmp_path / "digit.png", None)
    image = load_image(path)
    path.unlink()  # the image must not depend on the file any more
    assert image.size == canvas.size
    assert np.array_equal(np.asarray(image), np.asarray(canvas))


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("blank", [
    np.zeros((28, 28), np.uint8),
    np.full((280, 280), 255, np.uint8),
    np.full((50, 70), 0.4),
    np.full((1, 1), 0.7),
    np.zeros((40, 40, 4), np.uint8),  # fully transparent
], ids=["black", "white", "grey", "1x1", "transparent"])
def test_blank_image_gives_zeros(blank):
    out = to_mnist(blank)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert not out.any()


def test_faint_noise_alone_gives_zeros():
    paper = np.random.default_rng(3).integers(245, 256, (280, 280), dtype=np.uint8)
    assert not to_mnist(paper).any()


@pytest.mark.parametrize("where", [(140, 140), (0, 0), (279, 5)])
def test_single_dot(where):
    board = np.full((280, 280), 255, np.uint8)
    board[where] = 0
    out = to_mnist(board)
    assert_mnist_like(out)


def test_lopsided_shape_is_cut_at_the_frame_like_mnist():
    """A heavy bar with a thin stem: centring its mass pushes the stem's end out."""
    img = np.zeros((200, 200), np.uint8)
    img[0:40, :] = 255
    img[40:200, 98:102] = 255
    out = to_mnist(img)
    assert out.shape == (28, 28) and out.max() == 255
    assert out[27].any()  # the stem runs to the frame's edge


def test_dust_far_from_the_digit_is_ignored(canvas, expected):
    noisy = np.asarray(canvas).copy()
    noisy[5:8, 5:8] = 255 - int(0.15 * 255)  # a faint smudge: 15% of the ink's contrast
    noisy[270, 10] = 0  # a black speck: one pixel, as dark as the ink
    assert np.array_equal(to_mnist(noisy), expected)


# --------------------------------------------------------------------------- errors


def test_not_an_image_file(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("this is text, not pixels\n")
    with pytest.raises(ValueError, match=r"x\.png.*not a PNG/JPEG image Pillow can read"):
        to_mnist(path)
    with pytest.raises(ValueError, match=r"x\.png.*not a PNG/JPEG image Pillow can read"):
        load_image(str(path))


def test_truncated_file(canvas, tmp_path):
    path = _save(canvas, tmp_path / "cut.png", None)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.png.*not a PNG/JPEG image"):
        to_mnist(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.png"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png"):
        to_mnist(str(path))
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png"):
        load_image(path)


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros(5), ValueError, r"expects shape \(H, W\) or \(H, W, C\).*got shape \(5,\)"),
    (np.zeros((8, 8, 5), np.uint8), ValueError, r"C in 1\.\.4.*got shape \(8, 8, 5\)"),
    (np.zeros((2, 8, 8, 3)), ValueError, r"got shape \(2, 8, 8, 3\)"),
    (np.zeros((0, 8)), ValueError, r"non-empty.*\(0, 8\)"),
    (np.zeros((8, 8), complex), TypeError, r"real numeric array.*got dtype complex128"),
    (np.array([["a"]]), TypeError, r"real numeric array.*got dtype <U1"),
    (np.full((8, 8), 200.0), ValueError, r"float arrays must hold 0\.\.1, got values 200\.\.200"),
    (np.full((8, 8), np.nan), ValueError, r"finite"),
    (np.full((8, 8), 300), ValueError, r"must hold 0\.\.255, got values 300\.\.300"),
    ([[0, 255], [255, 0]], TypeError, r"expects a PIL\.Image\.Image, a path.*or a numpy array, got list"),
    (b"digit.png", TypeError, r"got bytes"),
    (None, TypeError, r"got NoneType"),
])
def test_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        to_mnist(bad)


def test_unconvertible_image_mode():
    with pytest.raises(ValueError, match=r"cannot read a LAB image as grey levels"):
        to_mnist(Image.new("LAB", (8, 8)))


def test_public_api():
    assert set(imaging.__all__) == {"to_mnist", "load_image", "digit_problem", "has_digit"}
    assert to_mnist.__doc__ and load_image.__doc__


# ------------------------------------------------------------------ is there a digit?


def _paper(value=255, size=200):
    return np.full((size, size), value, np.uint8)


def _no_digit_pictures():
    rng = np.random.default_rng(7)
    light_noise = [np.clip(rng.normal(235, 10, (200, 200)), 0, 255).astype(np.uint8) for _ in range(6)]
    faint = _paper()
    faint[50:150, 95:105] = 245  # a stroke 10 grey levels from the paper: below what to_mnist sees
    dot = _paper()
    dot[100:103, 100:103] = 0  # a speck, which to_mnist would blow up to a 20x20 blob
    blob = _paper()
    blob[30:170, 30:170] = 0  # a filled square
    yy, xx = np.mgrid[:200, :200]
    disc = _paper()
    disc[(yy - 100) ** 2 + (xx - 100) ** 2 <= 25] = 0  # a dot, which to_mnist scales to a filled disc
    return {
        "blank white": _paper(),
        "blank black": _paper(0),
        "uniform noise": rng.integers(0, 256, (200, 200)).astype(np.uint8),
        **{f"grey noise 10 #{k}": image for k, image in enumerate(light_noise)},
        "grey noise 20": np.clip(rng.normal(235, 20, (200, 200)), 0, 255).astype(np.uint8),
        "grey noise 40": np.clip(rng.normal(235, 40, (200, 200)), 0, 255).astype(np.uint8),
        "grey noise 80": np.clip(rng.normal(200, 80, (200, 200)), 0, 255).astype(np.uint8),
        "faint stroke": faint,
        "dot": dot,
        "filled square": blob,
        "dot of radius 5": disc,
    }


@pytest.mark.parametrize("name", list(_no_digit_pictures()))
def test_pictures_without_a_digit(name):
    picture = _no_digit_pictures()[name]
    problem = imaging.digit_problem(picture)
    assert problem is not None, name
    assert not imaging.has_digit(picture)
    # the same answer for the picture as a file and for its to_mnist result
    assert imaging.digit_problem(to_mnist(picture)) == problem


def test_every_mnist_test_digit_holds_a_digit(mnist):
    """The bounds come from MNIST's statistics: every test digit passes, as it is and
    after to_mnist, and so does a thin but clear stroke."""
    _, (x_test, _) = mnist
    assert all(imaging.digit_problem(image) is None for image in x_test)
    assert all(imaging.has_digit(to_mnist(image)) for image in x_test[:2000])
    pencil = _paper()
    pencil[40:160, 98:101] = 140  # a thin, light pencil "1"
    assert imaging.has_digit(pencil)


def test_reasons_say_what_is_wrong():
    assert "blank" in imaging.digit_problem(np.zeros((28, 28), np.uint8))
    assert "too much ink" in imaging.digit_problem(_no_digit_pictures()["filled square"])
    speck = np.zeros((28, 28), np.uint8)
    speck[10:13, 10:13] = 255
    assert "too little ink" in imaging.digit_problem(speck)
    smudge = np.zeros((28, 28), np.uint8)
    smudge[4:24, 8:18] = 60
    smudge[12, 12] = 255
    assert "no clear stroke" in imaging.digit_problem(smudge)
    specks = np.zeros((28, 28), np.uint8)
    specks[4:24:3, 4:24:3] = 255
    assert "scattered specks" in imaging.digit_problem(specks)


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path):
    # 30000 x 30000 of one colour: a PNG of a few hundred kB that decodes to 900 megapixels
    path = tmp_path / "bomb.png"
    Image.new("1", (30000, 30000)).save(path)
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match=r"too large to be a digit's picture"):
        load_image(path)
