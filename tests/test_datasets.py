"""cnn_ext.datasets.mnist: the embedded MNIST, the other sources, and every error path."""
import gzip
import hashlib
import io
import os
import re
import struct
import zipfile
from importlib import resources

import numpy as np
import pytest

from cnn_ext.datasets import mnist as ds
from cnn_ext.datasets.mnist import MNISTFormatError, load_data

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
STEMS = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# sha256 of the *uncompressed* IDX bytes (see ../shared/data/mnist/README.md)
SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _embedded_dir():
    """The data folder of the *installed* package."""
    return resources.files("cnn_ext.datasets") / "data"


def _match(name, problem):
    """Regex: the message names the file ``name`` and then states ``problem``."""
    return re.escape(name) + ".*" + problem


def raises_format(name, problem):
    """``pytest.raises(MNISTFormatError)`` whose message names ``name`` and states ``problem``."""
    return pytest.raises(MNISTFormatError, match=_match(name, problem))


# --------------------------------------------------------------------------- helpers


def idx_bytes(arr, magic=None, dims=None):
    """An uncompressed IDX file for a uint8 array (written independently of the loader)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = (0x0800 | arr.ndim) if magic is None else magic
    dims = arr.shape if dims is None else dims
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + arr.tobytes()


def parse_idx_independently(path):
    """A tiny reference parser: gzip + struct, nothing from cnn_ext."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert (zero, dtype) == (0, 0x08)
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    assert len(body) == int(np.prod(dims))
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def synthetic(seed=0, n_train=5, n_test=3):
    """A small MNIST-shaped data set: ((x_train, y_train), (x_test, y_test))."""
    rng = np.random.default_rng(seed)
    return (
        (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
         rng.integers(0, 10, n_train, dtype=np.uint8)),
        (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
         rng.integers(0, 10, n_test, dtype=np.uint8)),
    )


