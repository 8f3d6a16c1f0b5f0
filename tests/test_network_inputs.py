"""Network's public entries refuse what would train or predict silently wrong (issue: the first hour)."""
import math
import pickle
import warnings

import numpy as np
import pytest

from cnn_ext import Conv3x3, MaxPool2, Network, Softmax
from cnn_ext.history import EpochRecord, History, StepRecord


@pytest.fixture(scope="module")
def data(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    return x_train[:600], y_train[:600], x_test[:200], y_test[:200]


def params(network):
    return [a.copy() for a in (network.conv.filters, network.softmax.weights, network.softmax.biases)]


def test_train_step_refuses_a_batch_and_leaves_the_weights(data):
    x, y, _, _ = data
    network = Network(seed=0)
    before = params(network)
    with pytest.raises(ValueError, match=r"one uint8 image of shape \(28, 28\), got shape \(5, 28, 28\): "
                                         r"train on a batch with Network.fit"):
        network.train_step(x[:5], y[0])
    network.train_step(x[0], int(y[0]))  # a compiled state exists now: the fast path must refuse too
    before = params(network)
    with pytest.raises(ValueError, match=r"got shape \(5, 28, 28\)"):
        network.train_step(x[:5], int(y[0]))
    assert all(np.array_equal(a, b) for a, b in zip(before, params(network)))


def test_flat_images_get_a_reshape_hint(data):
    x, y, _, _ = data
    network = Network(seed=0)
    flat = x[:5].reshape(5, 784)
    for call in (lambda: network.predict(flat), lambda: network.fit(flat, y[:5]),
                 lambda: network.evaluate(flat, y[:5])):
        with pytest.raises(ValueError, match=r"got shape \(5, 784\): flat images must be reshaped first, "
                                             r"images.reshape\(-1, 28, 28\)"):
            call()
    with pytest.raises(ValueError, match=r"a flat image must be reshaped first, image.reshape\(28, 28\)"):
        network.train_step(x[0].ravel(), 1)


@pytest.mark.parametrize("labels, error, message", [
    (["1", "2"], TypeError, r"integer labels in 0..9, got dtype <U1"),
    ([1.0, 2.0], TypeError, r"integer labels in 0..9, got dtype float64 \(convert with labels.astype\(int\)\)"),
    ([True, False], TypeError, r"got dtype bool"),
    ([1, -1], ValueError, r"labels in 0..9 \(the softmax has 10 nodes\), got values -1..1"),
])
def test_bad_labels(data, labels, error, message):
    x, _, _, _ = data
    network = Network(seed=0)
    with pytest.raises(error, match=message):
        network.fit(x[:2], labels)
    with pytest.raises(error, match=message):
        network.evaluate(x[:2], labels)


@pytest.mark.parametrize("label", ["3", 3.0, True, None, 10, -1, 2**70, np.int64(12)])
def test_train_step_bad_label(data, label):
    x, _, _, _ = data
    network = Network(seed=0)
    network.train_step(x[0], 1)
    with pytest.raises((TypeError, ValueError), match=r"Network.train_step\(label\) expects"):
        network.train_step(x[0], label)


def test_numpy_integer_labels_work(data):
    x, y, _, _ = data
    a, b = Network(seed=0), Network(seed=0)
    assert a.train_step(x[0], y[0]) == b.train_step(x[0], int(y[0]))
    assert a.train_step(x[1], np.array(y[1])) == b.train_step(x[1], int(y[1]))


def test_int32_images_and_labels_train_like_int64(data):
    """The kernels take `long long` indices and labels; int32 arrays (the default int of
    NumPy 1.x on Windows) are converted, not refused or misread."""
    x, y, _, _ = data
    a, b = Network(seed=1), Network(seed=1)
    a.fit(x[:300], y[:300].astype(np.int32), shuffle=False)
    b.fit(x[:300], y[:300].astype(np.int64), shuffle=False)
    assert all(np.array_equal(p, q) for p, q in zip(params(a), params(b)))
    assert a.evaluate(x[:100], y[:100].astype(np.int32)).accuracy == b.evaluate(x[:100], y[:100]).accuracy


def test_more_than_ten_classes(data):
    """The number of classes is the softmax's nodes, everywhere."""
    x, y, _, _ = data
    np.random.seed(0)
    network = Network(Conv3x3(8), MaxPool2(), Softmax(13 * 13 * 8, 12))
    labels = (y[:200] + 2) % 12  # uses labels 10 and 11
    assert labels.max() == 11
    history = network.fit(x[:200], labels)
    assert network.nodes == 12 and len(history.history["loss"]) == 1
    loss, _ = network.train_step(x[0], 11)
    assert math.isfinite(loss)
    result = network.evaluate(x[:200], labels)
    assert result.confusion.shape == (12, 12) and result.confusion.sum() == 200
    assert len(result.per_class_accuracy) == 12
    assert network.predict_proba(x[:3]).shape == (3, 12)
    with pytest.raises(ValueError, match=r"0..11 \(the softmax has 12 nodes\), got 12"):
        network.train_step(x[0], 12)


@pytest.mark.parametrize("rate", [0, -0.1, float("nan"), float("inf"), -float("inf")])
def test_bad_learn_rates_are_refused(data, rate):
    x, y, _, _ = data
    with pytest.raises(ValueError, match=r"finite number > 0"):
        Network(learn_rate=rate)
    network = Network(seed=0)
    with pytest.raises(ValueError, match=r"finite number > 0"):
        network.learn_rate = rate
    network.conv.learn_rate = rate  # set behind the network's back: refused when used
    with pytest.raises(ValueError, match=r"Conv3x3.learn_rate must be a finite number > 0"):
        network.train_step(x[0], int(y[0]))
    with pytest.raises(ValueError, match=r"Conv3x3.learn_rate must be a finite number > 0"):
        network.fit(x[:10], y[:10])
    conv = Conv3x3(4, learn_rate=rate)
    conv.forward(np.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"Conv3x3.learn_rate must be a finite number > 0"):
        conv.backprop(np.zeros((3, 3, 4)))
    softmax = Softmax(4, 3, learn_rate=rate)
    softmax.forward(np.zeros(4))
    with pytest.raises(ValueError, match=r"Softmax.learn_rate must be a finite number > 0"):
        softmax.backprop(np.ones(3))


@pytest.mark.parametrize("rate", ["0.1", None, True, [0.1]])
def test_learn_rate_must_be_a_number(rate):
    with pytest.raises(TypeError, match=r"must be a positive number"):
        Network(learn_rate=rate)


def test_a_nan_loss_warns_once_with_its_step(data):
    x, y, _, _ = data
    network = Network(seed=0, learn_rate=1e6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network.fit(x[:300], y[:300], shuffle=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "loss became NaN at step" in messages[0] and "smaller learn rate" in messages[0]
    # the named step is the first NaN: the same steps one by one agree
    step = int(messages[0].split("at step ")[1].split()[0])
    again = Network(seed=0, learn_rate=1e6)
    losses = [again.train_step(x[k], int(y[k]))[0] for k in range(step)]
    assert math.isnan(losses[-1]) and not any(math.isnan(v) for v in losses[:-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"log_every": -1}, r"log_every\) must be an integer >= 0, got -1"),
    ({"chunk": 0}, r"chunk\) must be an integer >= 1, got 0"),
    ({"chunk": 2.5}, r"chunk\) must be an integer >= 1, got 2.5"),
    ({"epochs": -1}, r"epochs\) must be an integer >= 0, got -1"),
    ({"epochs": 1.5}, r"epochs\) must be an integer >= 0"),
    ({"log_every": True}, r"log_every\) must be an integer"),
    ({"seed": -3}, r"seed\) must be None, a non-negative integer"),
    ({"seed": "abc"}, r"seed\) must be None"),
    ({"callback": 3}, r"callback\) must be callable"),
    ({"shuffle": "yes"}, r"shuffle\) must be True or False"),
    ({"validation_data": [1, 2, 3]}, r"validation_data\) must be a pair"),
])
def test_fit_arguments_are_checked(data, kwargs, message):
    x, y, _, _ = data
    network = Network(seed=0)
    before = params(network)
    with pytest.raises((TypeError, ValueError), match=message):
        network.fit(x[:20], y[:20], **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, params(network)))


