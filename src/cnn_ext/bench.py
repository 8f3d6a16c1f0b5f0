"""Benchmark suite: cnn_ext against the tutorial's loops, vectorised NumPy, PyTorch and TensorFlow.

Run it as ``python -m cnn_ext.bench`` (or ``python bench/run.py`` from a checkout):

    python -m cnn_ext.bench                  # default: 7 rounds, frameworks if installed
    python -m cnn_ext.bench --quick          # a few seconds of timing, for CI and tests
    python -m cnn_ext.bench --json out.json --plot out.png --full-epoch

Everything runs side by side in one process, on the embedded MNIST, from the same
initial weights (``np.random.seed(seed)`` then the tutorial's draws):

* ``layer``: forward and backward of Conv3x3, MaxPool2 and Softmax, per image, for the
  tutorial's loops (:mod:`cnn_ext_reference`), the vectorised NumPy layers
  (:mod:`cnn_ext_reference.vectorized`) and cnn_ext's layer classes;
* ``train step``: forward + backward + SGD update of all three layers for one image: the
  tutorial's ``train`` function over each of those three sets of layers (six Python calls
  per image), cnn_ext's fused ``Network.train_step``, and PyTorch / TensorFlow (float64,
  plain SGD, batch 1 = the tutorial's step; batch 32 = one minibatch step on the mean loss,
  timed per image), when installed;
* ``epoch``: ``Network.fit`` over the 60,000 training images (``--full-epoch``), or over a
  10,000-image slice with the time extrapolated to 60,000 (the row says which);
* ``inference``: class probabilities for the 10,000 test images with
  ``Network.predict_proba(num_threads=1)`` and ``(num_threads=2)``, the vectorised NumPy
  batch forward, the frameworks' batch forward, and the tutorial's per-image loops.

Method: one warm-up pass per implementation, then ``--rounds`` rounds; within each round
every implementation of a case runs once, in an order rotated from round to round, so a
change of machine load hits all of them alike. A row's time is the median over the rounds
of its time per image; its speed-ups are medians of the per-round ratios (the tutorial's
loops, resp. the vectorised NumPy, over the row, in the same round). The tutorial's loops
take tens of milliseconds per image, so they are timed on only a few images per round
(``--reference-images``), which the ``timed`` column shows.

``rel_error`` is ``max |x - x_ref| / max |x_ref|`` over the outputs, returned gradients and
updated parameters, against the tutorial's loops on the same inputs from the same initial
weights (the maximum over the arrays compared). PyTorch and TensorFlow route a tied
max-pool window's gradient to one maximum only, where the tutorial gives it to every tied
position; their training rows are therefore compared on random-noise images whose pool
windows all have a unique maximum (``rel_error``), and the JSON also gives their error on
MNIST images (``rel_error_mnist``), which is the tie rule's doing.

Output: a fixed-width table on stdout, a JSON file (``--json``, default ``bench.json``)
and, with matplotlib, a bar chart on a log scale (``--plot``).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

SCHEMA = "cnn_ext-bench/1"
#: Columns of the printed table, in order.
COLUMNS = ("section", "case", "implementation", "median/img", "spread", "vs loops", "vs NumPy",
           "rel_error", "timed")

REF = "tutorial loops"
NUMPY = "NumPy vectorised"
LAYERS = "cnn_ext layers"
FUSED = "cnn_ext fused"

LEARN_RATE = 0.005
NUM_FILTERS = 8
NUM_CLASSES = 10

perf_counter = time.perf_counter


# ----------------------------------------------------------------------------- helpers

def rel_error(values, references):
    """max |a - b| / max |b| over pairs of arrays, the maximum over the pairs."""
    worst = 0.0
    for a, b in zip(values, references):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return float("inf")
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        diff = float(np.max(np.abs(a - b))) if b.size else 0.0
        if scale == 0.0:
            err = 0.0 if diff == 0.0 else float("inf")
        else:
            err = diff / scale
        if not np.isfinite(err):
            return float("inf")
        worst = max(worst, err)
    return worst


def layer_set(module, seed, learn_rate=LEARN_RATE, input_len=13 * 13 * NUM_FILTERS):
    """(conv, pool, softmax) of ``module`` with the tutorial's draws after ``np.random.seed(seed)``."""
    np.random.seed(seed)
    conv = module.Conv3x3(NUM_FILTERS, learn_rate=learn_rate)
    pool = module.MaxPool2()
    softmax = module.Softmax(input_len, NUM_CLASSES, learn_rate=learn_rate)
    return conv, pool, softmax


