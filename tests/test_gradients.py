"""Finite-difference checks of every backward pass, on random inputs and MNIST images.

Each layer's backprop is compared with numerical derivatives of a scalar loss
``L = sum(forward(x) * G)`` (G random), or ``-log(out[label])`` for Softmax.

Max pooling is not differentiable where a window ties: raising one tied value raises the
maximum, lowering it does not. The tutorial gives the gradient to *every* tied position,
which is exactly the one-sided derivative from above of each input taken on its own, so
MaxPool2 is checked with forward differences (x + h); MNIST's flat backgrounds make sure
that tied windows are part of the check.
"""
import numpy as np
import pytest

from cnn_ext import Conv3x3, MaxPool2, Softmax

H = 1e-6


def numerical_grad(f, x, h=H, one_sided=False):
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        up = f()
        if one_sided:
            flat[k] = old
            g[k] = (up - f()) / h
        else:
            flat[k] = old - h
            g[k] = (up - f()) / (2 * h)
        flat[k] = old
    return grad


def assert_close(analytic, numeric, tol):
    err = np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12)
    assert err < tol, f"relative error {err:.2e} >= {tol:.0e}"


def mnist_image(mnist, index):
    (x_train, _), _ = mnist
    return (x_train[index] / 255) - 0.5


@pytest.fixture(params=["random", "mnist"])
def image(request, mnist):
    if request.param == "random":
        return np.random.default_rng(3).standard_normal((10, 12))
    return mnist_image(mnist, 7)


def test_conv_filter_gradient(image):
    np.random.seed(0)
    conv = Conv3x3(4, learn_rate=1.0)
    G = np.random.default_rng(1).standard_normal((image.shape[0] - 2, image.shape[1] - 2, 4))
    loss = lambda: float(np.sum(conv.forward(image) * G))
    numeric = numerical_grad(loss, conv.filters)
    before = conv.filters.copy()
    conv.forward(image)
    conv.backprop(G)
    analytic = before - conv.filters  # learn_rate 1: the update is the gradient
    assert_close(analytic, numeric, 1e-6)


def test_maxpool_input_gradient_including_ties(mnist):
    np.random.seed(0)
    x = Conv3x3(8).forward(mnist_image(mnist, 3))[:12, :12]  # 6x6 windows, background ties
    x = np.ascontiguousarray(x)
    pool = MaxPool2()
    G = np.random.default_rng(2).standard_normal((6, 6, 8))
    loss = lambda: float(np.sum(pool.forward(x) * G))
    numeric = numerical_grad(loss, x, one_sided=True)
    pool.forward(x)
    analytic = pool.backprop(G)
    ties = (analytic != 0).reshape(6, 2, 6, 2, 8).sum(axis=(1, 3)) > 1
    assert ties.sum() > 50, "the check must include tied windows"
    assert_close(analytic, numeric, 1e-6)


def test_maxpool_input_gradient_random(rng):
    x = rng.standard_normal((6, 7, 3))
    pool = MaxPool2()
    G = rng.standard_normal((3, 3, 3))
    numeric = numerical_grad(lambda: float(np.sum(pool.forward(x) * G)), x)
    pool.forward(x)
    assert_close(pool.backprop(G), numeric, 1e-6)


@pytest.mark.parametrize("source", ["random", "mnist"])
def test_softmax_gradients(mnist, source):
    if source == "random":
        x = np.random.default_rng(4).standard_normal((3, 3, 2))
    else:
        np.random.seed(5)
        x = MaxPool2().forward(Conv3x3(2).forward(mnist_image(mnist, 11)))[:3, :3]
        x = np.ascontiguousarray(x)
    label = 4
    np.random.seed(6)
    softmax = Softmax(x.size, 10, learn_rate=1.0)
    loss = lambda: float(-np.log(softmax.forward(x)[label]))
    num_x = numerical_grad(loss, x)
    num_w = numerical_grad(loss, softmax.weights)
    num_b = numerical_grad(loss, softmax.biases)
    w0, b0 = softmax.weights.copy(), softmax.biases.copy()
    out = softmax.forward(x)
    grad = np.zeros(10)
    grad[label] = -1 / out[label]
    d_x = softmax.backprop(grad)
    assert_close(d_x, num_x, 1e-6)
    assert_close(w0 - softmax.weights, num_w, 1e-6)
    assert_close(b0 - softmax.biases, num_b, 1e-6)


def test_softmax_gradient_for_any_upstream_gradient(rng):
    x = rng.standard_normal(7)
    np.random.seed(8)
    softmax = Softmax(7, 5, learn_rate=1.0)
    G = rng.standard_normal(5)
    loss = lambda: float(softmax.forward(x) @ G)
    num_x, num_w = numerical_grad(loss, x), numerical_grad(loss, softmax.weights)
    w0 = softmax.weights.copy()
    softmax.forward(x)
    assert_close(softmax.backprop(G), num_x, 1e-6)
    assert_close(w0 - softmax.weights, num_w, 1e-6)
