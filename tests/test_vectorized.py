"""The vectorised NumPy layers (cnn_ext_reference.vectorized) against the tutorial's loops.

Same draws, same attributes, same forward outputs, returned gradients and in-place
updates, to 1e-12 relative (max |a - b| / max |b|): sums are taken in another order, so
results differ from the loops by rounding only. MNIST images are included because their
flat backgrounds make most max-pool windows tie, and the tutorial gives the gradient to
every tied position: a single ulp of difference in a convolution sum would move gradient
around, far beyond 1e-12.
"""
import numpy as np
import pytest

import cnn_ext_reference as ref
from cnn_ext_reference import vectorized as vec

TOL = 1e-12


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    return diff if scale == 0 else diff / scale


def assert_close(a, b, tol=TOL):
    err = rel(a, b)
    assert err < tol, f"relative error {err:.2e} >= {tol:.0e}"


def pair(cls_name, *args, seed=0, **kwargs):
    np.random.seed(seed)
    slow = getattr(ref, cls_name)(*args, **kwargs)
    np.random.seed(seed)
    fast = getattr(vec, cls_name)(*args, **kwargs)
    return slow, fast


def mnist_image(mnist, index):
    (x_train, _), _ = mnist
    return (x_train[index] / 255) - 0.5


# ----------------------------------------------------------------------------- construction

@pytest.mark.parametrize("seed", [0, 1, 42])
def test_initial_parameters_are_the_tutorials_draws(seed):
    np.random.seed(seed)
    conv, softmax = ref.Conv3x3(8), ref.Softmax(1352, 10)
    after_ref = np.random.random()
    np.random.seed(seed)
    vconv, vsoftmax = vec.Conv3x3(8), vec.Softmax(1352, 10)
    after_vec = np.random.random()
    assert np.array_equal(vconv.filters, conv.filters)
    assert np.array_equal(vsoftmax.weights, softmax.weights)
    assert np.array_equal(vsoftmax.biases, softmax.biases)
    assert after_ref == after_vec, "the same amount of the global random stream was used"


def test_attributes_match_the_tutorial():
    conv, vconv = pair("Conv3x3", 4, learn_rate=0.3)
    assert (vconv.num_filters, vconv.learn_rate, vconv.last_input) == (4, 0.3, None)
    assert vconv.filters.shape == conv.filters.shape == (4, 3, 3)
    softmax, vsoftmax = pair("Softmax", 12, 5, learn_rate=0.2)
    assert vsoftmax.learn_rate == 0.2 and vsoftmax.weights.shape == (12, 5)
    assert vsoftmax.last_input is None and vsoftmax.last_totals is None and vsoftmax.last_input_shape is None
    assert vec.MaxPool2().last_input is None
    image = np.arange(30.0).reshape(5, 6)
    assert [(i, j) for _, i, j in vconv.iterate_regions(image)] == [(i, j) for _, i, j in conv.iterate_regions(image)]
    x = np.zeros((5, 7, 2))
    assert [(r.shape, i, j) for r, i, j in vec.MaxPool2().iterate_regions(x)] == \
        [(r.shape, i, j) for r, i, j in ref.MaxPool2().iterate_regions(x)]


# ----------------------------------------------------------------------------- layers

@pytest.mark.parametrize("shape", [(28, 28), (3, 3), (10, 17), (5, 4)])
def test_conv_forward_backward_update(rng, shape):
    conv, vconv = pair("Conv3x3", 8, learn_rate=0.05)
    for _ in range(3):  # a few steps: updates accumulate in place
        image = rng.standard_normal(shape)
        out = vconv.forward(image)
        assert vconv.last_input is image
        assert_close(out, conv.forward(image))
        d_out = rng.standard_normal(out.shape)
        filters = vconv.filters
        assert vconv.backprop(d_out) is None and conv.backprop(d_out) is None
        assert vconv.filters is filters, "filters are updated in place"
        assert_close(vconv.filters, conv.filters)


@pytest.mark.parametrize("shape", [(26, 26, 8), (2, 2, 1), (7, 9, 3), (11, 6, 5), (4, 5, 2)])
def test_maxpool_forward_backward_random(rng, shape):
    pool, vpool = MaxPool2_pair()
    x = rng.standard_normal(shape)
    out = vpool.forward(x)
    assert vpool.last_input is x
    assert np.array_equal(out, pool.forward(x)), "a maximum is exact"
    d_out = rng.standard_normal(out.shape)
    back = vpool.backprop(d_out)
    assert back.shape == x.shape
    assert np.array_equal(back, pool.backprop(d_out))