def write_idx_set(folder, data, gz=True, raw_overrides=None):
    """Write ``data`` as the four IDX files (gzipped if ``gz`` is true, or a set of stems).

    ``raw_overrides`` maps a stem to replacement uncompressed bytes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = data
    contents = dict(zip(STEMS, map(idx_bytes, (x_tr, y_tr, x_te, y_te))))
    contents.update(raw_overrides or {})
    for stem, raw in contents.items():
        zipped = gz if isinstance(gz, bool) else stem in gz
        if zipped:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return folder


def assert_same(got, want):
    (gx, gy), (tx, ty) = got
    (wx, wy), (ux, uy) = want
    for g, w in ((gx, wx), (gy, wy), (tx, ux), (ty, uy)):
        assert g.dtype == np.uint8 and g.shape == w.shape
        assert g.flags.c_contiguous and g.flags.writeable
        np.testing.assert_array_equal(g, w)


def save_npz(path, data=None, compressed=False, **replace):
    (x_tr, y_tr), (x_te, y_te) = synthetic() if data is None else data
    arrays = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


# --------------------------------------------------------------------------- embedded set


def test_embedded_shapes_dtypes_flags(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert type(a) is np.ndarray and a.dtype == np.uint8
        assert a.flags.c_contiguous and a.flags.writeable


def test_embedded_first_labels(mnist):
    (_, y_train), (_, y_test) = mnist
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_embedded_class_counts_and_pixels(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_CLASS_COUNTS
    assert y_train.max() == 9 and y_test.max() == 9
    assert round(float(x_train.mean(dtype=np.float64)), 4) == 33.3184
    assert x_train.min() == 0 and x_train.max() == 255


@pytest.mark.parametrize("stem", STEMS)
def test_embedded_files_sha256(stem):
    raw = gzip.decompress((_embedded_dir() / f"{stem}.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SHA256[stem]


def test_each_call_returns_fresh_arrays(mnist):
    (x_train, y_train), _ = load_data()
    x_train[0] = 255
    y_train[:] = 0
    (x_again, y_again), _ = load_data()
    np.testing.assert_array_equal(x_again[0], mnist[0][0][0])
    assert y_again[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_public_api():
    assert set(ds.__all__) == {"MNISTFormatError", "load_data", "train_images", "train_labels",
                               "test_images", "test_labels"}
    assert issubclass(MNISTFormatError, ValueError)
    import cnn_ext.datasets

    assert cnn_ext.datasets.mnist is ds
    assert "LeCun" in ds.__doc__ and "CC BY-SA 3.0" in ds.__doc__


# --------------------------------------------------------------------------- real files on disk


@pytest.mark.parametrize("stem", STEMS)
def test_shared_files_sha256(shared_mnist_dir, stem):
    raw = gzip.decompress((shared_mnist_dir / f"{stem}.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SHA256[stem]


def test_embedded_equals_independent_parse_of_shared(shared_mnist_dir, mnist):
    want = tuple(
        (parse_idx_independently(shared_mnist_dir / f"{img}.gz"),
         parse_idx_independently(shared_mnist_dir / f"{lab}.gz"))
        for img, lab in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS))
    )
    assert_same(mnist, want)


def test_path_shared_gz_folder(shared_mnist_dir, mnist):
    assert_same(load_data(shared_mnist_dir), mnist)


def test_path_raw_copy_of_real_set(tmp_path, mnist):
    for stem in STEMS:
        raw = gzip.decompress((_embedded_dir() / f"{stem}.gz").read_bytes())
        (tmp_path / stem).write_bytes(raw)
    assert_same(load_data(str(tmp_path)), mnist)


# --------------------------------------------------------------------------- synthetic sets


@pytest.mark.parametrize(
    "gz", [True, False, {TRAIN_IMAGES, TEST_LABELS}], ids=["gz", "raw", "mixed"]
)
@pytest.mark.parametrize("as_str", [False, True], ids=["Path", "str"])
def test_path_idx_folder(tmp_path, gz, as_str):
    data = synthetic()
    folder = write_idx_set(tmp_path / "mnist", data, gz=gz)
    assert_same(load_data(str(folder) if as_str else folder), data)


def test_path_accepts_any_pathlike(tmp_path):
    class P:
        def __init__(self, p):
            self.p = p

        def __fspath__(self):
            return str(self.p)

    data = synthetic()
    assert_same(load_data(P(write_idx_set(tmp_path, data))), data)
    assert_same(load_data(P(save_npz(tmp_path / "m.npz", data))), data)


def test_gz_preferred_when_both_exist(tmp_path):
    data_gz, data_raw = synthetic(1), synthetic(2)
    write_idx_set(tmp_path, data_gz, gz=True)
    write_idx_set(tmp_path, data_raw, gz=False)
    assert_same(load_data(tmp_path), data_gz)


def test_multi_member_gzip(tmp_path):
    data = synthetic()
    write_idx_set(tmp_path, data)
    raw = idx_bytes(data[0][0])
    two_members = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    (tmp_path / f"{TRAIN_IMAGES}.gz").write_bytes(two_members)
    assert_same(load_data(tmp_path), data)


def test_empty_but_valid_split(tmp_path):
    data = synthetic(n_test=0)
    assert_same(load_data(write_idx_set(tmp_path, data)), data)


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_path_npz(tmp_path, compressed):
    data = synthetic()
    assert_same(load_data(save_npz(tmp_path / "mnist.npz", data, compressed)), data)


def test_npz_fortran_order_becomes_c_contiguous(tmp_path):
    data = synthetic()
    path = save_npz(tmp_path / "mnist.npz", data, x_train=np.asfortranarray(data[0][0]))
    assert_same(load_data(path), data)


def test_npz_of_real_set(tmp_path, mnist):
    (x_tr, y_tr), (x_te, y_te) = mnist
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    assert_same(load_data(path), mnist)


# --------------------------------------------------------------------------- IDX errors


def _error_folder(tmp_path, stem, raw, gz=True):
    return write_idx_set(tmp_path, synthetic(), gz=gz, raw_overrides={stem: raw})


@pytest.mark.parametrize(
    "stem, magic, found",
    [
        (TRAIN_IMAGES, 2049, r"found 2049 \(0x00000801, an IDX labels file\)"),
        (TEST_LABELS, 2051, r"found 2051 \(0x00000803, an IDX images file\)"),
        (TEST_IMAGES, 0x0D03, r"IDX type 0x0d \(float32\)"),
        (TRAIN_LABELS, 0xDEADBEEF, r"not an IDX file"),
    ],
)
def test_wrong_magic(tmp_path, stem, magic, found):
    labels = "labels" in stem
    arr = np.zeros(5 if labels else (5, 28, 28), np.uint8)
    dims = (5,) if labels else (5, 28, 28)
    folder = _error_folder(tmp_path, stem, idx_bytes(arr, magic=magic, dims=dims))
    expected = 2049 if labels else 2051
    with raises_format(stem, f"wrong magic number: expected {expected} .*{found}"):
        load_data(folder)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize(
    "stem, cut, problem",
    [
        (TRAIN_IMAGES, -1, r"truncated payload: expected 3920 bytes .*found 3919"),
        (TEST_IMAGES, -28 * 28, r"truncated payload: expected 2352 bytes .*found 1568"),
        (TRAIN_LABELS, -1, r"truncated payload: expected 5 bytes .*found 4"),
        (TRAIN_IMAGES, +1, r"over-long payload: expected 3920 bytes .*found 3921"),
        (TEST_LABELS, +7, r"over-long payload: expected 3 bytes .*found 10"),
    ],
)
def test_payload_length(tmp_path, gz, stem, cut, problem):
    (x_tr, y_tr), (x_te, y_te) = synthetic()
    raw = idx_bytes(dict(zip(STEMS, (x_tr, y_tr, x_te, y_te)))[stem])
    raw = raw[:cut] if cut < 0 else raw + b"\x00" * cut
    with raises_format(stem, problem):
        load_data(_error_folder(tmp_path, stem, raw, gz))


@pytest.mark.parametrize(
    "stem, n, problem",
    [
        (TRAIN_IMAGES, 10, r"truncated header: expected an IDX images header of 16 bytes, "
                           r"found only 10"),
        (TEST_IMAGES, 0, r"truncated header: expected .* 16 bytes, found only 0"),
        (TRAIN_LABELS, 4, r"truncated header: expected an IDX labels header of 8 bytes, "
                          r"found only 4"),
    ],
)
def test_truncated_header(tmp_path, stem, n, problem):
    raw = idx_bytes(np.zeros((5, 28, 28) if "images" in stem else 5, np.uint8))[:n]
    with raises_format(stem, problem):
        load_data(_error_folder(tmp_path, stem, raw))


def _corrupt_not_gzip(blob):
    return b"this is not gzip at all"


def _corrupt_truncated(blob):
    return blob[: len(blob) // 2]


def _corrupt_flipped_byte(blob):
    b = bytearray(blob)
    b[len(b) // 2] ^= 0xFF
    return bytes(b)


def _corrupt_crc(blob):
    b = bytearray(blob)
    b[-8] ^= 0x01  # the CRC-32 in the gzip trailer
    return bytes(b)


def _corrupt_trailing_garbage(blob):
    return blob + b"garbage!"


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        (_corrupt_not_gzip, r"corrupt gzip stream: expected gzip magic bytes 1f 8b, "
                            r"found first bytes 74 68 69 73"),
        (_corrupt_truncated, r"corrupt gzip stream \(truncated\)"),
        (_corrupt_flipped_byte, r"corrupt gzip stream"),
        (_corrupt_crc, r"corrupt gzip stream: .*CRC-32.*incorrect data check"),
        (_corrupt_trailing_garbage, r"corrupt gzip stream: .*8 trailing bytes"),
    ],
)
@pytest.mark.parametrize("stem", [TRAIN_IMAGES, TEST_LABELS])
def test_corrupt_gzip(tmp_path, stem, corrupt, problem):
    folder = write_idx_set(tmp_path, synthetic(n_train=50, n_test=50))
    f = folder / f"{stem}.gz"
    f.write_bytes(corrupt(f.read_bytes()))
    with raises_format(f"{stem}.gz", problem):
        load_data(folder)


@pytest.mark.parametrize("split", ["train", "test"])
def test_image_label_count_mismatch(tmp_path, split):
    (x_tr, y_tr), (x_te, y_te) = synthetic()
    if split == "train":
        img, lab, y = TRAIN_IMAGES, TRAIN_LABELS, y_tr
    else:
        img, lab, y = TEST_IMAGES, TEST_LABELS, y_te
    folder = _error_folder(tmp_path, lab, idx_bytes(y[:-1]))
    n = len(y)
    with pytest.raises(
        MNISTFormatError,
        match=re.escape(img) + ".*" + re.escape(lab)
        + f".*count mismatch in the {split} split.*found {n} images and {n - 1} labels",
    ):
        load_data(folder)


@pytest.mark.parametrize("rows, cols", [(27, 28), (28, 27), (32, 32)])
def test_wrong_image_size(tmp_path, rows, cols):
    raw = idx_bytes(np.zeros((5, rows, cols), np.uint8))
    problem = f"wrong image size: expected 28x28 pixels, found {rows}x{cols}"
    with raises_format(TRAIN_IMAGES, problem):
        load_data(_error_folder(tmp_path, TRAIN_IMAGES, raw))


@pytest.mark.parametrize("value", [10, 255])
def test_label_out_of_range(tmp_path, value):
    labels = np.array([1, 2, value], np.uint8)
    problem = f"label out of range: expected labels 0..9, found {value} at index 2"
    with raises_format(TEST_LABELS, problem):
        load_data(_error_folder(tmp_path, TEST_LABELS, idx_bytes(labels)))


@pytest.mark.parametrize("stem", STEMS)
def test_missing_file(tmp_path, stem):
    write_idx_set(tmp_path, synthetic())
    (tmp_path / f"{stem}.gz").unlink()
    problem = re.escape(f"{stem}.gz (or uncompressed {stem}) not found")
    with pytest.raises(FileNotFoundError, match=problem) as info:
        load_data(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    problem = r"MNIST path not found.*" + re.escape(str(missing))
    with pytest.raises(FileNotFoundError, match=problem):
        load_data(missing)


def test_single_idx_file_is_not_a_source(tmp_path):
    write_idx_set(tmp_path, synthetic(), gz=False)
    with raises_format(TRAIN_IMAGES, r"not an MNIST source.*pass the folder"):
        load_data(tmp_path / TRAIN_IMAGES)


def test_error_in_later_file_returns_nothing(tmp_path):
    # train parses fine, test labels are bad: the whole call fails, nothing is returned.
    folder = _error_folder(tmp_path, TEST_LABELS, idx_bytes(np.array([0, 1, 99], np.uint8)))
    with raises_format(TEST_LABELS, "label out of range"):
        load_data(folder)


# --------------------------------------------------------------------------- npz errors


@pytest.mark.parametrize("key", ["x_train", "y_test"])
def test_npz_missing_key(tmp_path, key):
    path = save_npz(tmp_path / "mnist.npz", **{key: None})
    problem = f"npz missing key\\(s\\) {key}: expected arrays x_train, y_train, x_test, y_test"
    with raises_format("mnist.npz", problem):
        load_data(path)


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("x_train", np.zeros((5, 28, 28), np.float32),
         "wrong dtype: expected uint8, found float32"),
        ("y_train", np.zeros(5, np.int64), "wrong dtype: expected uint8, found int64"),
        ("x_test", np.zeros((3, 28, 27), np.uint8),
         r"wrong shape: expected a 3-D array of shape \(N, 28, 28\), "
         r"found a 3-D array of shape \(3, 28, 27\)"),
        ("x_train", np.zeros((5, 784), np.uint8),
         r"wrong shape: .* found a 2-D array of shape \(5, 784\)"),
        ("y_test", np.zeros((3, 1), np.uint8),
         r"wrong shape: expected a 1-D array \(N,\), found a 2-D array"),
        ("y_train", np.uint8(3), r"wrong shape: .* found a 0-D array"),
    ],
)
def test_npz_wrong_dtype_or_shape(tmp_path, key, value, problem):
    path = save_npz(tmp_path / "mnist.npz", **{key: value})
    with raises_format("mnist.npz", f"npz array '{key}' has the {problem}"):
        load_data(path)


def test_npz_count_mismatch_and_label_range(tmp_path):
    path = save_npz(tmp_path / "a.npz", y_train=np.zeros(4, np.uint8))
    with raises_format("a.npz", r"\[x_train\] .*count mismatch in the train split.*5 images and 4"):
        load_data(path)
    path = save_npz(tmp_path / "b.npz", y_test=np.array([0, 12, 3], np.uint8))
    with raises_format("b.npz", r"\[y_test\]: label out of range: .*found 12 at index 1"):
        load_data(path)


class _Payload:
    """Unpickling this would create a marker directory: proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("key", ["x_train", "y_test"])
