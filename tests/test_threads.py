"""Python threads: independent layers and networks in several threads at once give
bit for bit the results of the same work done sequentially, and the compiled kernels
release the GIL (another thread keeps running while one trains)."""
import importlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnn_ext import Conv3x3, MaxPool2, Network, Softmax, _kernels

THREADS = 4


def make_jobs(count):
    """Per job: a Network and its own layer objects, created here in the main thread
    (the constructors draw from NumPy's global random state, which threads would race on)."""
    jobs = []
    for k in range(count):
        net = Network(seed=100 + k)
        np.random.seed(200 + k)
        layers = (Conv3x3(4), MaxPool2(), Softmax(13 * 13 * 4, 10))
        jobs.append((k, net, layers))
    return jobs


def run_job(job, data, barrier=None):
    """Training and inference on the job's own objects; returns every number produced."""
    k, net, (conv, pool, softmax) = job
    (x_train, y_train), (x_test, _) = data
    if barrier is not None:
        barrier.wait()
    start = 300 * k
    images, labels = x_train[start:start + 300], y_train[start:start + 300]
    results = []
    lines = net.fit(images, labels, epochs=1, seed=k, log_every=100, chunk=64).lines
    results.append("\n".join(lines).encode())
    for i in range(20):
        loss, hit = net.train_step(x_train[start + i], int(y_train[start + i]))
        results.append(np.float64(loss).tobytes() + bytes([hit]))
    results.append(net.predict_proba(x_test[:100], num_threads=1).tobytes())
    results.append(net.predict_proba(x_test[100:200]).tobytes())
    for param in (net.conv.filters, net.softmax.weights, net.softmax.biases):
        results.append(param.tobytes())
    # The tutorial's layer-by-layer loop on the job's own layer objects.
    for i in range(30):
        image = (x_train[start + i] / 255) - 0.5
        probs = softmax.forward(pool.forward(conv.forward(image)))
        grad = np.zeros(10)
        grad[y_train[start + i]] = -1 / probs[y_train[start + i]]
        conv.backprop(pool.backprop(softmax.backprop(grad)))
        results.append(probs.tobytes())
    for param in (conv.filters, softmax.weights, softmax.biases):
        results.append(param.tobytes())
    return results


def test_threads_give_bit_identical_results_to_sequential_runs(mnist):
    sequential = [run_job(job, mnist) for job in make_jobs(THREADS)]
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(run_job, job, mnist, barrier) for job in make_jobs(THREADS)]
        concurrent = [f.result(timeout=300) for f in futures]
    for k, (seq, con) in enumerate(zip(sequential, concurrent)):
        assert len(seq) == len(con)
        for i, (a, b) in enumerate(zip(seq, con)):
            assert a == b, f"job {k}, result {i} differs between threaded and sequential runs"
    # The jobs really differ from each other (so the comparison above means something).
    assert len({tuple(r) for r in sequential}) == THREADS


def test_shared_read_only_inference_across_threads(mnist):
    # Several threads reading one network's parameters at once (no training).
    _, (x_test, _) = mnist
    net = Network(seed=0)
    batches = [x_test[i * 250:(i + 1) * 250] for i in range(8)]
    expected = [net.predict_proba(b, num_threads=1) for b in batches]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        got = list(pool.map(lambda b: net.predict_proba(b), batches))
    for e, g in zip(expected, got):
        assert e.tobytes() == g.tobytes()


# ------------------------------------------------------------------------- the GIL

def _fit_job(data, seed, n):
    (x_train, y_train), _ = data
    net = Network(seed=seed)
    return net, x_train[:n], y_train[:n]


def test_training_releases_the_gil(mnist):
    """While one thread runs a single long compiled chunk of ``fit``, the main thread keeps
    running Python code. If the kernel held the GIL, the main thread would stall for the
    whole chunk; this holds however loaded the machine is, unlike a speed-up."""
    net, images, labels = _fit_job(mnist, 0, 30000)
    start = time.perf_counter()
    net.fit(images[:1000], labels[:1000], chunk=1000)
    per_image = (time.perf_counter() - start) / 1000
    n = int(min(max(0.5 / per_image, 2000), 30000))  # one chunk of about 0.5 s

    done = threading.Event()
    timing = {}

    def train():
        t0 = time.perf_counter()
        net.fit(images[:n], labels[:n], chunk=n)
        timing["fit"] = time.perf_counter() - t0
        done.set()

    thread = threading.Thread(target=train)
    iterations, max_gap = 0, 0.0
    thread.start()
    last = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        max_gap = max(max_gap, now - last)
        last = now
        iterations += 1
    thread.join()
    print(f"[threads] fit of {n} images in one chunk took {timing['fit']:.3f} s; meanwhile the "
          f"main thread ran {iterations} loop iterations, longest stall {max_gap * 1000:.1f} ms")
    assert max_gap < 0.5 * timing["fit"], "the main thread stalled for the whole chunk: GIL held?"
    assert iterations > 1000


def _builds():
    """Every kernel build this CPU runs: the portable one, and the vector ones it allows."""
    found = [("baseline", _kernels)]
    for name, cpu_has in (("avx2", _kernels.cpu_has_avx2_fma), ("avx512", _kernels.cpu_has_avx512),
                          ("neon", _kernels.cpu_has_neon)):
        if cpu_has():
            try:
                found.append((name, importlib.import_module(f"cnn_ext._kernels_{name}")))
            except ImportError:
                pass  # a build without it: test_kernel_builds says whether that is allowed
    return found