def tutorial_step(layers, image, label):
    """The tutorial's ``train(im, label)``: six layer calls, returns the probabilities."""
    conv, pool, softmax = layers
    out = conv.forward((image / 255) - 0.5)
    out = pool.forward(out)
    out = softmax.forward(out)
    gradient = np.zeros(NUM_CLASSES)
    gradient[label] = -1 / out[label]
    gradient = softmax.backprop(gradient)
    gradient = pool.backprop(gradient)
    conv.backprop(gradient)
    return out


def tutorial_forward(layers, image):
    conv, pool, softmax = layers
    return softmax.forward(pool.forward(conv.forward((image / 255) - 0.5)))


def layer_params(layers):
    conv, _, softmax = layers
    return conv.filters, softmax.weights, softmax.biases


def network_params(network):
    return network.conv.filters, network.softmax.weights, network.softmax.biases


def unique_max_images(count, seed, shape=(28, 28)):
    """Random-noise uint8 images whose 2x2 pool windows (after any conv) have a unique max.

    Noise makes identical 3x3 regions, hence tied windows, vanishingly rare; the check
    is done for the filters of ``seed`` and any image with a tie is drawn again.
    """
    from cnn_ext_reference import vectorized

    conv, pool, _ = layer_set(vectorized, seed)
    rng = np.random.default_rng(seed + 1000)
    images = []
    while len(images) < count:
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        out = conv.forward((image / 255) - 0.5)
        h, w, f = out.shape
        windows = out[:h // 2 * 2, :w // 2 * 2].reshape(h // 2, 2, w // 2, 2, f)
        hits = (windows == windows.max(axis=(1, 3), keepdims=True)).sum(axis=(1, 3))
        if np.all(hits == 1):
            images.append(image)
    return np.array(images)


def format_time(seconds):
    if seconds is None or not np.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = 3 if value < 10 else (1 if value < 100 else 0)
            digits = min(digits, 2) if unit != "s" else digits
            return f"{value:.{digits}f} {unit}"
    return f"{seconds:.3g} s"


def format_ratio(ratio):
    if ratio is None or not np.isfinite(ratio):
        return "-"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def format_error(err):
    if err is None:
        return "-"
    if err == 0:
        return "0"
    return f"{err:.1e}"


class Case:
    """The rows of one benchmark case, timed in interleaved rounds.

    ``add(name, run, images)``: ``run()`` does the work for ``images`` images and returns
    the seconds it took (or None to time it here).
    """

    def __init__(self, section, case):
        self.section, self.case = section, case
        self.entries = []  # [name, run, images, times, extra]

    def add(self, name, run, images, **extra):
        self.entries.append([name, run, images, [], extra])

    def measure(self, rounds, warmup=True):
        if warmup:
            for entry in self.entries:
                self._time(entry)
        for r in range(rounds):
            k = r % len(self.entries)
            for entry in self.entries[k:] + self.entries[:k]:
                entry[3].append(self._time(entry) / entry[2])

    @staticmethod
    def _time(entry):
        start = perf_counter()
        seconds = entry[1]()
        if seconds is None:
            seconds = perf_counter() - start
        return seconds

    def rows(self):
        by_name = {e[0]: e for e in self.entries}
        rows = []
        for name, _, images, times, extra in self.entries:
            row = {"section": self.section, "case": self.case, "implementation": name,
                   "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                   "times_s": times, "images_per_round": images, "rounds": len(times)}
            for key, base in (("speedup_vs_loops", REF), ("speedup_vs_numpy", NUMPY)):
                if base in by_name and by_name[base][3]:
                    base_times = by_name[base][3]
                    row[key] = statistics.median(b / t for b, t in zip(base_times, times))
                else:
                    row[key] = None
            row.update(extra)
            rows.append(row)
        return rows


# ----------------------------------------------------------------------------- sections

def layer_cases(data, cfg):
    """Forward and backward of each layer, per image, for the loops, NumPy and cnn_ext."""
    import cnn_ext
    import cnn_ext_reference
    from cnn_ext_reference import vectorized

    modules = [(REF, cnn_ext_reference), (NUMPY, vectorized), (LAYERS, cnn_ext)]
    images, labels = data["train"]
    n, n_ref, seed = cfg.images, cfg.reference_images, cfg.seed
    count = max(n, n_ref)
    xs = [(images[i % len(images)] / 255) - 0.5 for i in range(count)]
    ys = [int(labels[i % len(labels)]) for i in range(count)]

    # Every layer's input and upstream gradient for each image, from one pass of the
    # NumPy layers (all implementations then see the same arrays).
    conv, pool, softmax = layer_set(vectorized, seed)
    inputs = {"conv": [], "pool": [], "softmax": []}
    grads = {"conv": [], "pool": [], "softmax": []}
    for x, y in zip(xs, ys):
        c = conv.forward(x)
        p = pool.forward(c)
        out = softmax.forward(p)
        g = np.zeros(NUM_CLASSES)
        g[y] = -1 / out[y]
        g_pool = np.array(softmax.backprop(g))
        g_conv = np.array(pool.backprop(g_pool))
        conv.backprop(g_conv)
        inputs["conv"].append(x)
        inputs["pool"].append(np.array(c))
        inputs["softmax"].append(np.array(p))
        grads["softmax"].append(g)
        grads["pool"].append(g_pool)
        grads["conv"].append(g_conv)

    # Correctness: outputs, returned gradients and updated parameters vs the loops.
    checks = {}
    index = {"conv": 0, "pool": 1, "softmax": 2}
    results = {}
    for name, module in modules:
        layers = layer_set(module, seed)
        per_layer = {}
        for layer_name, i in index.items():
            layer = layers[i]
            seq = []
            for k in range(cfg.check_images):
                out = np.array(layer.forward(inputs[layer_name][k]))
                back = layer.backprop(grads[layer_name][k])
                state = [np.array(p) for p in (
                    (layer.filters,) if layer_name == "conv" else
                    (layer.weights, layer.biases) if layer_name == "softmax" else ())]
                seq.append((out, None if back is None else np.array(back), state))
            per_layer[layer_name] = seq
        results[name] = per_layer
    for name, _ in modules:
        for layer_name in index:
            fwd_pairs, bwd_pairs = [], []
            for mine, ref in zip(results[name][layer_name], results[REF][layer_name]):
                fwd_pairs.append((mine[0], ref[0]))
                if ref[1] is not None:
                    bwd_pairs.append((mine[1], ref[1]))
                bwd_pairs.extend(zip(mine[2], ref[2]))
            checks[(name, layer_name, "forward")] = rel_error(*zip(*fwd_pairs))
            checks[(name, layer_name, "backward")] = rel_error(*zip(*bwd_pairs))

    cases = []
    for layer_name in ("conv", "pool", "softmax"):
        title = {"conv": "Conv3x3", "pool": "MaxPool2", "softmax": "Softmax"}[layer_name]
        fwd_case = Case("layer", f"{title} forward")
        bwd_case = Case("layer", f"{title} backward")
        timings = {}
        for name, module in modules:
            layer = layer_set(module, seed)[index[layer_name]]
            count_i = n_ref if name == REF else n
            pairs = list(zip(inputs[layer_name][:count_i], grads[layer_name][:count_i]))
            acc = {"f": 0.0, "b": 0.0}

            def run_pair(layer=layer, pairs=pairs, acc=acc):
                f = b = 0.0
                for x, g in pairs:
                    t0 = perf_counter()
                    layer.forward(x)
                    t1 = perf_counter()
                    layer.backprop(g)
                    t2 = perf_counter()
                    f += t1 - t0
                    b += t2 - t1
                acc["f"], acc["b"] = f, b

            timings[name] = (run_pair, acc, count_i)

        # Forward and backward are timed in the same pass: the backward case reads the
        # seconds the forward case's run recorded.
        for name, (run_pair, acc, count_i) in timings.items():
            def fwd(run_pair=run_pair, acc=acc):
                run_pair()
                return acc["f"]

            def bwd(acc=acc):
                return acc["b"]

            fwd_case.add(name, fwd, count_i, rel_error=checks[(name, layer_name, "forward")])
            bwd_case.add(name, bwd, count_i, rel_error=checks[(name, layer_name, "backward")])
        cases.append((fwd_case, bwd_case))
    return cases


def measure_layer_cases(cases, rounds):
    """Both cases of a layer share each pass: run the forward case's rounds, copying the
    backward seconds of the same pass into the backward case."""
    for fwd_case, bwd_case in cases:
        for entry in fwd_case.entries:  # warm-up
            entry[1]()
        for r in range(rounds):
            k = r % len(fwd_case.entries)
            order = list(range(len(fwd_case.entries)))
            for i in order[k:] + order[:k]:
                f_entry, b_entry = fwd_case.entries[i], bwd_case.entries[i]
                f_entry[3].append(f_entry[1]() / f_entry[2])
                b_entry[3].append(b_entry[1]() / b_entry[2])


def train_case(data, cfg, frameworks):
    """Forward + backward + update of the whole network, per image."""
    import cnn_ext
    import cnn_ext_reference
    from cnn_ext_reference import vectorized

    images, labels = data["train"]
    seed, n, n_ref = cfg.seed, cfg.images, cfg.reference_images
    case = Case("train step", "forward+backward+SGD")
    notes = {}

    # --- correctness, from the same initial weights
    k = cfg.check_images
    ref_layers = layer_set(cnn_ext_reference, seed)
    for i in range(k):
        tutorial_step(ref_layers, images[i], int(labels[i]))
    ref_params = [np.array(p) for p in layer_params(ref_layers)]
    errors = {}
    for name, module in ((NUMPY, vectorized), (LAYERS, cnn_ext)):
        layers = layer_set(module, seed)
        for i in range(k):
            tutorial_step(layers, images[i], int(labels[i]))
        errors[name] = rel_error(layer_params(layers), ref_params)
    network = cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE)
    for i in range(k):
        network.train_step(images[i], int(labels[i]))
    errors[FUSED] = rel_error(network_params(network), ref_params)
    errors[REF] = 0.0

    # --- timed implementations (each its own copy of the same initial weights)
    cursor = {"i": 0}

    def next_images(count):
        start = cursor["i"] % (len(images) - count)
        cursor["i"] += count
        return images[start:start + count], labels[start:start + count]

    for name, module in ((REF, cnn_ext_reference), (NUMPY, vectorized), (LAYERS, cnn_ext)):
        layers = layer_set(module, seed)
        count = n_ref if name == REF else n

        def run(layers=layers, count=count):
            ims, lbs = next_images(count)
            lbs = lbs.tolist()
            start = perf_counter()
            for i in range(count):
                tutorial_step(layers, ims[i], lbs[i])
            return perf_counter() - start

        case.add(name, run, count, rel_error=errors[name])

    fused = cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE)

    def run_fused(count=n):
        ims, lbs = next_images(count)
        lbs = lbs.tolist()
        step = fused.train_step
        start = perf_counter()
        for i in range(count):
            step(ims[i], lbs[i])
        return perf_counter() - start

    case.add(FUSED, run_fused, n, rel_error=errors[FUSED])

    for fw_name, factory in frameworks:
        add_framework_train_rows(case, fw_name, factory, data, cfg, notes)
    return case, notes


