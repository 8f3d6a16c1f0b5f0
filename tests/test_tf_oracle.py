"""TensorFlow's GradientTape as an independent gradient oracle for cnn_ext.

The same float64 network (cnn_ext.Network's weights copied into TensorFlow by
cnn_ext.bench.frameworks) is differentiated by TensorFlow's autodiff, and cnn_ext's gradients
are read off its SGD updates with learning rate 1 (``before - after``):

* where every 2x2 pool window has a unique maximum (random-normal or random-noise images),
  the filter, weight and bias gradients and the gradients flowing into the softmax and
  max-pool layers agree to 1e-10 relative;
* on MNIST, whose flat background ties most windows, they differ, and the difference is
  exactly the tie rule: TensorFlow routes a window's gradient to one maximum, the tutorial
  (and cnn_ext) to every tied maximum. cnn_ext's max-pool input gradient equals
  TensorFlow's plus the window's gradient at the extra tied positions, and the filter
  gradients differ by the convolution of precisely that extra gradient.

TensorFlow is optional for users, so these tests skip without it, except in the project's CI (
``CNN_EXT_CI`` set by .ci/run, which installs tensorflow-cpu): there a missing TensorFlow is a failure.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

if os.environ.get("CNN_EXT_CI"):
    try:
        import tensorflow as tf  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"CNN_EXT_CI is set (the project's CI), so TensorFlow (tensorflow-cpu) must be installed for the gradient "
                    f"oracle, but importing it failed: {exc}", pytrace=False)
else:
    tf = pytest.importorskip(
        "tensorflow", reason="TensorFlow is not installed, so cnn_ext's gradients were not compared with "
                             "TensorFlow's (pip install tensorflow-cpu to run this comparison)")

import cnn_ext  # noqa: E402
from cnn_ext.bench import frameworks as _frameworks  # noqa: E402

TOL = 1e-10


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def assert_close(a, b, tol=TOL, what=""):
    err = rel(a, b)
    assert err < tol, f"{what}: relative error {err:.2e} >= {tol:.0e}"


def windows(x):
    """(h, w, f) -> (h//2, 2, w//2, 2, f) view of the 2x2 pool windows."""
    h, w, f = x.shape
    return x[:h // 2 * 2, :w // 2 * 2].reshape(h // 2, 2, w // 2, 2, f)


def maxima_per_window(conv_out):
    v = windows(conv_out)
    return (v == v.max(axis=(1, 3), keepdims=True)).sum(axis=(1, 3))


def cnn_ext_layer_gradients(seed, image, label):
    """cnn_ext's layer classes on a normalised float image, learning rate 1:
    (gradients dict, conv output) with the same keys as TensorFlowNetwork.gradients."""
    np.random.seed(seed)
    conv = cnn_ext.Conv3x3(8, learn_rate=1.0)
    pool = cnn_ext.MaxPool2()
    h, w = image.shape
    softmax = cnn_ext.Softmax(((h - 2) // 2) * ((w - 2) // 2) * 8, 10, learn_rate=1.0)
    before = [conv.filters.copy(), softmax.weights.copy(), softmax.biases.copy()]
    c = conv.forward(image)
    out = softmax.forward(pool.forward(c))
    g = np.zeros(10)
    g[label] = -1 / out[label]
    d_pooled = softmax.backprop(g)
    d_conv = pool.backprop(d_pooled)
    conv.backprop(d_conv)
    after = [conv.filters, softmax.weights, softmax.biases]
    grads = {name: b - a for name, b, a in zip(("filters", "weights", "biases"), before, after)}
    grads.update(pooled=d_pooled, conv_output=d_conv, probabilities=out)
    return grads, c


def tf_model(seed, image_shape=(28, 28)):
    network = cnn_ext.Network(seed=seed, image_shape=image_shape)
    return _frameworks.tensorflow_network(network, learn_rate=1.0, threads=None, image_shape=image_shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layer_gradients_match_tensorflow_on_random_normal_images(seed):
    rng = np.random.default_rng(100 + seed)
    image = rng.standard_normal((28, 28))
    label = int(rng.integers(10))
    mine, conv_out = cnn_ext_layer_gradients(seed, image, label)
    assert np.all(maxima_per_window(conv_out) == 1), "random normal input: no tied window"
    theirs = tf_model(seed).gradients(image, label)
    for key in ("probabilities", "pooled", "conv_output", "filters", "weights", "biases"):
        assert_close(mine[key], theirs[key], what=key)


def test_layer_gradients_on_an_odd_sized_image():
    """A trailing row/column that no pool window covers gets no gradient in either."""
    rng = np.random.default_rng(7)
    image = rng.standard_normal((13, 16))  # conv 11x14: the last conv row is outside every window
    mine, conv_out = cnn_ext_layer_gradients(4, image, 3)
    assert np.all(maxima_per_window(conv_out) == 1)
    theirs = tf_model(4, image_shape=(13, 16)).gradients(image, 3)
    assert not np.any(mine["conv_output"][-1])
    for key in ("pooled", "conv_output", "filters", "weights", "biases"):
        assert_close(mine[key], theirs[key], what=key)


def test_fused_train_step_matches_tensorflow_on_noise_images():
    """Network.train_step (the fused kernel) on uint8 noise images: its SGD update with
    learning rate 1 is TensorFlow's gradient, step after step."""
    from cnn_ext.bench import unique_max_images

    seed = 3
    images = unique_max_images(4, seed)
    labels = [1, 7, 0, 9]
    network = cnn_ext.Network(seed=seed, learn_rate=1e-3)
    for image, label in zip(images, labels):
        model = _frameworks.tensorflow_network(network, learn_rate=1.0, threads=None)
        x = (image / 255) - 0.5
        theirs = model.gradients(x, label)
        np.random.seed(seed)
        probe = cnn_ext.Conv3x3(8)
        probe.filters[...] = network.conv.filters
        assert np.all(maxima_per_window(probe.forward(x)) == 1)
        before = [p.copy() for p in (network.conv.filters, network.softmax.weights, network.softmax.biases)]
        network.learn_rate = 1.0
        network.train_step(image, label)
        network.learn_rate = 1e-3
        after = (network.conv.filters, network.softmax.weights, network.softmax.biases)
        for name, b, a in zip(("filters", "weights", "biases"), before, after):
            assert_close(b - a, theirs[name], what=name)
        # continue from a small step, so the next image sees new weights
        for p, b in zip(after, before):
            p[...] = b - 1e-3 * (b - p)


def test_mnist_tied_windows_differ_exactly_by_the_tie_rule(mnist):
    """On a real MNIST digit, cnn_ext's gradient = TensorFlow's + the extra tied positions.

    TensorFlow's max-pool backward gives a window's gradient to one of its maxima; the
    tutorial gives it to all of them. Everything upstream of the pool (softmax, dense
    layer) is unaffected; the max-pool input gradient differs only at tied maxima that
    TensorFlow did not pick, where cnn_ext holds the window's gradient; the filter
    gradients differ by the conv backprop of exactly those extra entries.
    """
    (x_train, y_train), _ = mnist
    seed, index = 0, 0
    image, label = (x_train[index] / 255) - 0.5, int(y_train[index])
    mine, conv_out = cnn_ext_layer_gradients(seed, image, label)
    theirs = tf_model(seed).gradients(image, label)

    counts = maxima_per_window(conv_out)
    assert np.mean(counts > 1) > 0.4, "the background makes many tied windows"
    # Upstream of the pool: identical.
    for key in ("probabilities", "pooled", "weights", "biases"):
        assert_close(mine[key], theirs[key], what=key)

    d_pooled = mine["pooled"]
    v_out = windows(conv_out)
    is_max = v_out == v_out.max(axis=(1, 3), keepdims=True)
    mine_w, theirs_w = windows(mine["conv_output"]), windows(theirs["conv_output"])
    upstream = d_pooled[:, np.newaxis, :, np.newaxis, :]
    # cnn_ext: the window's gradient at every maximum, zero elsewhere (exactly).
    assert np.array_equal(mine_w, np.where(is_max, upstream, 0.0))
    # TensorFlow: the window's gradient at exactly one maximum, zero elsewhere.
    nonzero = d_pooled != 0
    picked = (theirs_w != 0)
    assert np.all(picked.sum(axis=(1, 3))[nonzero] == 1)
    assert not np.any(picked & ~is_max)
    assert np.allclose(theirs_w.sum(axis=(1, 3)), d_pooled, rtol=1e-12, atol=0)
    # The difference: the window's gradient at the tied maxima TensorFlow did not pick.
    extra = mine["conv_output"] - theirs["conv_output"]
    extra_w = windows(extra)
    expected_extra = np.where(is_max & ~picked, upstream, 0.0)
    assert_close(extra_w, expected_extra, what="extra gradient")
    # (one extra position per tied maximum beyond the first: thousands on an MNIST digit)
    assert np.count_nonzero(expected_extra) == np.sum((counts - 1)[nonzero]) > 1000
    # So the max-pool input gradient, and hence the filter gradient, differ noticeably ...
    assert rel(theirs["filters"], mine["filters"]) > 1e-3
    # ... by the conv backprop of exactly the extra entries.
    np.random.seed(seed)
    conv = cnn_ext.Conv3x3(8, learn_rate=1.0)
    before = conv.filters.copy()
    conv.forward(image)
    conv.backprop(np.ascontiguousarray(extra))
    filter_gradient_of_extra = before - conv.filters
    assert_close(mine["filters"] - theirs["filters"], filter_gradient_of_extra, tol=1e-9,
                 what="filter gradient difference")


def test_tensorflow_forward_matches_predict_proba(mnist):
    """The weight layouts: TensorFlow's forward pass is cnn_ext's, ties or not."""
    _, (x_test, _) = mnist
    network = cnn_ext.Network(seed=5)
    model = _frameworks.tensorflow_network(network, threads=None)
    assert_close(model.predict_proba(model.prepare(x_test[:50])), network.predict_proba(x_test[:50]))
    filters, weights, biases = model.parameters()
    assert np.array_equal(filters, network.conv.filters)
    assert np.array_equal(weights, network.softmax.weights)
    assert np.array_equal(biases, network.softmax.biases)


def test_torch_matches_on_unique_max_images(mnist):
    """PyTorch's copy (channels-first, permuted dense weights) trains like the tutorial
    where windows have a unique maximum. Optional everywhere (CI does not install torch)."""
    pytest.importorskip("torch", reason="PyTorch is not installed, so cnn_ext was not compared with PyTorch (pip install torch to run this comparison)")
    from cnn_ext.bench import unique_max_images

    import cnn_ext_reference as ref

    seed = 2
    images = unique_max_images(3, seed)
    labels = np.array([4, 2, 8])
    model = _frameworks.torch_network(cnn_ext.Network(seed=seed), learn_rate=0.005, threads=1)
    x, y = model.prepare(images, labels)
    for i in range(3):
        model.train_step(x[i:i + 1], y[i:i + 1])
    np.random.seed(seed)
    conv, pool, softmax = ref.Conv3x3(8, 0.005), ref.MaxPool2(), ref.Softmax(1352, 10, 0.005)
    for image, label in zip(images, labels):
        out = softmax.forward(pool.forward(conv.forward((image / 255) - 0.5)))
        g = np.zeros(10)
        g[label] = -1 / out[label]
        conv.backprop(pool.backprop(softmax.backprop(g)))
    for got, expected in zip(model.parameters(), (conv.filters, softmax.weights, softmax.biases)):
        assert_close(got, expected)
    _, (x_test, _) = mnist
    network = cnn_ext.Network(seed=seed)
    fresh = _frameworks.torch_network(network, threads=1)
    assert_close(fresh.predict_proba(fresh.prepare(x_test[:20])), network.predict_proba(x_test[:20]))