def _other_thread_runs_during(call):
    """(runs, seconds): how often a second thread got the GIL while ``call()`` ran in this
    thread, and how long the call took.

    The switch interval is raised to 1,000 s first, so this thread never gives the GIL
    away on a timer: the second thread can only run where ``call`` releases the GIL itself
    (a ``with nogil`` block, a blocking call, a NumPy operation on a large array). A call
    that holds the GIL throughout lets it run 0 times, however loaded the machine is; one
    that releases it for most of its time lets it run about as often as a sleep as long.
    """
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.wait(0.0005):  # the wait releases the GIL, the increment needs it
            count[0] += 1

    old = sys.getswitchinterval()
    thread = threading.Thread(target=spin)
    thread.start()
    try:
        sys.setswitchinterval(1000)
        time.sleep(0.05)  # the spinner takes the GIL again under the new interval
        before = count[0]
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
        after = count[0]
    finally:
        sys.setswitchinterval(old)
        stop.set()
        thread.join()
    return after - before, seconds


def test_the_gil_probe_tells_holding_from_releasing():
    # The probe itself: a C call that holds the GIL (sorting a million floats) lets the other
    # thread run 0 times, one that releases it (a sleep) lets it run. So the kernel tests
    # below can fail.
    values = np.random.default_rng(0).random(1_000_000).tolist()
    held, held_time = _other_thread_runs_during(lambda: sorted(values))
    released, _ = _other_thread_runs_during(lambda: time.sleep(held_time))
    print(f"[threads] GIL held {held_time * 1000:.0f} ms: other thread ran {held} times; "
          f"released as long: {released} times")
    assert held == 0
    assert released > 0


@pytest.mark.parametrize("name, build", _builds(), ids=[name for name, _ in _builds()])
def test_every_kernel_releases_the_gil(mnist, name, build):
    """Each compiled entry point, called directly with tens to hundreds of milliseconds of
    work, lets another Python thread run about as often as a sleep of the same length
    does (at least a quarter as often, measured right after): a kernel that held the GIL
    would let it run only in the brief NumPy calls of the argument checks
    (``np.may_share_memory``), a handful of times. The facade's own NumPy calls are left
    out: NumPy releases the GIL for large arrays, which would hide a kernel that held it."""
    (x_train, y_train), (x_test, _) = mnist
    rng = np.random.default_rng(1)
    filters = rng.standard_normal((8, 3, 3)) / 9
    weights = rng.standard_normal((13 * 13 * 8, 10)) / (13 * 13 * 8)
    biases = np.zeros(10)
    n = 3000
    images = np.ascontiguousarray(x_train[:n])
    labels = y_train[:n].astype(np.int64)
    order = np.arange(10 * n, dtype=np.int64) % n  # 30,000 steps: the checks are a sliver
    losses, correct = np.empty(len(order)), np.empty(len(order), dtype=np.uint8)
    probs = np.empty((len(x_test), 10))
    big = rng.random((1000, 1000)) - 0.5
    conv_out = np.zeros((998, 998, 8))  # written by conv3x3_forward below
    grad = rng.standard_normal((998, 998, 8))
    d_conv = np.empty((998, 998, 8))
    pooled = np.empty((499, 499, 8))
    x_long = rng.random(1_000_000)
    w_long = rng.standard_normal((1_000_000, 10))
    totals, out, d_in = np.empty(10), np.empty(10), np.empty(1_000_000)
    d_out = rng.standard_normal(10)
    calls = {
        "train_steps": lambda: build.train_steps(images, labels, order, filters, weights, biases,
                                                 0.005, losses, correct),
        "predict_proba": lambda: build.predict_proba(x_test, filters, weights, biases, probs, 1),
        "conv3x3_forward": lambda: build.conv3x3_forward(big, filters, conv_out),
        "conv3x3_backprop": lambda: build.conv3x3_backprop(big, grad, filters.copy(), 0.0),
        "maxpool2_forward": lambda: [build.maxpool2_forward(conv_out, pooled) for _ in range(5)],
        "maxpool2_backprop": lambda: [build.maxpool2_backprop(conv_out, pooled, d_conv) for _ in range(3)],
        "softmax_forward": lambda: [build.softmax_forward(x_long, w_long, biases, totals, out)
                                    for _ in range(3)],
        "softmax_backprop": lambda: [build.softmax_backprop(x_long, w_long, biases.copy(), totals,
                                                            d_out, 0.0, d_in) for _ in range(3)],
    }
    for what, call in calls.items():
        runs, seconds = _other_thread_runs_during(call)
        asleep, _ = _other_thread_runs_during(lambda: time.sleep(seconds))
        print(f"[threads] {name} {what}: {seconds * 1000:.0f} ms; the other thread ran {runs} times "
              f"(during a sleep as long: {asleep})")
        assert runs > 0 and runs >= asleep / 4, f"{name} {what} held the GIL: {runs} runs against {asleep}"


def test_threads_sharing_one_network_do_not_share_scratch_buffers(mnist):
    # Several threads stepping the same Network race on its weights (as any shared model
    # would), but each step must get scratch space of its own: the results stay finite and
    # every step's loss is a real cross-entropy, never the garbage of a half-overwritten buffer.
    (x_train, y_train), _ = mnist
    net = Network(seed=3)
    net.train_step(x_train[0], int(y_train[0]))  # build the compiled state first

    def work(k):
        out = []
        for i in range(400):
            j = (k * 400 + i) % 6000
            out.append(net.train_step(x_train[j], int(y_train[j])))
        return out

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = [r for rs in pool.map(work, range(3)) for r in rs]
    losses = np.array([loss for loss, _ in results])
    assert len(losses) == 1200 and np.all(np.isfinite(losses)) and np.all(losses >= 0)
    assert {hit for _, hit in results} <= {0, 1}
    assert all(np.all(np.isfinite(p)) for p in (net.conv.filters, net.softmax.weights, net.softmax.biases))