def test_fit_returns_a_history_like_keras(data):
    x, y, xt, yt = data
    network = Network(seed=0)
    seen = []
    history = network.fit(x, y, epochs=2, seed=3, log_every=100, validation_data=(xt, yt),
                          callback=lambda kind, record: seen.append((kind, record)))
    assert isinstance(history, History)
    assert history.epoch == [1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in history.history.values())
    # the validation figures are evaluate's after that epoch (the last one: the final network)
    final = network.evaluate(xt, yt)
    assert history.history["val_loss"][-1] == final.loss and history.history["val_accuracy"][-1] == final.accuracy
    # step records: numbers, one per log interval, in the tutorial's line format
    assert [r.step for r in history.steps] == list(range(100, 1201, 100))
    assert all(isinstance(r, StepRecord) and r.count == 100 and 0 <= r.accuracy <= 1 for r in history.steps)
    assert history.lines[0].startswith("[Step 100] Past 100 steps :Average Loss ")
    assert history.lines[0] == str(history.steps[0])
    # each epoch's loss is the mean over its steps: the mean of its six interval means
    epoch1 = [r.loss for r in history.steps if r.epoch == 1]
    assert history.history["loss"][0] == pytest.approx(np.mean(epoch1), rel=1e-12)
    # the callback gets fresh, immutable records
    logs = [r for kind, r in seen if kind == "log"]
    progress = [r for kind, r in seen if kind == "progress"]
    assert logs == history.steps and len({id(r) for r in progress}) == len(progress)
    with pytest.raises(AttributeError):
        logs[0].loss = 0.0
    epochs = [r for kind, r in seen if kind == "epoch"]
    assert [type(r) for r in epochs] == [EpochRecord, EpochRecord] and epochs[1].val_accuracy == final.accuracy
    assert "History(epochs=2" in repr(history)
    assert pickle.loads(pickle.dumps(history)) == history


