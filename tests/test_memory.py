"""No leaks: a million kernel calls, ten thousand training steps and 100k failing calls
leave the process's memory flat, and no call keeps references it should not.

RSS is read from ``/proc/self/statm`` (Linux; the RSS tests skip elsewhere). Each loop is
warmed up first (allocator arenas, OpenMP thread pools, cached shapes), then measured;
the figures are printed (``pytest -s`` shows them, and ``-rP`` for passed tests).
A leak of even one small object or one kernel scratch buffer per call would add
tens of MiB over these loop counts; the limit is 2 MiB.

Python-level checks (any platform): ``sys.getrefcount`` of inputs, outputs and layer
parameters is stable, the number of GC-tracked objects is stable, and tracemalloc (which
also traces NumPy's data buffers) sees neither growth nor a rising peak.
"""
import gc
import importlib
import inspect
import os
import sys
import time
import tracemalloc

import numpy as np
import pytest

from cnn_ext import Conv3x3, MaxPool2, Network, Softmax

MiB = 1024 * 1024
RSS_LIMIT = 2 * MiB
STATM = "/proc/self/statm"


def compiled(layer):
    """The compiled module with ``layer``'s kernels: the one the façades dispatch to, or
    the per-layer module ``cnn_ext._<layer>`` of builds that have one."""
    try:
        from cnn_ext._dispatch import kernels
        return kernels
    except ImportError:
        return importlib.import_module(f"cnn_ext._{layer}")


def rss():
    with open(STATM) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def linux_rss():
    if not os.path.exists(STATM):
        reason = f"RSS is read from {STATM}, which this platform ({sys.platform}) lacks"
        print(reason)
        pytest.skip(reason)