def MaxPool2_pair():
    return ref.MaxPool2(), vec.MaxPool2()


def test_maxpool_ties_all_receive_the_gradient(rng):
    # every window a 4-way tie, then windows with 2- and 3-way ties
    x = np.zeros((4, 6, 3))
    x[0, 2, 1] = x[1, 3, 1] = 1.0
    x[2, 0, 2] = x[2, 1, 2] = x[3, 0, 2] = 2.0
    pool, vpool = MaxPool2_pair()
    d_out = rng.standard_normal((2, 3, 3))
    pool.forward(x)
    vpool.forward(x)
    expected = pool.backprop(d_out)
    assert np.array_equal(vpool.backprop(d_out), expected)
    # 18 windows x 4 tied positions, less 2 in the 2-way tie and 1 in the 3-way tie
    assert np.count_nonzero(expected) == 72 - 2 - 1


def test_softmax_forward_backward_update(rng):
    softmax, vsoftmax = pair("Softmax", 13 * 13 * 8, 10, learn_rate=0.1)
    for step in range(4):
        x = rng.standard_normal((13, 13, 8))
        out = vsoftmax.forward(x)
        assert_close(out, softmax.forward(x))
        assert vsoftmax.last_input_shape == (13, 13, 8)
        assert_close(vsoftmax.last_input, softmax.last_input)
        assert_close(vsoftmax.last_totals, softmax.last_totals)
        if step < 2:  # the tutorial's one-hot gradient
            g = np.zeros(10)
            g[step] = -1 / out[step]
        else:  # any gradient, several non-zero entries
            g = rng.standard_normal(10)
            g[3] = 0.0
        weights, biases = vsoftmax.weights, vsoftmax.biases
        back = vsoftmax.backprop(g)
        assert back.shape == (13, 13, 8)
        assert_close(back, softmax.backprop(g))
        assert vsoftmax.weights is weights and vsoftmax.biases is biases
        assert_close(vsoftmax.weights, softmax.weights)
        assert_close(vsoftmax.biases, softmax.biases)