def add_framework_train_rows(case, fw_name, factory, data, cfg, notes):
    import cnn_ext
    import cnn_ext_reference

    images, labels = data["train"]
    seed = cfg.seed
    k = cfg.check_images
    noise = unique_max_images(max(k, 32), seed)
    noise_labels = np.arange(len(noise)) % NUM_CLASSES

    # References: k per-sample steps on noise and on MNIST; one minibatch step of 32 on
    # noise (mean of the per-sample gradients at the initial weights).
    ref_noise = layer_set(cnn_ext_reference, seed)
    for i in range(k):
        tutorial_step(ref_noise, noise[i], int(noise_labels[i]))
    ref_mnist = layer_set(cnn_ext_reference, seed)
    for i in range(k):
        tutorial_step(ref_mnist, images[i], int(labels[i]))
    batch = 32
    ref_batch = batch_reference(seed, noise[:batch], noise_labels[:batch])

    for size in (1, batch):
        model = factory(cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE))
        if size == 1:
            check = factory(cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE))
            x, y = check.prepare(noise[:k], noise_labels[:k])
            for i in range(k):
                check.train_step(x[i:i + 1], y[i:i + 1])
            err = rel_error(check.parameters(), layer_params(ref_noise))
            check = factory(cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE))
            x, y = check.prepare(images[:k], labels[:k])
            for i in range(k):
                check.train_step(x[i:i + 1], y[i:i + 1])
            err_mnist = rel_error(check.parameters(), layer_params(ref_mnist))
        else:
            check = factory(cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE))
            x, y = check.prepare(noise[:batch], noise_labels[:batch])
            check.train_step(x, y)
            err = rel_error(check.parameters(), ref_batch)
            err_mnist = None
        count = max(size, (cfg.framework_images // size) * size)
        x_all, y_all = model.prepare(images[:count], labels[:count])
        batches = [(x_all[i:i + size], y_all[i:i + size]) for i in range(0, count, size)]

        def run(model=model, batches=batches):
            step = model.train_step
            start = perf_counter()
            for x, y in batches:
                step(x, y)
            return perf_counter() - start

        name = f"{fw_name} batch {size}"
        extra = {"rel_error": err, "rel_error_mnist": err_mnist,
                 "rel_error_inputs": "random-noise images with unique-max pool windows"}
        if size > 1:
            extra["note"] = "one SGD step on the mean loss of 32 images, time per image"
        case.add(name, run, count, **extra)
    notes[fw_name] = ("rel_error on random-noise images whose pool windows have a unique max; "
                      "on MNIST the max-pool tie rule differs (rel_error_mnist in the JSON)")


def batch_reference(seed, images, labels):
    """Parameters after one SGD step on the mean loss of a batch, with the tutorial's loops."""
    import cnn_ext_reference

    layers = layer_set(cnn_ext_reference, seed, learn_rate=LEARN_RATE / len(images))
    initial = [np.array(p) for p in layer_params(layers)]
    total = [np.zeros_like(p) for p in initial]
    for image, label in zip(images, labels):
        conv, _, softmax = layers
        conv.filters[...] = initial[0]
        softmax.weights[...] = initial[1]
        softmax.biases[...] = initial[2]
        tutorial_step(layers, image, int(label))
        for t, p, p0 in zip(total, layer_params(layers), initial):
            t += p - p0
    return [p0 + t for p0, t in zip(initial, total)]


def epoch_row(data, cfg, train_rows):
    import cnn_ext
    import cnn_ext_reference

    images, labels = data["train"]
    count = len(images) if cfg.full_epoch else min(cfg.epoch_images, len(images))
    ims, lbs = images[:count], labels[:count]
    # correctness: fit without shuffling on the first images = that many tutorial steps
    k = cfg.check_images
    ref = layer_set(cnn_ext_reference, cfg.seed)
    for i in range(k):
        tutorial_step(ref, images[i], int(labels[i]))
    check = cnn_ext.Network(seed=cfg.seed, learn_rate=LEARN_RATE)
    check.fit(images[:k], labels[:k], shuffle=False)
    err = rel_error(network_params(check), layer_params(ref))

    times = []
    rounds = cfg.epoch_rounds
    warm = cnn_ext.Network(seed=cfg.seed, learn_rate=LEARN_RATE)
    warm.fit(ims[:500], lbs[:500])
    for _ in range(rounds):
        network = cnn_ext.Network(seed=cfg.seed, learn_rate=LEARN_RATE)
        start = perf_counter()
        network.fit(ims, lbs, epochs=1, seed=0)
        times.append((perf_counter() - start) / count)
    median = statistics.median(times)
    by_name = {r["implementation"]: r for r in train_rows}
    full = count == len(images)
    row = {"section": "epoch", "case": "Network.fit, 60k images" if full else
           f"Network.fit, {count} images x{len(images) / count:g}",
           "implementation": FUSED, "median_s": median, "min_s": min(times), "max_s": max(times),
           "times_s": times, "images_per_round": count, "rounds": rounds,
           "speedup_vs_loops": by_name[REF]["median_s"] / median if REF in by_name else None,
           "speedup_vs_numpy": by_name[NUMPY]["median_s"] / median if NUMPY in by_name else None,
           "rel_error": err, "full_epoch": full,
           "epoch_s": median * len(images),
           "note": ("measured over the full 60,000-image epoch" if full else
                    f"measured on {count} images, epoch time extrapolated to {len(images)}"),
           "speedups_from": "medians of the train-step rows (loops, NumPy) over this row"}
    return row


def inference_case(data, cfg, frameworks):
    import cnn_ext
    import cnn_ext_reference
    from cnn_ext_reference import vectorized

    images, _ = data["test"]
    n = len(images) if cfg.inference_images is None else min(cfg.inference_images, len(images))
    images = np.ascontiguousarray(images[:n])
    seed = cfg.seed
    network = cnn_ext.Network(seed=seed, learn_rate=LEARN_RATE)
    filters, weights, biases = (np.array(p) for p in network_params(network))
    ref_layers = layer_set(cnn_ext_reference, seed)
    k = cfg.check_images
    ref_probs = np.array([tutorial_forward(ref_layers, images[i]) for i in range(k)])
    case = Case("inference", f"predict_proba, {n} test images")

    def add(name, fn, count, prepared=None, **extra):
        err = rel_error([fn(images[:k] if prepared is None else prepared[:k])], [ref_probs])
        data_in = images[:count] if prepared is None else prepared[:count]

        def run(fn=fn, data_in=data_in):
            start = perf_counter()
            fn(data_in)
            return perf_counter() - start

        case.add(name, run, count, rel_error=err, **extra)

    n_ref = cfg.reference_images
    def run_ref():
        start = perf_counter()
        for i in range(n_ref):
            tutorial_forward(ref_layers, images[i])
        return perf_counter() - start

    case.add(REF, run_ref, n_ref, rel_error=0.0, note="per-image loops, timed on a few images")
    add(NUMPY, lambda x: vectorized.predict_proba(x, filters, weights, biases), n,
        note="batch forward, 16 images per chunk, BLAS calls kept single-threaded")
    for threads in (1, 2):
        add(f"cnn_ext {threads} thread{'s' if threads > 1 else ''}",
            lambda x, t=threads: network.predict_proba(x, num_threads=t), n)
    for fw_name, factory in frameworks:
        model = factory(network)
        prepared = model.prepare(images)
        add(f"{fw_name} batch", model.predict_proba, n, prepared=prepared,
            note="whole batch in one call")
    return case


# ----------------------------------------------------------------------------- environment

def machine_info():
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_model": None,
            "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation()}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["usable_cpus"] = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if info["cpu_model"] is None and sys.platform == "darwin":
        try:
            import subprocess

            info["cpu_model"] = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                               capture_output=True, text=True).stdout.strip() or None
        except OSError:
            pass
    try:
        load = os.getloadavg()
        info["load_average_at_start"] = [round(v, 2) for v in load]
    except (AttributeError, OSError):
        pass
    return info


def numpy_info():
    info = {"version": np.__version__, "blas": None}
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {key: blas.get(key) for key in ("name", "version", "openblas configuration")
                        if blas.get(key)}
    except Exception:  # older NumPy: no mode="dicts"
        pass
    info["blas_environment"] = {key: value for key, value in os.environ.items()
                                if key.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    return info


def build_information():
    import cnn_ext

    try:
        return cnn_ext.build_info()
    except Exception as exc:  # report, do not fail the benchmark
        return {"error": f"{type(exc).__name__}: {exc}", "version": getattr(cnn_ext, "__version__", None)}


def load_frameworks(cfg, versions):
    """[(name, factory(network) -> model)] for the installed frameworks."""
    from . import _frameworks

    found, messages = [], []
    if cfg.no_frameworks:
        return found, ["frameworks: skipped (--no-frameworks)"]
    threads = cfg.framework_threads
    if versions.get("torch"):
        try:
            import torch  # noqa: F401  (fail here, not half-way through)

            found.append(("PyTorch", lambda net: _frameworks.torch_network(
                net, learn_rate=LEARN_RATE, threads=threads)))
        except Exception as exc:
            messages.append(f"PyTorch: not usable ({type(exc).__name__}: {exc})")
    else:
        messages.append("PyTorch: not installed")
    if versions.get("tensorflow"):
        try:
            tf = _frameworks._import_tensorflow()
            if tf is None:
                raise ImportError("import tensorflow failed")
            found.append(("TensorFlow", lambda net: _frameworks.tensorflow_network(
                net, learn_rate=LEARN_RATE, threads=threads)))
        except Exception as exc:
            messages.append(f"TensorFlow: not usable ({type(exc).__name__}: {exc})")
    else:
        messages.append("TensorFlow: not installed")
    return found, messages


# ----------------------------------------------------------------------------- output

def table(rows):
    cells = [COLUMNS]
    for row in rows:
        spread = ((row["max_s"] - row["min_s"]) / row["median_s"] * 100) if row["median_s"] else None
        timed = f"{row['images_per_round']}x{row['rounds']}"
        cells.append((row["section"], row["case"], row["implementation"], format_time(row["median_s"]),
                      "-" if spread is None else f"{spread:.0f}%",
                      format_ratio(row.get("speedup_vs_loops")), format_ratio(row.get("speedup_vs_numpy")),
                      format_error(row.get("rel_error")), timed))
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(COLUMNS))]
    right = {3, 4, 5, 6, 7, 8}
    lines = []
    previous = None
    for n, c in enumerate(cells):
        if n > 1 and (c[0], c[1]) != previous:
            lines.append("")
        previous = (c[0], c[1]) if n else None
        lines.append("  ".join(str(v).rjust(widths[i]) if i in right else str(v).ljust(widths[i])
                               for i, v in enumerate(c)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(rows, path):
    try:
        import matplotlib
    except ImportError:
        print("cnn_ext.bench: --plot needs matplotlib (pip install 'cnn_ext[plot]'); no plot written",
              file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = []
    for row in rows:
        if row["section"] not in sections:
            sections.append(row["section"])
    groups = [[r for r in rows if r["section"] == s] for s in sections]
    heights = [max(1.2, 0.32 * len(g) + 0.8) for g in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, sum(heights) + 0.8), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    colors = {REF: "#999999", NUMPY: "#4c72b0"}
    for ax, group, section in zip(axes[:, 0], groups, sections):
        cases = {r["case"] for r in group}
        if len(cases) == 1:
            section = f"{section}: {group[0]['case']}"
            labels = [r["implementation"] for r in group]
        else:
            labels = [f"{r['case']}: {r['implementation']}" for r in group]
        values = [r["median_s"] * 1e6 for r in group]
        bar_colors = [colors.get(r["implementation"],
                                 "#dd8452" if r["implementation"].startswith("cnn_ext") else "#55a868")
                      for r in group]
        y = np.arange(len(group))[::-1]
        ax.barh(y, values, color=bar_colors, height=0.7)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xscale("log")
        ax.set_title(section, fontsize=9, loc="left")
        ax.grid(axis="x", which="both", alpha=0.3)
        for yy, v in zip(y, values):
            ax.text(v, yy, " " + format_time(v * 1e-6), va="center", fontsize=6)
    axes[-1, 0].set_xlabel("median time per image (microseconds, log scale)")
    fig.suptitle("cnn_ext benchmark (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="cnn-ext bench",
        description="Time cnn_ext against the tutorial's loops, vectorised NumPy, PyTorch and "
                    "TensorFlow (side by side, same weights), and check they agree.")
    parser.add_argument("--quick", action="store_true",
                        help="few rounds on few images (tests, CI): well under a minute")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds per case (default 7, --quick 3)")
    parser.add_argument("--no-frameworks", action="store_true",
                        help="leave out PyTorch and TensorFlow even if installed")
    parser.add_argument("--json", default="bench.json", metavar="PATH",
                        help="write the results here (default: bench.json in the current folder)")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="write a PNG bar chart (log scale) here; needs matplotlib")
    parser.add_argument("--full-epoch", action="store_true",
                        help="time Network.fit over all 60,000 images (default: a 10,000-image "
                             "slice, extrapolated)")
    parser.add_argument("--images", type=int, default=None,
                        help="images per round for the fast implementations (default 500, --quick 100)")
    parser.add_argument("--reference-images", type=int, default=None,
                        help="images per round for the tutorial's loops (default 4, --quick 2)")
    parser.add_argument("--framework-threads", type=int, default=1,
                        help="threads for PyTorch and TensorFlow (default 1: single-core comparison)")
    parser.add_argument("--seed", type=int, default=0, help="np.random.seed for the initial weights")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.rounds is None:
        args.rounds = 3 if quick else 7
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.images is None:
        args.images = 100 if quick else 500
    if args.reference_images is None:
        args.reference_images = 2 if quick else 4
    if args.images < 1 or args.reference_images < 1:
        parser.error("--images and --reference-images must be at least 1")
    if args.framework_threads < 1:
        parser.error("--framework-threads must be at least 1")
    args.check_images = 2 if quick else 3
    args.framework_images = 128 if quick else 512
    args.epoch_images = 10_000
    args.epoch_rounds = 1 if (quick or args.full_epoch) else 3
    args.inference_images = None  # the 10,000 test images
    args.inference_rounds = 2 if quick else max(3, args.rounds // 2)
    return args


def run(cfg):
    """Run every section; returns the result dict that ``main`` writes as JSON."""
    import cnn_ext
    from . import _frameworks
    from .datasets import mnist

    started = datetime.datetime.now(datetime.timezone.utc)
    # Before the frameworks run: torch.set_num_threads also sets OpenMP's default, which
    # build_info() reports as max_threads.
    build = build_information()
    machine = machine_info()
    versions = _frameworks.framework_versions()
    frameworks, fw_messages = load_frameworks(cfg, versions)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    data = {"train": (x_train, y_train), "test": (x_test, y_test)}
    say = (lambda msg: print(msg, file=sys.stderr, flush=True))
    say(f"cnn_ext.bench: {cfg.rounds} rounds, {cfg.images} images per round "
        f"({cfg.reference_images} for the tutorial's loops)" + (", quick" if cfg.quick else ""))
    for message in fw_messages:
        say(message)

    rows, notes = [], {}
    say("  layers ...")
    cases = layer_cases(data, cfg)
    measure_layer_cases(cases, cfg.rounds)
    for fwd_case, bwd_case in cases:
        rows += fwd_case.rows() + bwd_case.rows()
    say("  train step ...")
    case, fw_notes = train_case(data, cfg, frameworks)
    notes.update(fw_notes)
    case.measure(cfg.rounds)
    train_rows = case.rows()
    rows += train_rows
    say("  epoch ...")
    rows.append(epoch_row(data, cfg, train_rows))
    say("  inference ...")
    case = inference_case(data, cfg, frameworks)
    case.measure(cfg.inference_rounds)
    rows += case.rows()

    notes["method"] = ("median over rounds of the time per image; speed-ups are medians of per-round "
                       "ratios; implementations interleaved within each round")
    notes["reference"] = (f"the tutorial's loops are timed on {cfg.reference_images} images per round "
                          "(tens of ms per image)")
    notes["layer timing"] = ("each layer call is timed on its own with time.perf_counter "
                             "(its ~0.1 us overhead is included)")
    notes["rel_error"] = "max |x - x_ref| / max |x_ref| against the tutorial's loops, same inputs and weights"
    result = {
        "schema": SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "duration_s": None,
        "machine": machine,
        "build_info": build,
        "versions": {"cnn_ext": cnn_ext.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), **versions},
        "numpy": numpy_info(),
        "settings": {"quick": cfg.quick, "rounds": cfg.rounds, "images": cfg.images,
                     "reference_images": cfg.reference_images, "check_images": cfg.check_images,
                     "framework_images": cfg.framework_images, "framework_threads": cfg.framework_threads,
                     "frameworks": [name for name, _ in frameworks], "full_epoch": cfg.full_epoch,
                     "inference_rounds": cfg.inference_rounds, "seed": cfg.seed,
                     "learn_rate": LEARN_RATE, "columns": list(COLUMNS)},
        "notes": notes,
        "framework_messages": fw_messages,
        "rows": rows,
    }
    for row in rows:
        row["images_per_s"] = 1.0 / row["median_s"] if row["median_s"] > 0 else None
    result["duration_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    return result


def header(result):
    m, b = result["machine"], result["build_info"]
    lines = [f"cnn_ext {result['versions']['cnn_ext']} benchmark, {result['date']}",
             f"machine: {m.get('cpu_model') or m.get('processor') or m['machine']}, "
             f"{m.get('usable_cpus') or m['logical_cpus']} usable of {m['logical_cpus']} logical CPUs, "
             f"Python {m['python']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v and k != "python")]
    if "error" in b:
        lines.append(f"build: unavailable ({b['error']})")
    else:
        lines.append("build: " + ", ".join(f"{k}={b.get(k)}" for k in ("compiler", "cflags", "openmp",
                                                                     "max_threads", "simd") if k in b))
    return "\n".join(lines)


def main(argv=None):
    cfg = parse_args(argv)
    result = run(cfg)
    rows = result["rows"]
    print(header(result))
    print()
    print(table(rows))
    print()
    print("median/img: median over rounds of the time per image; spread: (max - min) / median; "
          "vs loops / vs NumPy: median per-round speed-up over the tutorial's loops / the vectorised "
          "NumPy; rel_error: max|x - x_ref| / max|x_ref| vs the loops; timed: images x rounds.")
    for key, note in result["notes"].items():
        if key in ("method", "layer timing", "rel_error"):
            continue
        print(f"note ({key}): {note}")
    epoch = next(r for r in rows if r["section"] == "epoch")
    print(f"epoch: {format_time(epoch['epoch_s'])} for 60,000 images ({epoch['note']})")
    inference = [r for r in rows if r["section"] == "inference" and r["implementation"] != REF]
    if inference:
        print("inference throughput: " + ", ".join(
            f"{r['implementation']} {r['images_per_s']:,.0f} images/s" for r in inference))
    with open(cfg.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=_json_default)
        f.write("\n")
    print(f"wrote {cfg.json}")
    if cfg.plot:
        if plot(rows, cfg.plot):
            print(f"wrote {cfg.plot}")
    return 0


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
