"""``backprop(d_L_d_out, learn_rate)``: the English original's call on the adaptation's
classes (cnn_ext.Conv3x3, cnn_ext.Softmax), positional or keyword, and the class default."""
import pickle

import numpy as np
import pytest

import cnn_ext
import cnn_ext_reference


def layers(module, seed=0, rate=0.01):
    np.random.seed(seed)
    conv = module.Conv3x3(8, learn_rate=rate)
    pool = module.MaxPool2()
    softmax = module.Softmax(13 * 13 * 8, 10, learn_rate=rate)
    return conv, pool, softmax


def step(conv, pool, softmax, image, label, **rate):
    out = softmax.forward(pool.forward(conv.forward(image)))
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    conv.backprop(pool.backprop(softmax.backprop(gradient, **rate)), **rate)


@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_the_call_rate_is_the_rate_used(mnist, how):
    (x, y), _ = mnist
    image, label = (x[0] / 255) - 0.5, y[0]
    # the reference learns at 0.005 from its constructor; cnn_ext is built with 0.01 and
    # given 0.005 by each call: the same result
    expected = layers(cnn_ext_reference, rate=0.005)
    got = layers(cnn_ext, rate=0.01)
    step(*expected, image, label)
    out = got[2].forward(got[1].forward(got[0].forward(image)))
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    if how == "positional":
        d = got[2].backprop(gradient, 0.005)
        got[0].backprop(got[1].backprop(d), 0.005)
    else:
        d = got[2].backprop(gradient, learn_rate=0.005)
        got[0].backprop(got[1].backprop(d), learn_rate=0.005)
    np.testing.assert_allclose(got[0].filters, expected[0].filters, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(got[2].weights, expected[2].weights, rtol=1e-12, atol=1e-16)
    # the layer's own rate is left as it was
    assert got[0].learn_rate == 0.01 and got[2].learn_rate == 0.01


def test_without_a_call_rate_the_layer_rate_is_used(mnist):
    (x, y), _ = mnist
    image, label = (x[1] / 255) - 0.5, y[1]
    a, b = layers(cnn_ext, rate=0.02), layers(cnn_ext, rate=0.02)
    step(*a, image, label)
    step(*b, image, label, learn_rate=None)
    np.testing.assert_array_equal(a[0].filters, b[0].filters)
    np.testing.assert_array_equal(a[2].weights, b[2].weights)
    c = layers(cnn_ext, rate=0.01)
    step(*c, image, label)
    assert not np.array_equal(a[0].filters, c[0].filters)


def test_layers_without_a_learn_rate_attribute_learn_with_the_class_default(mnist):
    # An object made without __init__ (as unpickling another program's layer does) has no
    # instance attribute; it learns with the adaptation's default, 0.01.
    assert cnn_ext.Conv3x3.learn_rate == 0.01 and cnn_ext.Softmax.learn_rate == 0.01
    (x, y), _ = mnist
    image, label = (x[2] / 255) - 0.5, y[2]
    made = layers(cnn_ext, rate=0.01)
    bare = layers(cnn_ext, rate=0.01)
    del bare[0].learn_rate, bare[2].learn_rate
    assert "learn_rate" not in vars(bare[0]) and "learn_rate" not in vars(bare[2])
    step(*made, image, label)
    step(*bare, image, label)
    np.testing.assert_array_equal(made[0].filters, bare[0].filters)
    np.testing.assert_array_equal(made[2].weights, bare[2].weights)
    # round trip through pickle, as a learner's own save would do
    again = pickle.loads(pickle.dumps(bare))
    step(*again, image, label)


@pytest.mark.parametrize("bad, error, message", [
    (0, ValueError, "must be a finite number > 0, got 0"),
    (-0.01, ValueError, "must be a finite number > 0, got -0.01"),
    (float("inf"), ValueError, "must be a finite number > 0, got inf"),
    (float("nan"), ValueError, "must be a finite number > 0, got nan"),
    ("0.01", TypeError, "must be a positive number, got '0.01'"),
    (True, TypeError, "must be a positive number, got True"),
    ([0.01], TypeError, r"must be a positive number, got \[0.01\]"),
])
def test_a_bad_call_rate_is_refused_before_anything_changes(mnist, bad, error, message):
    (x, y), _ = mnist
    conv, pool, softmax = layers(cnn_ext)
    out = softmax.forward(pool.forward(conv.forward((x[0] / 255) - 0.5)))
    gradient = np.zeros(10)
    gradient[y[0]] = -1 / out[y[0]]
    before = softmax.weights.copy(), conv.filters.copy()
    with pytest.raises(error, match=r"Softmax\.backprop\(learn_rate\) " + message):
        softmax.backprop(gradient, bad)
    d = pool.backprop(softmax.backprop(gradient))
    with pytest.raises(error, match=r"Conv3x3\.backprop\(learn_rate\) " + message):
        conv.backprop(d, learn_rate=bad)
    np.testing.assert_array_equal(conv.filters, before[1])
    assert not np.array_equal(softmax.weights, before[0])  # the good call did learn


def test_numpy_scalars_and_ints_are_rates():
    conv, pool, softmax = layers(cnn_ext)
    image = np.random.default_rng(0).random((28, 28)) - 0.5
    for rate in (np.float32(0.01), np.float64(0.01), 1, np.int64(1)):
        out = softmax.forward(pool.forward(conv.forward(image)))
        d = softmax.backprop(np.eye(10)[3] * -1 / out[3], rate)
        conv.backprop(pool.backprop(d), rate)
    assert np.isfinite(conv.filters).all()