def test_softmax_does_not_overflow_where_the_tutorial_does():
    softmax = vec.Softmax(3, 2)
    softmax.weights[...] = [[1000.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    with np.errstate(over="raise", invalid="raise"):
        out = softmax.forward(np.array([1.0, 0.0, 0.0]))
    assert np.allclose(out, [1.0, 0.0])


def test_caches_follow_replaced_inputs(rng):
    """backprop after last_input / last_totals were replaced uses the new ones, as the loops do."""
    conv, vconv = pair("Conv3x3", 3)
    a, b = rng.standard_normal((8, 9)), rng.standard_normal((8, 9))
    conv.forward(a)
    vconv.forward(a)
    conv.last_input = vconv.last_input = b
    d = rng.standard_normal((6, 7, 3))
    conv.backprop(d)
    vconv.backprop(d)
    assert_close(vconv.filters, conv.filters)

    pool, vpool = MaxPool2_pair()
    pool.forward(rng.standard_normal((6, 6, 2)))
    vpool.forward(rng.standard_normal((6, 6, 2)))
    x = rng.standard_normal((6, 6, 2))
    pool.last_input = vpool.last_input = x
    g = rng.standard_normal((3, 3, 2))
    assert np.array_equal(vpool.backprop(g), pool.backprop(g))

    softmax, vsoftmax = pair("Softmax", 4, 3)
    softmax.forward(rng.standard_normal(4))
    vsoftmax.forward(rng.standard_normal(4))
    x = rng.standard_normal(4)
    softmax.last_input = vsoftmax.last_input = x
    softmax.last_totals = vsoftmax.last_totals = x @ softmax.weights
    g = rng.standard_normal(3)
    assert_close(vsoftmax.backprop(g), softmax.backprop(g))
    assert_close(vsoftmax.weights, softmax.weights)


def test_returned_outputs_can_be_modified(rng):
    """Modifying what forward returned does not change what backprop computes."""
    x = rng.standard_normal((6, 6, 2))
    pool, vpool = MaxPool2_pair()
    pool.forward(x)
    vpool.forward(x)[...] = 99.0
    g = rng.standard_normal((3, 3, 2))
    assert np.array_equal(vpool.backprop(g), pool.backprop(g))
    softmax, vsoftmax = pair("Softmax", 4, 3)
    v = rng.standard_normal(4)
    softmax.forward(v)
    vsoftmax.forward(v)[...] = 0.5
    g3 = rng.standard_normal(3)
    assert_close(vsoftmax.backprop(g3), softmax.backprop(g3))


# ----------------------------------------------------------------------------- MNIST, ties

@pytest.mark.parametrize("index", [0, 7, 123, 4567])
def test_mnist_chain_with_ties(mnist, index):
    """One tutorial step through all three layers on an MNIST image: everything matches."""
    (x_train, y_train), _ = mnist
    image, label = mnist_image(mnist, index), int(y_train[index])
    np.random.seed(index)
    layers = [ref.Conv3x3(8, 0.005), ref.MaxPool2(), ref.Softmax(1352, 10, 0.005)]
    np.random.seed(index)
    vlayers = [vec.Conv3x3(8, 0.005), vec.MaxPool2(), vec.Softmax(1352, 10, 0.005)]
    outs = []
    for conv, pool, softmax in (layers, vlayers):
        c = conv.forward(image)
        p = pool.forward(c)
        out = softmax.forward(p)
        g = np.zeros(10)
        g[label] = -1 / out[label]
        g_pool = softmax.backprop(g)
        g_conv = pool.backprop(g_pool)
        conv.backprop(g_conv)
        outs.append((c, p, out, g_pool, g_conv, conv.filters, softmax.weights, softmax.biases))
    slow, fast = outs
    for a, b in zip(fast, slow):
        assert_close(a, b)
    # the check includes ties: many windows route the gradient to several positions
    g_conv = slow[4]
    routed = (g_conv != 0).reshape(13, 2, 13, 2, 8).sum(axis=(1, 3))
    assert np.sum(routed > 1) > 100
    assert np.array_equal(fast[4] != 0, g_conv != 0), "the same positions receive the gradient"


def test_mnist_tie_masks_over_many_images(mnist):
    """The positions receiving gradient agree with the loops' on 300 MNIST images."""
    (x_train, _), _ = mnist
    np.random.seed(3)
    conv = ref.Conv3x3(8)
    np.random.seed(3)
    vconv = vec.Conv3x3(8)
    pool, vpool = MaxPool2_pair()
    ones = np.ones((13, 13, 8))
    ties = 0
    for index in range(0, 60000, 200):
        image = (x_train[index] / 255) - 0.5
        # the loops' max-pool backprop is slow: use the loops' conv output with both pools,
        # and compare the vectorised conv output's tie structure with it
        c_ref = conv.forward(image)
        c_vec = vconv.forward(image)
        pool.forward(c_ref)
        expected = pool.backprop(ones)
        vpool.forward(c_vec)
        got = vpool.backprop(ones)
        assert np.array_equal(got, expected), f"image {index}"
        ties += np.sum(expected.reshape(13, 2, 13, 2, 8).sum(axis=(1, 3)) > 1)
    assert ties > 300 * 13 * 13 * 8 * 0.3


# ----------------------------------------------------------------------------- training loop

def finer_log(steps, every=10):
    """Log lines every ``every`` steps, from the per-step results."""
    return ["%d %.3f %d" % (i + every, sum(l for l, _ in steps[i:i + every]) / every,
                            sum(a for _, a in steps[i:i + every]))
            for i in range(0, len(steps), every)]


def test_200_training_steps_match_the_tutorial(mnist, tutorial_training):
    (x_train, y_train), _ = mnist
    images, labels = x_train[:200], y_train[:200]
    fast_log, fast_steps, fast_params = tutorial_training(vec, images, labels)
    slow_log, slow_steps, slow_params = tutorial_training(ref, images, labels)
    assert len(fast_log) == 2
    assert fast_log == slow_log
    assert finer_log(fast_steps) == finer_log(slow_steps)
    assert [a for _, a in fast_steps] == [a for _, a in slow_steps]
    assert_close([l for l, _ in fast_steps], [l for l, _ in slow_steps])
    for fast, slow in zip(fast_params, slow_params):
        assert_close(fast, slow)


def test_batch_predict_proba_matches_the_loops(mnist):
    _, (x_test, _) = mnist
    np.random.seed(5)
    layers = [ref.Conv3x3(8), ref.MaxPool2(), ref.Softmax(1352, 10)]
    expected = np.array([layers[2].forward(layers[1].forward(layers[0].forward((im / 255) - 0.5)))
                         for im in x_test[:20]])
    conv, softmax = layers[0], layers[2]
    got = vec.predict_proba(x_test[:20], conv.filters, softmax.weights, softmax.biases, chunk=7)
    assert got.shape == (20, 10)
    assert_close(got, expected)
    one = vec.predict_proba(x_test[3], conv.filters, softmax.weights, softmax.biases)
    assert_close(one[0], expected[3])