def test_npz_pickled_object_array_is_refused(tmp_path, key):
    marker = tmp_path / "unpickled"
    path = save_npz(tmp_path / "evil.npz", **{key: np.array([_Payload(marker)], dtype=object)})
    problem = f"npz array '{key}' is a pickled object array.*refused"
    with raises_format("evil.npz", problem):
        load_data(path)
    assert not marker.exists()
    # the payload is live: only allow_pickle=True would have run it
    with np.load(path, allow_pickle=True) as npz:
        npz[key]
    assert marker.exists()


def test_npz_member_that_is_not_npy(tmp_path):
    (x_tr, _), (x_te, y_te) = synthetic()
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w") as z:
        for key, arr in (("x_train", x_tr), ("x_test", x_te), ("y_test", y_te)):
            buf = io.BytesIO()
            np.save(buf, arr)
            z.writestr(f"{key}.npy", buf.getvalue())
        z.writestr("y_train.npy", b"not an npy file")
    with raises_format("mnist.npz", r"npz member 'y_train' is not a \.npy array"):
        load_data(path)


def test_npz_corrupt_archive(tmp_path):
    path = save_npz(tmp_path / "mnist.npz")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with raises_format("mnist.npz", r"(unreadable \.npz archive|is unreadable)"):
        load_data(path)


