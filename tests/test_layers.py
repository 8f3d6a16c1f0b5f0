"""Parity of the compiled layers with the tutorial's NumPy classes (cnn_ext_reference).

Forward outputs, returned gradients and updated weights must agree to 1e-12 relative
(max abs difference over max abs value) on random inputs and on real MNIST images.
"""
import numpy as np
import pytest

import cnn_ext
import cnn_ext_reference as ref
from cnn_ext import Conv3x3, MaxPool2, Softmax

RTOL = 1e-12


def rel_error(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    return np.max(np.abs(actual - expected)) / max(scale, np.finfo(float).tiny)


def pair(seed, cls_fast, cls_ref, *args):
    np.random.seed(seed)
    fast = cls_fast(*args)
    np.random.seed(seed)
    slow = cls_ref(*args)
    return fast, slow


def mnist_inputs(mnist, count=8):
    (x_train, y_train), _ = mnist
    return [(x_train[i] / 255) - 0.5 for i in range(count)], y_train[:count]


# --------------------------------------------------------------------------- init

def test_same_seed_same_weights_as_the_tutorial():
    for seed in (0, 1, 42):
        np.random.seed(seed)
        conv, softmax = Conv3x3(8), Softmax(13 * 13 * 8, 10)
        np.random.seed(seed)
        rconv, rsoftmax = ref.Conv3x3(8), ref.Softmax(13 * 13 * 8, 10)
        assert np.array_equal(conv.filters, rconv.filters)
        assert np.array_equal(softmax.weights, rsoftmax.weights)
        assert np.array_equal(softmax.biases, rsoftmax.biases)
    assert conv.num_filters == 8 and conv.learn_rate == 0.01 and conv.last_input is None
    assert softmax.learn_rate == 0.01
    assert softmax.last_input is None and softmax.last_totals is None and softmax.last_input_shape is None


def test_module_names_mirror_the_tutorial():
    assert cnn_ext.conv.Conv3x3 is Conv3x3
    assert cnn_ext.maxpool.MaxPool2 is MaxPool2
    assert cnn_ext.softmax.Softmax is Softmax


def test_kernels_are_compiled_extension_modules_of_the_installed_package():
    import importlib.machinery
    from pathlib import Path

    from cnn_ext import _dispatch, _kernels

    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert _kernels.__file__.endswith(suffixes), _kernels.__file__
    assert _dispatch.kernels.__file__.endswith(suffixes), _dispatch.kernels.__file__
    # The suite tests what pip installed, not the source tree.
    assert "src" not in Path(cnn_ext.__file__).parts[-3:], cnn_ext.__file__


def test_iterate_regions_as_in_the_tutorial(rng):
    image = rng.standard_normal((7, 6))
    fast = [(r.copy(), i, j) for r, i, j in Conv3x3(2).iterate_regions(image)]
    slow = list(ref.Conv3x3(2).iterate_regions(image))
    assert [(i, j) for _, i, j in fast] == [(i, j) for _, i, j in slow]
    assert all(np.array_equal(a, b) for (a, _, _), (b, _, _) in zip(fast, slow))
    volume = rng.standard_normal((5, 6, 3))
    fast = list(MaxPool2().iterate_regions(volume))
    slow = list(ref.MaxPool2().iterate_regions(volume))
    assert len(fast) == len(slow) == 6
    assert all(np.array_equal(a, b) and (i, j) == (k, l) for (a, i, j), (b, k, l) in zip(fast, slow))


# --------------------------------------------------------------------------- conv

@pytest.mark.parametrize("shape,num_filters", [((28, 28), 8), ((5, 9), 3), ((3, 3), 1), ((12, 7), 16)])
def test_conv_parity_random(rng, shape, num_filters):
    conv, rconv = pair(3, Conv3x3, ref.Conv3x3, num_filters, 0.05)
    image = rng.standard_normal(shape)
    out, rout = conv.forward(image), rconv.forward(image)
    assert out.dtype == np.float64 and out.shape == (shape[0] - 2, shape[1] - 2, num_filters)
    assert rel_error(out, rout) <= RTOL
    grad = rng.standard_normal(out.shape)
    assert conv.backprop(grad) is None and rconv.backprop(grad) is None
    assert rel_error(conv.filters, rconv.filters) <= RTOL


def test_conv_parity_mnist(mnist):
    images, _ = mnist_inputs(mnist)
    conv, rconv = pair(7, Conv3x3, ref.Conv3x3, 8)
    rng = np.random.default_rng(0)
    for image in images:
        out, rout = conv.forward(image), rconv.forward(image)
        assert rel_error(out, rout) <= RTOL
        grad = rng.standard_normal(out.shape)
        conv.backprop(grad), rconv.backprop(grad)
        assert rel_error(conv.filters, rconv.filters) <= RTOL


def test_conv_identical_regions_give_bit_identical_sums(mnist):
    # The background of an MNIST digit is flat: every all-background 3x3 region must give
    # exactly the same output, or the max-pool tie rule would depend on position.
    images, _ = mnist_inputs(mnist, 1)
    np.random.seed(0)
    out = Conv3x3(8).forward(images[0])
    background = out[0, 0]
    flat = np.all(out == background, axis=2)
    assert flat.sum() > 100
    region_flat = np.array([[np.all(images[0][i:i + 3, j:j + 3] == -0.5) for j in range(26)] for i in range(26)])
    assert np.array_equal(flat & region_flat, region_flat)


# --------------------------------------------------------------------------- maxpool

@pytest.mark.parametrize("shape", [(26, 26, 8), (5, 7, 3), (2, 2, 1), (4, 6, 2)])
def test_maxpool_parity_random(rng, shape):
    x = rng.standard_normal(shape)
    pool, rpool = MaxPool2(), ref.MaxPool2()
    out, rout = pool.forward(x), rpool.forward(x)
    assert np.array_equal(out, rout)
    grad = rng.standard_normal(out.shape)
    d, rd = pool.backprop(grad), rpool.backprop(grad)
    assert d.shape == x.shape and np.array_equal(d, rd)


def test_maxpool_ties_all_receive_the_gradient(rng):
    # Integers in a small range: most windows have ties.
    x = rng.integers(0, 3, size=(8, 8, 4)).astype(float)
    pool, rpool = MaxPool2(), ref.MaxPool2()
    np.testing.assert_array_equal(pool.forward(x), rpool.forward(x))
    grad = rng.standard_normal((4, 4, 4))
    d = pool.backprop(grad)
    np.testing.assert_array_equal(d, rpool.backprop(grad))
    window_max = x.reshape(4, 2, 4, 2, 4).max(axis=(1, 3))
    is_max = x == np.repeat(np.repeat(window_max, 2, axis=0), 2, axis=1)
    assert (is_max.reshape(4, 2, 4, 2, 4).sum(axis=(1, 3)) > 1).mean() > 0.3  # ties are common here
    np.testing.assert_array_equal(d != 0, is_max)


def test_maxpool_parity_mnist_with_ties(mnist):
    images, _ = mnist_inputs(mnist)
    np.random.seed(1)
    conv = Conv3x3(8)
    pool, rpool = MaxPool2(), ref.MaxPool2()
    rng = np.random.default_rng(1)
    tied = 0
    for image in images:
        x = conv.forward(image)
        out, rout = pool.forward(x), rpool.forward(x)
        assert np.array_equal(out, rout)
        grad = rng.standard_normal(out.shape)
        d, rd = pool.backprop(grad), rpool.backprop(grad)
        assert np.array_equal(d, rd)
        tied += np.count_nonzero((d != 0).reshape(13, 2, 13, 2, 8).sum(axis=(1, 3)) > 1)
    assert tied > 0.3 * len(images) * 13 * 13 * 8  # MNIST backgrounds tie


# --------------------------------------------------------------------------- softmax

# 10 nodes with 7 or 9 inputs: the AVX2 dense kernels take rows four at a time plus a rest.
@pytest.mark.parametrize("in_shape,nodes", [((13, 13, 8), 10), ((7,), 3), ((2, 3), 1), ((4, 5, 6), 12),
                                            ((7,), 10), ((3, 3), 10), ((2,), 10)])
def test_softmax_parity_random(rng, in_shape, nodes):
    input_len = int(np.prod(in_shape))
    softmax, rsoftmax = pair(5, Softmax, ref.Softmax, input_len, nodes, 0.02)
    x = rng.standard_normal(in_shape)
    out, rout = softmax.forward(x), rsoftmax.forward(x)
    assert out.shape == (nodes,) and rel_error(out, rout) <= RTOL
    assert softmax.last_input_shape == in_shape
    assert rel_error(softmax.last_totals, rsoftmax.last_totals) <= RTOL
    assert np.array_equal(softmax.last_input, rsoftmax.last_input)
    # one-hot upstream gradient (the training loop) and a dense one (any upstream gradient)
    for grad in (np.eye(nodes)[nodes - 1] * -1 / out[nodes - 1], rng.standard_normal(nodes)):
        d, rd = softmax.backprop(grad), rsoftmax.backprop(grad)
        assert d.shape == in_shape and rel_error(d, rd) <= RTOL
        assert rel_error(softmax.weights, rsoftmax.weights) <= RTOL
        assert rel_error(softmax.biases, rsoftmax.biases) <= RTOL


def test_softmax_parity_mnist(mnist):
    images, labels = mnist_inputs(mnist)
    np.random.seed(2)
    conv, pool = Conv3x3(8), MaxPool2()
    softmax, rsoftmax = pair(9, Softmax, ref.Softmax, 13 * 13 * 8, 10)
    for image, label in zip(images, labels):
        x = pool.forward(conv.forward(image))
        out, rout = softmax.forward(x), rsoftmax.forward(x)
        assert rel_error(out, rout) <= RTOL
        grad = np.zeros(10)
        grad[label] = -1 / out[label]
        assert rel_error(softmax.backprop(grad), rsoftmax.backprop(grad)) <= RTOL
        assert rel_error(softmax.weights, rsoftmax.weights) <= RTOL
        assert rel_error(softmax.biases, rsoftmax.biases) <= RTOL


def test_softmax_zero_gradient_changes_nothing(rng):
    softmax, rsoftmax = pair(4, Softmax, ref.Softmax, 6, 3)
    x = rng.standard_normal(6)
    softmax.forward(x), rsoftmax.forward(x)
    before = softmax.weights.copy()
    d = softmax.backprop(np.zeros(3))
    np.testing.assert_array_equal(d, rsoftmax.backprop(np.zeros(3)))
    np.testing.assert_array_equal(softmax.weights, before)


@pytest.mark.parametrize("scale", [1e2, 1e3, 1e4])
def test_softmax_is_stable_for_large_totals(scale):
    softmax = Softmax(2, 3)
    softmax.weights = np.array([[1.0, 0.0, -1.0], [0.0, 0.5, 0.0]])
    for x in (np.array([scale, 0.0]), np.array([-scale, 0.0]), np.array([scale, scale])):
        out = softmax.forward(x)
        totals = x @ softmax.weights
        expected = np.exp(totals - totals.max()) / np.exp(totals - totals.max()).sum()
        assert np.all(np.isfinite(out)) and rel_error(out, expected) <= RTOL
        assert abs(out.sum() - 1) < 1e-15
        d = softmax.backprop(np.array([0.0, -1 / max(out[1], 1e-300), 0.0]))
        assert np.all(np.isfinite(d)) or out[1] == 0


def test_weights_are_updated_in_place(rng):
    conv, pool, softmax = Conv3x3(4), MaxPool2(), Softmax(3 * 3 * 4, 10)
    filters, weights, biases = conv.filters, softmax.weights, softmax.biases
    before = filters.copy(), weights.copy(), biases.copy()
    out = softmax.forward(pool.forward(conv.forward(rng.standard_normal((8, 8)))))
    grad = np.zeros(10)
    grad[2] = -1 / out[2]
    conv.backprop(pool.backprop(softmax.backprop(grad)))
    assert conv.filters is filters and softmax.weights is weights and softmax.biases is biases
    for now, then in zip((filters, weights, biases), before):
        assert not np.array_equal(now, then)


def test_assigned_parameters_of_other_dtype_are_converted_once(rng):
    softmax, rsoftmax = pair(4, Softmax, ref.Softmax, 8, 3)
    weights32 = softmax.weights.astype(np.float32)
    softmax.weights = weights32
    rsoftmax.weights = weights32.astype(np.float64)
    x = rng.standard_normal(8)
    assert rel_error(softmax.forward(x), rsoftmax.forward(x)) <= RTOL
    assert softmax.weights.dtype == np.float64 and softmax.weights.flags.c_contiguous
    stored = softmax.weights
    softmax.backprop(np.array([0.0, 1.0, 0.0])), rsoftmax.backprop(np.array([0.0, 1.0, 0.0]))
    assert softmax.weights is stored and rel_error(softmax.weights, rsoftmax.weights) <= RTOL


# --------------------------------------------------------------------------- kernel API

def test_kernels_allocate_outputs_and_check_their_arrays(rng):
    # The compiled functions take an output array or allocate one; either way the same numbers.
    # They check every array themselves (the kernels run without bounds checks).
    from cnn_ext._dispatch import kernels as k

    image, filters = rng.standard_normal((9, 8)), rng.standard_normal((4, 3, 3))
    out = np.empty((7, 6, 4))
    assert k.conv3x3_forward(image, filters, out) is out
    assert np.array_equal(k.conv3x3_forward(image, filters), out)
    pooled = k.maxpool2_forward(out)
    assert pooled.shape == (3, 3, 4) and pooled.flags.c_contiguous
    grad = rng.standard_normal((3, 3, 4))
    routed = k.maxpool2_backprop(out, grad)
    assert routed.shape == out.shape and np.array_equal(routed, k.maxpool2_backprop(out, grad, np.empty_like(out)))
    weights, biases = rng.standard_normal((36, 10)), np.zeros(10)
    totals, probs = k.softmax_forward(pooled.ravel(), weights, biases)
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-12
    d_input = k.softmax_backprop(pooled.ravel(), weights.copy(), biases.copy(), totals, probs, 0.1)
    assert d_input.shape == (36,)

    with pytest.raises(TypeError, match="image must be a NumPy array, got list"):
        k.conv3x3_forward(image.tolist(), filters)
    with pytest.raises(ValueError, match="filters must be float64 in native byte order, got dtype float32"):
        k.conv3x3_forward(image, filters.astype(np.float32))
    with pytest.raises(ValueError, match="filters must be float64 in native byte order, got dtype >f8"):
        k.conv3x3_forward(image, filters.astype(">f8"))
    with pytest.raises(ValueError, match="image must be 2-D, got 3-D"):
        k.conv3x3_forward(out, filters)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        k.maxpool2_forward(out[:, ::2])
    read_only = np.empty((3, 3, 4))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writable"):
        k.maxpool2_forward(out, read_only)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 3, 4\), got \(3, 3, 3\)"):
        k.maxpool2_forward(out, np.empty((3, 3, 3)))
    with pytest.raises(ValueError, match="weights must be writable"):
        frozen = weights.copy()
        frozen.flags.writeable = False
        k.softmax_backprop(pooled.ravel(), frozen, biases.copy(), totals, probs, 0.1)


def test_softmax_backprop_does_not_write_into_a_memmap(tmp_path, rng):
    # The checked path swaps a parameter that is not a plain ndarray for a float64 copy before
    # updating it in place; the fast path must not write through a subclass instead.
    softmax = Softmax(6, 3)
    weights = np.memmap(tmp_path / "w.dat", dtype=np.float64, mode="w+", shape=(6, 3))
    weights[:] = rng.standard_normal((6, 3))
    weights.flush()
    before = np.array(weights)
    softmax.weights = weights
    out = softmax.forward(rng.standard_normal(6))
    softmax.backprop(np.eye(3)[1] * -1 / out[1])
    assert type(softmax.weights) is np.ndarray and not np.array_equal(softmax.weights, before)
    assert np.array_equal(np.memmap(tmp_path / "w.dat", dtype=np.float64, mode="r", shape=(6, 3)), before)
