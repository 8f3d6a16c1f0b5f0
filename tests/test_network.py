"""The fused Network paths give the numbers of the layer-by-layer façade, bit for bit."""
import math
import os
import pickle
import warnings

import numpy as np
import pytest

import cnn_ext
from cnn_ext import Conv3x3, MaxPool2, Network, Softmax


def facade_step(conv, pool, softmax, image, label):
    out = softmax.forward(pool.forward(conv.forward((image / 255) - 0.5)))
    loss = -np.log(out[label])
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    conv.backprop(pool.backprop(softmax.backprop(gradient)))
    return loss, int(np.argmax(out) == label)


def params(network):
    return network.conv.filters, network.softmax.weights, network.softmax.biases


def test_train_step_equals_the_six_facade_calls(mnist):
    (x_train, y_train), _ = mnist
    fused = Network(seed=3, learn_rate=0.01)
    np.random.seed(3)
    conv, pool, softmax = Conv3x3(8, 0.01), MaxPool2(), Softmax(13 * 13 * 8, 10, 0.01)
    for image, label in zip(x_train[:300], y_train[:300]):
        loss, hit = fused.train_step(image, label)
        ref_loss, ref_hit = facade_step(conv, pool, softmax, image, label)
        assert hit == ref_hit and abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    for a, b in zip(params(fused), (conv.filters, softmax.weights, softmax.biases)):
        assert np.array_equal(a, b)


def test_fit_is_deterministic_and_independent_of_chunking(mnist):
    (x_train, y_train), _ = mnist
    images, labels = x_train[:700], y_train[:700]
    runs = []
    for chunk in (2000, 64, 7):
        network = Network(seed=1)
        lines = network.fit(images, labels, epochs=2, seed=5, log_every=100, chunk=chunk).lines
        runs.append((lines, params(network)))
    assert len(runs[0][0]) == 14 and runs[0][0][0].startswith("[Step 100] Past 100 steps :Average Loss ")
    for lines, arrays in runs[1:]:
        assert lines == runs[0][0]
        assert all(np.array_equal(a, b) for a, b in zip(arrays, runs[0][1]))
    other = Network(seed=1)
    other.fit(images, labels, epochs=2, seed=6)
    assert not np.array_equal(other.conv.filters, runs[0][1][0])  # the seed drives the order


def test_train_steps_returns_the_tutorials_running_loss(mnist):
    """train_steps adds its losses to loss_start one at a time, as the tutorial's
    `loss += l`: the same float as that loop in Python (fit's log lines rest on it), which
    here is not the correctly rounded sum, so the order of the additions is tested."""
    from cnn_ext._dispatch import kernels
    (x_train, y_train), _ = mnist
    n, start = 300, 2.0 ** 53  # one ulp is 2 there: the order of the additions shows
    losses, correct = np.empty(n), np.empty(n, dtype=np.uint8)
    filters, weights, biases = (np.array(a) for a in Network(seed=4)._parameters())
    total = kernels.train_steps(x_train, y_train.astype(np.int64), np.arange(n, dtype=np.int64),
                                filters, weights, biases, 0.005, losses, correct, start)
    expected = start
    for loss in losses.tolist():
        expected += loss
    assert total == expected
    assert expected != math.fsum([start, *losses.tolist()])
    assert kernels.train_steps(x_train, y_train.astype(np.int64), np.arange(0, dtype=np.int64),
                               filters, weights, biases, 0.005, losses, correct, 1.5) == 1.5