@pytest.mark.parametrize("offset", [100, 200, 400, 1000])
def test_npz_corrupt_member(tmp_path, offset):
    path = save_npz(tmp_path / "mnist.npz", compressed=True)
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0xFF  # inside the compressed x_train member
    path.write_bytes(bytes(blob))
    with raises_format("mnist.npz", r"unreadable"):
        load_data(path)


# ------------------------------------------- the English tutorial's loader (`mnist` package)

def test_mnist_package_functions_match_load_data(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    for function, expected, shape in ((ds.train_images, x_train, (60000, 28, 28)),
                                      (ds.train_labels, y_train, (60000,)),
                                      (ds.test_images, x_test, (10000, 28, 28)),
                                      (ds.test_labels, y_test, (10000,))):
        got = function()
        assert got.dtype == np.uint8 and got.shape == shape  # as the mnist package gives
        np.testing.assert_array_equal(got, expected)
        assert got.flags.writeable and got.flags.c_contiguous
        # a fresh array each call: a learner's in-place edit does not leak into the next
        got[:] = 7
        np.testing.assert_array_equal(function(), expected)


def test_mnist_package_functions_are_not_collected_as_tests():
    assert ds.test_images.__test__ is False and ds.test_labels.__test__ is False


def test_the_tensorflow_stand_in_answers_load_data_only(mnist):
    from cnn_ext.datasets import tf
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    np.testing.assert_array_equal(x_train, mnist[0][0])
    np.testing.assert_array_equal(y_test, mnist[1][1])
    with pytest.raises(AttributeError, match=r"stands in for TensorFlow only as "
                                             r"tf.keras.datasets.mnist.load_data\(\), not .nn"):
        tf.nn
    with pytest.raises(AttributeError, match=r"not .layers"):
        tf.keras.layers