def test_fit_follows_arrays_a_callback_replaces(data):
    """A callback that replaces a parameter array or the learn rate: the rest of the
    epoch trains the new ones (as train_step does), not the detached old arrays."""
    x, y, _, _ = data
    network = Network(seed=0)
    replaced = {}

    def callback(kind, record):
        if kind == "progress" and record.step == 100 and not replaced:
            replaced["weights"] = network.softmax.weights = network.softmax.weights.copy()
            network.learn_rate = 0.01

    network.fit(x[:300], y[:300], shuffle=False, chunk=100, callback=callback)
    # the same run by hand: 100 steps, replace, 200 more steps at the new rate
    reference = Network(seed=0)
    reference.fit(x[:100], y[:100], shuffle=False)
    reference.softmax.weights = reference.softmax.weights.copy()
    reference.learn_rate = 0.01
    reference.fit(x[100:300], y[100:300], shuffle=False)
    assert network.softmax.weights is replaced["weights"]
    assert all(np.array_equal(a, b) for a, b in zip(params(network), params(reference)))


def test_thread_count_is_capped(data):
    _, _, xt, _ = data
    network = Network(seed=0)
    expected = network.predict_proba(xt[:7], num_threads=1)
    # more threads than images or than 4 per CPU would otherwise ask libgomp for 3000
    # threads, and its failure ends the interpreter
    assert np.array_equal(network.predict_proba(xt[:7], num_threads=3000), expected)
    assert np.array_equal(network.predict_proba(xt[:1], num_threads=10**6), expected[:1])


def test_repr_shows_layers_rate_and_parameters():
    text = repr(Network(seed=0))
    assert text == "Network(Conv3x3(8) -> MaxPool2 -> Softmax(1352, 10), learn_rate=0.005, parameters=13,602)"