def test_fit_equals_the_facade_loop_in_the_same_order(mnist):
    (x_train, y_train), _ = mnist
    images, labels = x_train[:200], y_train[:200]
    network = Network(seed=2)
    network.fit(images, labels, epochs=1, seed=9)
    order = np.random.default_rng(9).permutation(200)
    np.random.seed(2)
    conv, pool, softmax = Conv3x3(8, 0.005), MaxPool2(), Softmax(13 * 13 * 8, 10, 0.005)
    for index in order:
        facade_step(conv, pool, softmax, images[index], labels[index])
    for a, b in zip(params(network), (conv.filters, softmax.weights, softmax.biases)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("shape,num_filters", [((13, 11), 4), ((12, 9), 8), ((4, 4), 4), ((7, 10), 3),
                                               ((11, 11), 5), ((28, 29), 12), ((9, 12), 16)])
def test_fused_equals_facade_for_other_shapes(shape, num_filters):
    # The AVX2 build fuses conv+pool over the pooling windows when the filters come in fours;
    # odd conv outputs leave a row or column that no window covers, and other filter counts
    # take the layer kernels. Every case must still give the façade's numbers bit for bit.
    rng = np.random.default_rng(num_filters)
    images = rng.integers(0, 256, size=(40,) + shape).astype(np.uint8)
    images[::2, : shape[0] // 2] = 0  # flat areas: max-pool ties
    images[1::3] = np.where(images[1::3] > 128, 255, 0)  # two-valued images: ties of equal sums
    labels = rng.integers(0, 10, size=40)
    fused = Network(seed=5, num_filters=num_filters, image_shape=shape, learn_rate=0.02)
    np.random.seed(5)
    ph, pw = (shape[0] - 2) // 2, (shape[1] - 2) // 2
    conv, pool, softmax = Conv3x3(num_filters, 0.02), MaxPool2(), Softmax(ph * pw * num_filters, 10, 0.02)
    for image, label in zip(images, labels):
        loss, hit = fused.train_step(image, label)
        ref_loss, ref_hit = facade_step(conv, pool, softmax, image, label)
        assert hit == ref_hit and abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    for a, b in zip(params(fused), (conv.filters, softmax.weights, softmax.biases)):
        assert np.array_equal(a, b)
    probs = fused.predict_proba(images, num_threads=2)
    for k in (0, 1, 39):
        assert np.array_equal(probs[k], softmax.forward(pool.forward(conv.forward((images[k] / 255) - 0.5))))


def test_predict_proba_threads_and_facade_agree(mnist):
    _, (x_test, y_test) = mnist
    network = Network(seed=4)
    network.fit(mnist[0][0][:500], mnist[0][1][:500])
    images = x_test[:1001]  # odd count: uneven split across threads
    one = network.predict_proba(images, num_threads=1)
    for threads in (2, 3, None):
        assert np.array_equal(network.predict_proba(images, num_threads=threads), one)
    for k in (0, 500, 1000):
        expected = network.softmax.forward(network.pool.forward(network.conv.forward((images[k] / 255) - 0.5)))
        assert np.array_equal(one[k], expected)
    assert np.array_equal(network.predict(images), one.argmax(axis=1))
    assert network.predict_proba(x_test[0]).shape == (1, 10)


def test_evaluate(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    network = Network(seed=0)
    network.fit(x_train[:2000], y_train[:2000])
    result = network.evaluate(x_test[:500], y_test[:500])
    assert result.confusion.sum() == 500
    assert result.accuracy == pytest.approx(np.trace(result.confusion) / 500)
    assert result.accuracy > 0.7 and 0 < result.loss < 1.5
    probs = network.predict_proba(x_test[:500])
    assert result.loss == pytest.approx(np.mean(-np.log(probs[np.arange(500), y_test[:500]])))
    np.testing.assert_allclose(result.per_class_accuracy,
                               np.diag(result.confusion) / result.confusion.sum(axis=1))


def test_layers_share_parameters_with_the_network(mnist):
    (x_train, y_train), _ = mnist
    conv, pool, softmax = Conv3x3(8), MaxPool2(), Softmax(13 * 13 * 8, 10)
    filters = conv.filters
    network = Network(conv, pool, softmax, learn_rate=0.01)
    network.fit(x_train[:50], y_train[:50])
    assert network.conv is conv and conv.filters is filters and conv.learn_rate == 0.01


def test_network_input_checks(mnist):
    network = Network(seed=0)
    normalised = (mnist[0][0][:2] / 255) - 0.5  # already normalised: not what the network takes
    with pytest.raises(ValueError, match=r"expects uint8 images .*got dtype float64 with values -0.5..0.5\. "
                                         r"The network normalises pixels itself"):
        network.predict_proba(normalised)
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\) or one \(28, 28\) image, got shape \(784,\)"):
        network.predict(np.zeros(784, np.uint8))
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\) or one \(28, 28\) image, got shape \(1, 26, 26\)"):
        network.predict(np.zeros((1, 26, 26), np.uint8))
    with pytest.raises(ValueError, match=r"labels in 0..9 \(the softmax has 10 nodes\), got values 0..10"):
        network.fit(np.zeros((2, 28, 28), np.uint8), np.array([0, 10]))
    with pytest.raises(ValueError, match=r"expects 2 labels \(one per image\), got shape \(3,\)"):
        network.fit(np.zeros((2, 28, 28), np.uint8), [1, 2, 3])
    with pytest.raises(ValueError, match=r"num_threads must be a positive integer, got 0"):
        network.predict(np.zeros((1, 28, 28), np.uint8), num_threads=0)
    # integer-valued images of another dtype are accepted as uint8
    image = mnist[0][0][0]
    assert np.array_equal(network.predict_proba(image.astype(np.int32)), network.predict_proba(image))


def test_build_info():
    info = cnn_ext.build_info()
    print(info)
    assert isinstance(info["openmp"], bool) and info["max_threads"] >= 1
    assert info["kernels"] in ("_kernels", "_kernels_avx2", "_kernels_avx512", "_kernels_neon")
    if info["compiler"] != "msvc":
        assert "-ffast-math" not in info["cflags"] and "-march=native" not in info["cflags"]
        if info["kernels"] == "_kernels":
            assert "-ffp-contract=off" in info["cflags"]
    forced = os.environ.get("CNN_EXT_KERNELS", "auto").strip().lower() or "auto"
    if forced == "baseline":
        assert info["kernels"] == "_kernels"
    elif forced == "avx2":
        assert info["kernels"] == "_kernels_avx2"
    elif info["machine"].lower() in ("aarch64", "arm64") and info["neon_variant"] == "built":
        assert info["kernels"] == "_kernels_neon" and "neon" in info["simd"] and info["family"] == "fma"
    elif info["cpu_has_avx512"] and info["avx512_variant"] == "built":
        assert info["kernels"] == "_kernels_avx512" and "avx512f" in info["simd"]
    elif info["cpu_has_avx2_fma"] and info["machine"] in ("x86_64", "AMD64") and info["compiler"] != "msvc":
        # one wheel, fast everywhere: on this CPU the AVX2 build must be the one in use
        # (MSVC builds only the portable kernels: the vector code needs GCC/clang)
        assert info["kernels"] == "_kernels_avx2" and "avx2" in info["simd"]


def test_num_threads_with_or_without_openmp(mnist):
    """num_threads works in every build, OpenMP or not (macOS wheels have none), and the
    probabilities do not depend on it, bit for bit."""
    network = cnn_ext.Network(seed=0)
    network.fit(mnist[0][0][:300], mnist[0][1][:300], seed=0)
    images = mnist[1][0][:64]
    one = network.predict_proba(images, num_threads=1)
    for threads in (2, 3, 8):
        assert np.array_equal(network.predict_proba(images, num_threads=threads), one), threads
    assert np.array_equal(network.predict_proba(images), one)
    info = cnn_ext.build_info()
    if not info["openmp"]:
        assert info["max_threads"] == 1
    # .ci/run says which builds must have OpenMP and which must not
    expected = os.environ.get("CNN_EXT_CI_EXPECT_OPENMP")
    if expected is not None:
        assert info["openmp"] == (expected == "1"), info


def _run_with_kernels(choice, code):
    import os
    import subprocess
    import sys

    env = dict(os.environ, CNN_EXT_KERNELS=choice)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_both_kernel_builds_agree(mnist):
    """The portable build and the vector build of this machine (AVX2 on x86-64, NEON on
    arm64) train to the same weights within rounding."""
    import json

    import importlib.util

    info = cnn_ext.build_info()
    if importlib.util.find_spec("cnn_ext._kernels_neon") is not None and info["machine"].lower() in ("aarch64", "arm64"):
        vector = "neon"
    elif importlib.util.find_spec("cnn_ext._kernels_avx2") is None:
        reason = ("this build has no vector variant (AVX2 is built for x86-64, NEON for arm64, "
                  "with GCC or clang): nothing to compare the portable kernels with")
        print(reason)
        pytest.skip(reason)
    elif not info["cpu_has_avx2_fma"]:
        reason = "this CPU has no AVX2/FMA: only the portable build can run here"
        print(reason)
        pytest.skip(reason)
    else:
        vector = "avx2"
    code = (
        "import json, numpy as np, cnn_ext\n"
        "from cnn_ext.datasets import mnist\n"
        "(x, y), (xt, yt) = mnist.load_data()\n"
        "net = cnn_ext.Network(seed=0)\n"
        "net.fit(x[:3000], y[:3000], seed=0)\n"
        "print(json.dumps({'kernels': cnn_ext.build_info()['kernels'],\n"
        "  'filters': net.conv.filters.tolist(), 'weights': net.softmax.weights.tolist(),\n"
        "  'proba': net.predict_proba(xt[:200]).tolist()}))\n"
    )
    results = {}
    for choice in ("baseline", vector):
        run = _run_with_kernels(choice, code)
        assert run.returncode == 0, run.stderr
        results[choice] = json.loads(run.stdout)
    assert results["baseline"]["kernels"] == "_kernels"
    assert results[vector]["kernels"] == f"_kernels_{vector}"
    for key in ("filters", "weights", "proba"):
        a, b = np.array(results["baseline"][key]), np.array(results[vector][key])
        assert np.max(np.abs(a - b)) / np.max(np.abs(a)) < 1e-10, key


def test_bad_kernel_choice_is_a_clear_error():
    run = _run_with_kernels("sse9", "import cnn_ext")
    assert run.returncode != 0 and "CNN_EXT_KERNELS must be one of auto, avx512, avx2, neon, baseline, got 'sse9'" in run.stderr


def test_train_step_follows_replaced_parameters_and_learn_rate(mnist):
    # train_step keeps a compiled state between calls; it must notice every change a user
    # (or ModelSaver) can make to the layers and give the façade's numbers after it.
    (x_train, y_train), _ = mnist
    fused = Network(seed=6)
    np.random.seed(6)
    conv, pool, softmax = Conv3x3(8, 0.005), MaxPool2(), Softmax(13 * 13 * 8, 10, 0.005)
    images, labels = x_train[:40], y_train[:40].tolist()

    def both(k):
        assert fused.train_step(images[k], labels[k])[1] == facade_step(conv, pool, softmax, images[k], labels[k])[1]

    both(0)
    new_filters = np.random.default_rng(0).standard_normal((8, 3, 3)).astype(np.float32)  # converted once
    fused.conv.filters, conv.filters = new_filters, new_filters.astype(np.float64)
    both(1)
    assert fused.conv.filters.dtype == np.float64
    fused.softmax.weights = np.asfortranarray(fused.softmax.weights * 0.5)  # not C order: converted
    softmax.weights = softmax.weights * 0.5
    both(2)
    fused.softmax.biases = fused.softmax.biases + 0.1
    softmax.biases = softmax.biases + 0.1
    both(3)
    fused.learn_rate = conv.learn_rate = softmax.learn_rate = 0.02
    both(4)
    fused.conv.filters[:] = 0.25  # in place: the same array, so the same state
    conv.filters[:] = 0.25
    both(5)
    padded = np.zeros((29, 29), np.uint8)  # also 13x13 after conv and pool
    padded[:28, :28] = images[6]
    assert fused.train_step(padded, labels[6])[1] == facade_step(conv, pool, softmax, padded, labels[6])[1]
    both(7)
    for a, b in zip(params(fused), (conv.filters, softmax.weights, softmax.biases)):
        assert np.array_equal(a, b)


def in_place(array, attribute, value):
    """Set an array's shape or dtype on the object itself, as a user's code may: NumPy 2.5
    deprecates it (use a new view), but the arrays a user already holds can still change
    this way, and the compiled state must notice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        setattr(array, attribute, value)


def test_train_state_rejects_changed_arrays_and_bad_input(mnist):
    (x_train, _), _ = mnist
    network = Network(seed=0)
    network.train_step(x_train[0], 1)
    state = network._train_state
    with pytest.raises(ValueError, match=r"C-contiguous uint8 image of shape \(28, 28\)"):
        state.step(x_train[0].astype(np.float64), 1)
    with pytest.raises(ValueError, match=r"C-contiguous uint8 image of shape \(28, 28\)"):
        state.step(x_train[0][:, ::2], 1)
    with pytest.raises(ValueError, match=r"label 10 is not in 0..9"):
        state.step(x_train[0], 10)
    before = [p.copy() for p in params(network)]
    in_place(network.softmax.weights, "shape", (676, 20))  # same buffer, another shape
    assert state.step(x_train[0], 1) is None  # stale: no step taken
    with pytest.raises(ValueError, match=r"Softmax.biases must have shape \(20,\), got \(10,\)"):
        network.train_step(x_train[0], 1)
    in_place(network.softmax.weights, "shape", (1352, 10))
    network.conv.filters.flags.writeable = False
    assert state.step(x_train[0], 1) is None
    assert all(np.array_equal(a, b) for a, b in zip(params(network), before))
    network.train_step(x_train[0], 1)  # a read-only array is copied once, as the façade does
    assert network.conv.filters.flags.writeable
    with pytest.raises(TypeError):  # addresses and buffers do not pickle
        pickle.dumps(network._train_state)


@pytest.mark.parametrize("poison", [np.nan, np.inf, 1e305, -1e305])
def test_fused_path_keeps_the_nan_rule_for_unbounded_filters(mnist, poison):
    # The fused kernels take window maxima without a NaN check when the filters are bounded
    # (no conv sum can overflow); a NaN, an inf or a huge weight must switch the check back
    # on, so the network still gives the façade's numbers (NaN included).
    (x_train, y_train), (x_test, _) = mnist
    fused = Network(seed=8)
    fused.conv.filters[2, 1, 1] = poison
    np.random.seed(8)
    conv, pool, softmax = Conv3x3(8, 0.005), MaxPool2(), Softmax(13 * 13 * 8, 10, 0.005)
    conv.filters[2, 1, 1] = poison
    probs = fused.predict_proba(x_test[:20])
    for k in range(20):
        expected = softmax.forward(pool.forward(conv.forward((x_test[k] / 255) - 0.5)))
        np.testing.assert_array_equal(probs[k], expected)
    with np.errstate(all="ignore"):
        for image, label in zip(x_train[:5], y_train[:5]):
            loss, hit = fused.train_step(image, label)
            ref_loss, ref_hit = facade_step(conv, pool, softmax, image, label)
            assert hit == ref_hit and (loss == ref_loss or np.isnan(loss) and np.isnan(ref_loss)
                                       or abs(loss - ref_loss) <= 1e-12 * abs(ref_loss))
    for a, b in zip(params(fused), (conv.filters, softmax.weights, softmax.biases)):
        np.testing.assert_array_equal(a, b)


def test_network_copies_and_pickles_after_training(mnist):
    # The compiled state train_step keeps is left out of copies and pickles; each copy
    # builds its own and trains exactly like the original.
    import copy

    (x_train, y_train), _ = mnist
    net = Network(seed=9)
    net.train_step(x_train[0], int(y_train[0]))
    copies = [copy.deepcopy(net), pickle.loads(pickle.dumps(net))]
    assert all(other._train_state is None for other in copies)
    for image, label in zip(x_train[1:4], y_train[1:4]):
        expected = net.train_step(image, int(label))
        assert all(other.train_step(image, int(label)) == expected for other in copies)
    for other in copies:
        for a, b in zip(params(other), params(net)):
            assert np.array_equal(a, b) and a is not b


def test_train_state_refuses_byte_swapped_parameters(mnist):
    (x_train, _), _ = mnist
    net = Network(seed=0)
    net.train_step(x_train[0], 1)
    state = net._train_state
    filters = net.conv.filters
    filters.byteswap(inplace=True)
    swapped = filters.view(filters.dtype.newbyteorder())  # same values, non-native order
    assert np.array_equal(swapped, filters.byteswap())
    in_place(filters, "dtype", swapped.dtype)  # the layer's own array, reinterpreted in place
    assert state.step(x_train[1], 2) is None  # stale: the state no longer trusts it
    net.train_step(x_train[1], 2)  # the checked path converts it to native float64
    assert net.conv.filters.dtype == np.float64 and net.conv.filters.dtype.isnative


def test_mismatched_layers_are_refused_in_the_constructor_naming_the_sizes():
    with pytest.raises(ValueError, match=r"Softmax\(1352, 10\) takes 1352 inputs, but Conv3x3\(16\) gives "
                                         r"a multiple of 16 \(on MNIST's 28x28 images 13x13x16 = 2704 "
                                         r"after MaxPool2\): use Softmax\(2704, 10\) or Conv3x3\(8\)"):
        Network(conv=Conv3x3(16), softmax=Softmax(1352, 10))
    with pytest.raises(ValueError, match=r"Conv3x3\(4\) on 21x17 images gives 9x7x4 = 252"):
        Network(conv=Conv3x3(4), softmax=Softmax(1352, 10), image_shape=(21, 17))
    # Layers that fit are accepted: MNIST's, and a square model of another size.
    assert Network(conv=Conv3x3(16), softmax=Softmax(2704, 10)).softmax.weights.shape == (2704, 10)
    Network(conv=Conv3x3(4), softmax=Softmax(4 * 9 * 7, 10), image_shape=(21, 17))
    Network(conv=Conv3x3(2), softmax=Softmax(2 * 5 * 5, 3))
    Network(conv=Conv3x3(5), softmax=Softmax(5 * 9 * 7, 10))  # for 21x17 images; fit checks them
