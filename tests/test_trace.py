"""Network.trace: every Trace field is, bit for bit, what the tutorial's layer calls compute."""
import copy
import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

import cnn_ext_reference
from cnn_ext import Conv3x3, MaxPool2, Network, Softmax
from cnn_ext import _dispatch
from cnn_ext.trace import Trace

FIELDS = ("input", "conv", "pool", "pool_mask", "totals", "probs")
GRADIENTS = ("d_L_d_out", "d_L_d_pool", "d_L_d_conv", "d_L_d_filters", "d_L_d_totals",
             "d_L_d_weights", "d_L_d_biases")


def params(network):
    return network.conv.filters, network.softmax.weights, network.softmax.biases


def facade_calls(network, image, label):
    """The tutorial's six layer calls on fresh façade layers holding copies of the network's
    parameters: the intermediates and the updated parameters."""
    conv = Conv3x3(network.conv.num_filters, network.learn_rate)
    pool = MaxPool2()
    filters, weights, biases = (p.copy() for p in params(network))
    softmax = Softmax(*weights.shape, network.learn_rate)
    conv.filters, softmax.weights, softmax.biases = filters, weights, biases
    x = (image / 255) - 0.5
    out = {"input": x, "conv": conv.forward(x)}
    out["pool"] = pool.forward(out["conv"])
    out["probs"] = softmax.forward(out["pool"])
    out["totals"] = softmax.last_totals
    # Where MaxPool2.backprop routes a gradient: every position it gives a non-zero value to.
    routed = pool.backprop(np.random.default_rng(0).uniform(1, 2, out["pool"].shape))
    out["pool_mask"] = routed != 0
    pool.forward(out["conv"])
    if label is None:
        return out
    gradient = np.zeros(weights.shape[1])
    gradient[label] = -1 / out["probs"][label]
    out["d_L_d_out"] = gradient
    out["d_L_d_pool"] = softmax.backprop(gradient)
    out["d_L_d_conv"] = pool.backprop(out["d_L_d_pool"])
    conv.backprop(out["d_L_d_conv"])
    out["updated"] = (conv.filters, softmax.weights, softmax.biases)
    return out


def exact_fms(p, a, b):
    """p - a * b rounded once (a fused multiply-subtract), exactly, elementwise."""
    p, a, b = np.broadcast_arrays(p, a, b)
    return np.array([float(Fraction(x) - Fraction(y) * Fraction(z))
                     for x, y, z in zip(p.ravel().tolist(), a.ravel().tolist(), b.ravel().tolist())]
                    ).reshape(p.shape)


def expected_updates(before, trace):
    """The updated (filters, weights, biases) from the trace's gradients, rounded as this
    build's kernels round them: the portable kernels as NumPy does, ``p - lr * g``; the AVX2
    build (the "fma" family: every multiply-add one FMA) in one rounding per parameter, the
    10-node softmax as ``w - x * (lr * d_L_d_t)`` (its vector kernel's FMA)."""
    filters, weights, biases = before
    lr = trace.learn_rate
    fused = _dispatch.FAMILY == "fma"
    if not fused:
        return (filters - lr * trace.d_L_d_filters, weights - lr * trace.d_L_d_weights,
                biases - lr * trace.d_L_d_biases)
    if weights.shape[1] == 10:
        new_weights = exact_fms(weights, trace.pool.reshape(-1, 1), lr * trace.d_L_d_totals)
    else:
        new_weights = exact_fms(weights, lr, trace.d_L_d_weights)
    return (exact_fms(filters, lr, trace.d_L_d_filters), new_weights,
            exact_fms(biases, lr, trace.d_L_d_biases))


def assert_bits(a, b, name):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, f"{name}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    # Bit patterns, so that -0.0 != 0.0 and NaN == NaN count as they should.
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"{name} differs"