def assert_rss_flat(label, loop, calls, warmup=None):
    """Run ``loop(n)`` (n calls) to warm up, then ``calls`` times; RSS must stay flat."""
    loop(warmup if warmup is not None else max(calls // 10, 1000))
    gc.collect()
    before = rss()
    start = time.perf_counter()
    loop(calls)
    elapsed = time.perf_counter() - start
    gc.collect()
    after = rss()
    growth = after - before
    print(f"[memory] {label}: {calls} calls in {elapsed:.2f} s; RSS before {before / MiB:.2f} MiB, "
          f"after {after / MiB:.2f} MiB, growth {growth / 1024:+.0f} KiB "
          f"(limit {RSS_LIMIT / 1024:.0f} KiB)")
    assert growth < RSS_LIMIT, f"{label}: RSS grew by {growth / MiB:.2f} MiB over {calls} calls"


# ------------------------------------------------------------------ a million kernel calls

def bind(kernel, **pool):
    """``kernel``'s positional arguments, picked by parameter name from ``pool`` (so the
    loops follow signature changes of the kernels, e.g. scratch buffers added or dropped)."""
    params = inspect.signature(kernel).parameters.values()
    missing = [p.name for p in params if p.name not in pool and p.default is inspect.Parameter.empty]
    assert not missing, f"{kernel.__name__}: no test value for parameter(s) {missing}"
    return tuple(pool[p.name] for p in params if p.name in pool)


def _kernel_loops():
    """label -> (loop(n), calls); the calls add up to one million."""
    pool, conv, soft = compiled("maxpool"), compiled("conv"), compiled("softmax")
    rng = np.random.default_rng(0)
    x, out = rng.standard_normal((2, 2, 1)), np.empty((1, 1, 1))
    x4, d4, dx4 = rng.standard_normal((4, 4, 2)), rng.standard_normal((2, 2, 2)), np.empty((4, 4, 2))
    conv_pool = dict(image=rng.standard_normal((4, 4)), filters=rng.standard_normal((2, 3, 3)),
                     out=np.empty((2, 2, 2)), d_L_d_out=rng.standard_normal((2, 2, 2)),
                     learn_rate=0.0, d_L_d_filters=np.empty((2, 3, 3)))
    soft_pool = dict(x=rng.standard_normal(3), weights=rng.standard_normal((3, 2)), biases=np.zeros(2),
                     totals=np.empty(2), out=np.empty(2), learn_rate=0.0, d_L_d_input=np.empty(3),
                     scratch=np.empty(4))
    facade, tiny = MaxPool2(), rng.standard_normal((2, 2, 1))

    def loop(call, *args):
        def run(n):
            for _ in range(n):
                call(*args)
        return run

    soft.softmax_forward(*bind(soft.softmax_forward, **soft_pool))  # totals for backprop
    soft_back = bind(soft.softmax_backprop, **dict(soft_pool, d_L_d_out=np.array([-1.0, 0.5])))
    return {
        "maxpool2_forward (2,2,1)": (loop(pool.maxpool2_forward, x, out), 500_000),
        "maxpool2_backprop (4,4,2)": (loop(pool.maxpool2_backprop, x4, d4, dx4), 100_000),
        "conv3x3_forward 4x4, 2 filters":
            (loop(conv.conv3x3_forward, *bind(conv.conv3x3_forward, **conv_pool)), 100_000),
        "conv3x3_backprop 4x4, 2 filters":
            (loop(conv.conv3x3_backprop, *bind(conv.conv3x3_backprop, **conv_pool)), 50_000),
        "softmax_forward 3->2": (loop(soft.softmax_forward, *bind(soft.softmax_forward, **soft_pool)), 50_000),
        "softmax_backprop 3->2": (loop(soft.softmax_backprop, *soft_back), 50_000),
        "MaxPool2().forward (2,2,1) facade": (loop(facade.forward, tiny), 150_000),
    }


KERNEL_LOOPS = list(_kernel_loops())


def test_kernel_loops_add_up_to_a_million():
    assert sum(calls for _, calls in _kernel_loops().values()) == 1_000_000


@pytest.mark.parametrize("label", KERNEL_LOOPS)
def test_a_million_kernel_calls_keep_rss_flat(linux_rss, label):
    loop, calls = _kernel_loops()[label]
    assert_rss_flat(label, loop, calls)


def test_ten_thousand_train_steps_keep_rss_flat(linux_rss, mnist):
    (x_train, y_train), _ = mnist
    net = Network(seed=0)
    images, labels = x_train[:500], y_train[:500].tolist()

    def steps(n):
        for k in range(n):
            net.train_step(images[k % 500], labels[k % 500])

    assert_rss_flat("Network.train_step (28x28, 8 filters)", steps, 10_000, warmup=1_000)


def test_batch_inference_keeps_rss_flat(linux_rss, mnist):
    # predict_proba allocates per-thread buffers on every call (and starts OpenMP threads
    # on the first one, hence the warm-up).
    (x_train, _), _ = mnist
    net, batch = Network(seed=0), x_train[:4]

    def predict(n):
        for _ in range(n):
            net.predict_proba(batch)

    assert_rss_flat("Network.predict_proba (4 images, default threads)", predict, 2_000, warmup=200)


# -------------------------------------------------------------------------- error paths

def _error_loops():
    pool = compiled("maxpool")
    x, wrong_out = np.zeros((4, 4, 2)), np.empty((3, 2, 2))
    int_x, out = np.zeros((4, 4, 2), dtype=np.int64), np.empty((2, 2, 2))
    facade, conv_layer = MaxPool2(), Conv3x3(2)
    flat, small = np.zeros(4), np.zeros((2, 2))

    def raising(call, *args):
        def run(n):
            for _ in range(n):
                try:
                    call(*args)
                except ValueError:
                    pass
                else:
                    raise AssertionError(f"{call} accepted bad input")
        return run

    return {
        "kernel: wrong output shape": raising(pool.maxpool2_forward, x, wrong_out),
        "kernel: wrong dtype (buffer mismatch)": raising(pool.maxpool2_forward, int_x, out),
        "facade: 1-D input to MaxPool2": raising(facade.forward, flat),
        "facade: 2x2 image to Conv3x3": raising(conv_layer.forward, small),
    }


@pytest.mark.parametrize("label", list(_error_loops()))
def test_failing_calls_do_not_leak(linux_rss, label):
    assert_rss_flat(f"ValueError path, {label}", _error_loops()[label], 100_000, warmup=10_000)


# ----------------------------------------------------------------------- references

def test_kernels_keep_no_references_to_their_arguments():
    pool, conv, soft = compiled("maxpool"), compiled("conv"), compiled("softmax")
    rng = np.random.default_rng(1)
    args = {
        "maxpool": (pool.maxpool2_forward, (rng.standard_normal((4, 4, 3)), np.empty((2, 2, 3)))),
        "conv": (conv.conv3x3_forward, (rng.standard_normal((5, 5)), rng.standard_normal((3, 3, 3)),
                                        np.empty((3, 3, 3)))),
        "softmax": (soft.softmax_forward, (rng.standard_normal(4), rng.standard_normal((4, 3)),
                                           np.zeros(3), np.empty(3), np.empty(3))),
    }
    for name, (call, arrays) in args.items():
        before = [sys.getrefcount(a) for a in arrays]
        for _ in range(10_000):
            call(*arrays)
        assert [sys.getrefcount(a) for a in arrays] == before, name


def test_layers_keep_only_their_documented_references():
    rng = np.random.default_rng(2)
    np.random.seed(0)
    conv, pool, soft = Conv3x3(3), MaxPool2(), Softmax(3 * 3 * 3, 10)
    image = rng.standard_normal((8, 8))
    grad = np.zeros(10)
    grad[3] = -2.0

    def step():
        out = pool.forward(conv.forward(image))
        probs = soft.forward(out)
        conv.backprop(pool.backprop(soft.backprop(grad)))
        return probs

    step()  # conv.last_input now holds ``image`` (float64 C arrays are used as they are)
    params = [conv.filters, soft.weights, soft.biases]
    counts = [sys.getrefcount(a) for a in (image, grad, *params)]
    for _ in range(10_000):
        probs = step()
    # Updated in place: the same objects, no extra references.
    assert all(a is b for a, b in zip([conv.filters, soft.weights, soft.biases], params))
    assert [sys.getrefcount(a) for a in (image, grad, *params)] == counts
    # A returned array is referenced only by the caller (and getrefcount's argument).
    assert sys.getrefcount(probs) == 2


def test_network_keeps_its_parameter_objects(mnist):
    (x_train, y_train), _ = mnist
    net = Network(seed=0)
    net.train_step(x_train[0], int(y_train[0]))
    params = [net.conv.filters, net.softmax.weights, net.softmax.biases]
    counts = [sys.getrefcount(a) for a in params]
    image_count = sys.getrefcount(x_train)
    for k in range(2_000):
        net.train_step(x_train[k], int(y_train[k]))
        net.predict_proba(x_train[k:k + 2])
    assert all(a is b for a, b in zip([net.conv.filters, net.softmax.weights, net.softmax.biases], params))
    assert [sys.getrefcount(a) for a in params] == counts
    assert sys.getrefcount(x_train) == image_count


def _mixed_workload(n, net, images, labels):
    pool, conv = MaxPool2(), Conv3x3(2)
    small = np.zeros((5, 5))
    for k in range(n):
        net.train_step(images[k % len(images)], labels[k % len(labels)])
        pool.forward(conv.forward(small))
        try:
            pool.forward(np.zeros(3))
        except ValueError:
            pass


def test_gc_tracked_object_count_is_stable(mnist):
    (x_train, y_train), _ = mnist
    net = Network(seed=0)
    images, labels = x_train[:50], y_train[:50].tolist()
    _mixed_workload(500, net, images, labels)
    gc.collect()
    before = len(gc.get_objects())
    _mixed_workload(5_000, net, images, labels)
    gc.collect()
    after = len(gc.get_objects())
    print(f"[memory] GC-tracked objects: {before} before, {after} after 5000 mixed iterations")
    assert after - before < 100, f"{after - before} more GC-tracked objects"


def test_tracemalloc_sees_no_growth_and_a_stable_peak(mnist):
    (x_train, y_train), _ = mnist
    net = Network(seed=0)
    images, labels = x_train[:50], y_train[:50].tolist()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        _mixed_workload(300, net, images, labels)
        gc.collect()
        tracemalloc.reset_peak()
        current0, _ = tracemalloc.get_traced_memory()
        _mixed_workload(2_000, net, images, labels)
        gc.collect()
        current1, peak1 = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _mixed_workload(2_000, net, images, labels)
        gc.collect()
        current2, peak2 = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    print(f"[memory] tracemalloc: current {current0} -> {current1} -> {current2} bytes, "
          f"peaks {peak1} and {peak2} bytes over two batches of 2000 mixed iterations")
    assert current2 - current0 < 64 * 1024
    assert peak2 <= peak1 + 16 * 1024
