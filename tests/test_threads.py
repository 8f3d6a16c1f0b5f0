"""Python threads: independent layers and networks in several threads at once give
bit for bit the results of the same work done sequentially, and the compiled kernels
release the GIL (another thread keeps running while one trains)."""
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnn_ext import Conv3x3, MaxPool2, Network, Softmax

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


def _wall_time(work, args):
    """Wall time of ``work(arg)`` for every arg, each in its own thread, started together."""
    barrier = threading.Barrier(len(args))

    def run(arg):
        barrier.wait()
        work(arg)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        list(pool.map(run, args))
    return time.perf_counter() - start


def _hash(rounds, _buffer=bytes(4 * 1024 * 1024)):
    for _ in range(rounds):
        hashlib.sha256(_buffer).digest()  # releases the GIL for large buffers


def test_two_threads_fit_faster_than_twice_one(mnist):
    """Two ``fit`` calls on two networks in two threads vs one ``fit`` alone.

    With the GIL released the pair takes about as long as one (ratio ~1 on two free
    cores); holding it would give ~2. A speed-up needs two free cores, though, and on a
    shared 2-core machine (other builds and test runs) there often are none. So each try
    is bracketed by a control of the same kind -- SHA-256 of a large buffer, which
    releases the GIL in CPython -- and the fit ratio is asserted (< 1.8) only in tries
    where both controls overlapped well (ratio < 1.4); otherwise the figures are printed
    and nothing is asserted, because they would measure the machine's load rather than
    cnn_ext. (test_training_releases_the_gil above proves the GIL release under any load.)
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2:
        pytest.skip(f"this computer gives the tests {cpus} CPU, so the speed-up of predict_proba on several threads cannot be measured")
    n = 4000
    (x_train, y_train), _ = mnist
    images, labels = x_train[:n], y_train[:n]

    def fit(seed):
        Network(seed=seed).fit(images, labels, chunk=n)

    start = time.perf_counter()
    _hash(4)
    rounds = max(4, int(4 * 0.15 / (time.perf_counter() - start)))
    judged = []
    for attempt in range(5):
        control_before = _wall_time(_hash, [rounds] * 2) / _wall_time(_hash, [rounds])
        ratio = _wall_time(fit, [2, 3]) / _wall_time(fit, [1])
        control_after = _wall_time(_hash, [rounds] * 2) / _wall_time(_hash, [rounds])
        free = max(control_before, control_after) < 1.4
        print(f"[threads] try {attempt + 1}: two concurrent fits of {n} images take {ratio:.2f}x "
              f"one fit (1.0 = full overlap, 2.0 = serialised); GIL-free control "
              f"{control_before:.2f}x / {control_after:.2f}x"
              + ("" if free else " -> no two free cores, not judged"))
        if free:
            judged.append(ratio)
            if ratio < 1.8:
                break
    if not judged:
        print("[threads] speed-up not asserted: the machine never had two free cores")
        return
    assert min(judged) < 1.8, f"two threads took {min(judged):.2f}x one thread's time: is the GIL held?"


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