def check_trace(network, image, label, check_updates=True):
    before = tuple(p.copy() for p in params(network))
    identities = tuple(id(p) for p in params(network))
    def last_attributes():
        return (network.conv.last_input, network.pool.last_input, network.softmax.last_input,
                network.softmax.last_totals)
    last = last_attributes()
    trace = network.trace(image, label)
    # The network is unchanged: same arrays, same values, same last_* attributes.
    assert tuple(id(p) for p in params(network)) == identities
    for a, b in zip(params(network), before):
        assert_bits(a, b, "parameter")
    assert all(a is b for a, b in zip(last_attributes(), last))

    ref = facade_calls(network, image, label)
    assert_bits(trace.image, image, "image")
    for name in FIELDS:
        assert_bits(getattr(trace, name), ref[name], name)
    h, w = image.shape
    nf, nodes = network.conv.num_filters, network.softmax.biases.shape[0]
    assert trace.conv.shape == (h - 2, w - 2, nf) and trace.pool_mask.dtype == bool
    assert trace.pool.shape == ((h - 2) // 2, (w - 2) // 2, nf) and trace.probs.shape == (nodes,)
    assert trace.prediction == int(np.argmax(ref["probs"]))
    if label is None:
        for name in GRADIENTS + ("loss", "label", "correct"):
            assert getattr(trace, name) is None, name
        return trace
    for name in ("d_L_d_out", "d_L_d_pool", "d_L_d_conv"):
        assert_bits(getattr(trace, name), ref[name], name)
    assert trace.label == label and trace.correct == int(trace.prediction == label)
    assert trace.learn_rate == network.learn_rate
    p = float(ref["probs"][label])
    assert trace.loss == -math.log(p)
    assert trace.d_L_d_filters.shape == (nf, 3, 3)
    assert trace.d_L_d_weights.shape == network.softmax.weights.shape
    assert trace.d_L_d_biases.shape == (nodes,)
    # The tutorial's Softmax.backprop: d_L_d_w = outer(input, d_L_d_t), d_L_d_b = d_L_d_t.
    assert_bits(trace.d_L_d_weights, trace.pool.reshape(-1, 1) * trace.d_L_d_totals, "d_L_d_weights")
    assert_bits(trace.d_L_d_biases, trace.d_L_d_totals, "d_L_d_biases")
    if check_updates:
        for name, got, expected in zip(("filters", "weights", "biases"), ref["updated"],
                                       expected_updates(before, trace)):
            assert_bits(got, expected, f"updated {name}")
    return trace


def reference_gradients(network, image, label):
    """The pure-NumPy tutorial's gradients (its own sums, so equal within rounding only)."""
    x = (image / 255) - 0.5
    conv = cnn_ext_reference.Conv3x3(network.conv.num_filters)
    conv.filters = network.conv.filters.copy()
    pool = cnn_ext_reference.MaxPool2()
    softmax = cnn_ext_reference.Softmax(*network.softmax.weights.shape)
    softmax.weights, softmax.biases = network.softmax.weights.copy(), network.softmax.biases.copy()
    conv.learn_rate = softmax.learn_rate = 1.0
    out = softmax.forward(pool.forward(conv.forward(x)))
    gradient = np.zeros(len(out))
    gradient[label] = -1 / out[label]
    w0, b0, f0 = softmax.weights.copy(), softmax.biases.copy(), conv.filters.copy()
    d_pool = softmax.backprop(gradient)
    d_conv = pool.backprop(d_pool)
    conv.backprop(d_conv)
    return {"d_L_d_pool": d_pool, "d_L_d_conv": d_conv, "d_L_d_filters": f0 - conv.filters,
            "d_L_d_weights": w0 - softmax.weights, "d_L_d_biases": b0 - softmax.biases}


@pytest.fixture(scope="module")
def trained(mnist):
    (x_train, y_train), _ = mnist
    network = Network(seed=0)
    network.fit(x_train[:2000], y_train[:2000], seed=0)
    return network


def test_trace_equals_the_layer_calls_on_mnist_digits(mnist, trained):
    _, (x_test, y_test) = mnist
    ties = np.zeros(4, dtype=np.int64)
    for i in range(12):
        image, label = x_test[i], int(y_test[i])
        trace = check_trace(trained, image, label, check_updates=i < 3)
        ties += trace.tie_counts().sum(axis=0)
        check_trace(trained, image, None)
    # MNIST's constant background makes most windows ties: the case that matters.
    assert ties[3] > ties[0] > 0 and ties[1] > 0 and ties[2] > 0


def test_trace_on_random_and_odd_sized_images():
    rng = np.random.default_rng(7)
    for h, w, nf, nodes in [(28, 28, 8, 10), (29, 31, 5, 10), (28, 28, 8, 12), (7, 9, 4, 12),
                            (4, 5, 3, 3), (40, 23, 12, 10)]:
        np.random.seed(h * w)
        network = Network(Conv3x3(nf), MaxPool2(), Softmax(((h - 2) // 2) * ((w - 2) // 2) * nf, nodes))
        for _ in range(2):
            image = rng.integers(0, 256, (h, w), dtype=np.uint8)
            check_trace(network, image, int(rng.integers(0, nodes)))
            check_trace(network, image, None)
        # Blank images: every window a 4-way tie.
        trace = check_trace(network, np.zeros((h, w), np.uint8), 0, check_updates=False)
        assert trace.tie_counts()[:, 3].tolist() == [((h - 2) // 2) * ((w - 2) // 2)] * nf


def test_gradients_are_the_tutorials(mnist, trained):
    _, (x_test, y_test) = mnist
    for i in (0, 1):
        trace = trained.trace(x_test[i], int(y_test[i]))
        ref = reference_gradients(trained, x_test[i], int(y_test[i]))
        for name, value in ref.items():
            # The NumPy tutorial sums in its own order: equal up to rounding, zeros in the same places.
            got = getattr(trace, name)
            assert np.array_equal(got == 0, value == 0) or name == "d_L_d_weights", name
            np.testing.assert_allclose(got, value, rtol=1e-9, atol=1e-15, err_msg=name)


def test_pool_mask_is_where_the_tutorials_maxpool_routes(mnist, trained):
    _, (x_test, _) = mnist
    for image in (x_test[0], x_test[5]):
        trace = trained.trace(image)
        pool = cnn_ext_reference.MaxPool2()
        pool.forward(trace.conv)
        routed = pool.backprop(np.ones(trace.pool.shape))
        assert np.array_equal(trace.pool_mask, routed == 1)
        ties = trace.window_ties()
        assert ties.min() >= 1 and ties.max() == 4
        counts = trace.tie_counts()
        assert counts.shape == (8, 4) and (counts.sum(axis=1) == 13 * 13).all()
        assert np.array_equal(trace.tie_map().max(axis=(0, 1)), ties.max(axis=(0, 1)))
        assert (trace.tie_map()[~trace.pool_mask] == 0).all()


def test_odd_conv_sizes_are_cropped_as_maxpool_crops():
    np.random.seed(1)
    network = Network(num_filters=4, image_shape=(9, 8))
    image = np.random.default_rng(3).integers(0, 256, (9, 8), dtype=np.uint8)
    trace = network.trace(image, 2)
    assert trace.conv.shape == (7, 6, 4) and trace.pool.shape == (3, 3, 4)
    assert not trace.pool_mask[6].any() and (trace.d_L_d_conv[6] == 0).all()


def test_update_applies_the_step_train_step_takes(mnist):
    (x_train, y_train), _ = mnist
    traced, stepped = Network(seed=4), Network(seed=4)
    arrays = params(traced)
    for image, label in zip(x_train[:40], y_train[:40].tolist()):
        trace = traced.trace(image, label, update=True)
        loss, hit = stepped.train_step(image, label)
        assert trace.loss == loss and trace.correct == hit
        for a, b in zip(params(traced), params(stepped)):
            assert_bits(a, b, "parameter after the step")
    assert all(a is b for a, b in zip(params(traced), arrays))  # updated in place
    # train_step after a traced step goes on from the traced parameters.
    traced.train_step(x_train[40], int(y_train[40]))
    stepped.train_step(x_train[40], int(y_train[40]))
    for a, b in zip(params(traced), params(stepped)):
        assert_bits(a, b, "parameter after a later train_step")


def test_trace_is_frozen_and_refuses_bad_input(trained):
    image = np.zeros((28, 28), np.uint8)
    trace = trained.trace(image, 1)
    assert isinstance(trace, Trace)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trace.loss = 0.0
    with pytest.raises(ValueError, match=r"shape \(h, w\), got shape \(2, 28, 28\)"):
        trained.trace(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="pass the raw uint8 image"):
        trained.trace(np.full((28, 28), 0.25))
    for label in (10, -1):
        with pytest.raises(ValueError, match=r"label in 0\.\.9"):
            trained.trace(image, label)
    for label in (1.0, "3", True):
        with pytest.raises(TypeError, match=r"integer label in 0\.\.9"):
            trained.trace(image, label)
    with pytest.raises(ValueError, match="needs a label"):
        trained.trace(image, update=True)
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\) or one \(28, 28\) image, got shape \(20, 20\)"):
        trained.trace(np.zeros((20, 20), np.uint8))
    other = copy.deepcopy(trained)
    other.softmax.learn_rate = 0.1
    with pytest.raises(ValueError, match="one learn rate"):
        other.trace(image, 1)
    assert other.trace(image).label is None  # a forward trace needs no rate
    before = copy.deepcopy(params(trained))
    trained.trace(image, np.int64(3))
    assert all(np.array_equal(a, b) for a, b in zip(params(trained), before))


def test_portable_kernels_update_as_numpy_does(mnist):
    """On the portable kernels (CNN_EXT_KERNELS=baseline) the step is NumPy's
    ``p - learn_rate * g`` with the trace's gradients, for every parameter, bit for bit."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    import cnn_ext

    code = textwrap.dedent("""
        import copy
        import numpy as np
        from cnn_ext import Network, _dispatch
        from cnn_ext.datasets import mnist
        assert _dispatch.NAME == "_kernels", _dispatch.NAME
        (x, y), _ = mnist.load_data()
        net = Network(seed=0)
        net.fit(x[:1000], y[:1000])
        same = []
        for i in range(1000, 1010):
            before = copy.deepcopy((net.conv.filters, net.softmax.weights, net.softmax.biases))
            t = net.trace(x[i], int(y[i]), update=True)
            lr = t.learn_rate
            expected = (before[0] - lr * t.d_L_d_filters, before[1] - lr * t.d_L_d_weights,
                        before[2] - lr * t.d_L_d_biases)
            got = (net.conv.filters, net.softmax.weights, net.softmax.biases)
            same.append(all(np.array_equal(a, b) for a, b in zip(got, expected)))
        print(same)
    """)
    env = dict(os.environ, CNN_EXT_KERNELS="baseline")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(cnn_ext.__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str([True] * 10)
