"""Bad input gets a clear exception naming what was expected and what came; odd layouts
and dtypes are accepted and give the same numbers; NaN/inf never crash."""
import numpy as np
import pytest

from cnn_ext import Conv3x3, MaxPool2, Softmax


@pytest.mark.parametrize("bad,exc,match", [
    (np.zeros((28, 28, 1)), ValueError, r"2-D array, got 3-D with shape \(28, 28, 1\)"),
    (np.zeros(28), ValueError, r"2-D array, got 1-D"),
    (np.zeros((2, 28)), ValueError, r"at least 3x3 pixels, got 2x28"),
    (np.zeros((28, 28), dtype=complex), TypeError, r"real numeric array .* got dtype complex128"),
    (np.array([["a", "b", "c"]] * 3), TypeError, r"got dtype <U1"),
    (np.empty((3, 3), dtype=object), TypeError, r"got dtype object"),
    ([[1, 2, 3], [4, 5]], TypeError, r"numeric array"),
])
def test_conv_forward_rejects(bad, exc, match):
    with pytest.raises(exc, match=match):
        Conv3x3(8).forward(bad)


def test_conv_backprop_checks():
    conv = Conv3x3(8)
    with pytest.raises(RuntimeError, match=r"before forward"):
        conv.backprop(np.zeros((26, 26, 8)))
    conv.forward(np.zeros((28, 28)))
    with pytest.raises(ValueError, match=r"expects shape \(26, 26, 8\) .*got \(13, 13, 8\)"):
        conv.backprop(np.zeros((13, 13, 8)))
    with pytest.raises(ValueError, match=r"3-D array, got 2-D"):
        conv.backprop(np.zeros((26, 26)))
    conv.filters = np.zeros((16, 3, 3))
    with pytest.raises(ValueError, match=r"filters must have shape \(8, 3, 3\), got \(16, 3, 3\)"):
        conv.forward(np.zeros((28, 28)))


def test_constructors_reject_nonsense():
    with pytest.raises(ValueError, match=r"num_filters\) must be a positive integer, got 0"):
        Conv3x3(0)
    with pytest.raises(ValueError, match=r"nodes\) must be a positive integer, got 2.5"):
        Softmax(10, 2.5)
    conv = Conv3x3(2)
    conv.learn_rate = "fast"
    conv.forward(np.zeros((4, 4)))
    with pytest.raises(TypeError, match=r"learn_rate must be a positive number, got 'fast'"):
        conv.backprop(np.zeros((2, 2, 2)))


def test_maxpool_checks():
    pool = MaxPool2()
    with pytest.raises(RuntimeError, match=r"before forward"):
        pool.backprop(np.zeros((13, 13, 8)))
    with pytest.raises(ValueError, match=r"3-D array, got 2-D with shape \(26, 26\)"):
        pool.forward(np.zeros((26, 26)))
    with pytest.raises(ValueError, match=r"at least \(2, 2, 1\), got \(1, 26, 8\)"):
        pool.forward(np.zeros((1, 26, 8)))
    with pytest.raises(TypeError, match=r"dtype complex"):
        pool.forward(np.zeros((4, 4, 2), dtype=np.complex64))
    pool.forward(np.zeros((26, 26, 8)))
    with pytest.raises(ValueError, match=r"expects shape \(13, 13, 8\) .*got \(26, 26, 8\)"):
        pool.backprop(np.zeros((26, 26, 8)))


def test_softmax_checks():
    softmax = Softmax(13 * 13 * 8, 10)
    with pytest.raises(RuntimeError, match=r"before forward"):
        softmax.backprop(np.zeros(10))
    with pytest.raises(ValueError, match=r"expects 1352 values .*got shape \(13, 13, 7\) with 1183"):
        softmax.forward(np.zeros((13, 13, 7)))
    with pytest.raises(TypeError, match=r"dtype <U"):
        softmax.forward(np.array(["x"] * 1352))
    softmax.forward(np.zeros((13, 13, 8)))
    with pytest.raises(ValueError, match=r"expects shape \(10,\) \(one value per node\), got \(9,\)"):
        softmax.backprop(np.zeros(9))
    with pytest.raises(ValueError, match=r"1-D array, got 2-D"):
        softmax.backprop(np.zeros((10, 1)))
    softmax.weights = np.zeros((100, 10))
    with pytest.raises(ValueError, match=r"weights are \(100, 10\) but the last forward saw 1352 inputs"):
        softmax.backprop(np.zeros(10))
    softmax.biases = np.zeros(3)
    with pytest.raises(ValueError, match=r"biases must have shape \(10,\), got \(3,\)"):
        softmax.forward(np.zeros(100))


def test_failed_call_leaves_state_alone():
    conv = Conv3x3(2)
    image = np.zeros((6, 6))
    conv.forward(image)
    with pytest.raises(ValueError):
        conv.forward(np.zeros((2, 2)))
    assert conv.last_input is image


def layouts(a):
    """The same values as ``a`` in other dtypes and memory layouts."""
    fortran = np.asfortranarray(a)
    strided = np.zeros((a.shape[0] * 2,) + a.shape[1:])[::2]
    strided[...] = a
    readonly = a.copy()
    readonly.flags.writeable = False
    yield "fortran", fortran
    yield "strided", strided
    yield "readonly", readonly
    yield "list", a.tolist()
    if np.all(a == np.round(a)):
        yield "int16", a.astype(np.int16)
        yield "uint8+bool", a.astype(np.uint8) if a.min() >= 0 else a.astype(np.int8)
    if np.array_equal(a.astype(np.float32), a):  # values exactly representable in float32
        yield "float32", a.astype(np.float32)


def test_any_layout_and_dtype_gives_the_same_result(rng):
    image = rng.integers(0, 255, size=(10, 11)).astype(np.float64)
    np.random.seed(0)
    conv = Conv3x3(3)
    pool = MaxPool2()
    softmax = Softmax(4 * 4 * 3, 10)
    expected_conv = conv.forward(image)
    expected_pool = pool.forward(expected_conv[:8, :8])
    expected_soft = softmax.forward(expected_pool)
    for name, variant in layouts(image):
        np.testing.assert_array_equal(conv.forward(variant), expected_conv, err_msg=name)
    for name, variant in layouts(expected_conv[:8, :8]):
        np.testing.assert_array_equal(pool.forward(variant), expected_pool, err_msg=name)
    for name, variant in layouts(expected_pool):
        np.testing.assert_array_equal(softmax.forward(variant), expected_soft, err_msg=name)
    float32 = image.astype(np.float32)
    np.testing.assert_array_equal(conv.forward(float32), expected_conv)
    assert np.array_equal(conv.forward(image.astype(bool)), conv.forward((image != 0).astype(float)))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_do_not_crash(value):
    np.random.seed(0)
    conv, pool, softmax = Conv3x3(4), MaxPool2(), Softmax(3 * 3 * 4, 10)
    image = np.zeros((8, 8))
    image[3, 4] = value
    out = conv.forward(image)
    assert np.isnan(out).any() or np.isinf(out).any()
    pooled = pool.forward(out)
    probs = softmax.forward(pooled)
    assert probs.shape == (10,)
    grad = np.zeros(10)
    grad[1] = -1.0
    d = softmax.backprop(grad)
    d = pool.backprop(d)
    assert conv.backprop(d) is None
    assert np.isnan(softmax.forward(np.full((3, 3, 4), np.nan))).all()
