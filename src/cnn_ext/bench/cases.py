"""The cases: each layer, the training step, the epoch, inference, and the scaling runs.

Everything starts from the same initial weights (``np.random.seed(seed)`` then the
tutorial's draws) and is checked against the tutorial's loops (:mod:`cnn_ext_reference`)
on the same inputs before it is timed:

* ``layer``: forward and backward of Conv3x3, MaxPool2 and Softmax, per image, for the
  tutorial's loops, the vectorised NumPy layers (:mod:`cnn_ext_reference.vectorized`) and
  cnn_ext's layer classes;
* ``train step``: forward + backward + SGD update of all three layers for one image: the
  tutorial's ``train`` over each of those three sets of layers, cnn_ext's fused
  ``Network.train_step``, and PyTorch / TensorFlow (batch 1 and batch 32) when installed;
  and the English original's ``train`` over its pure-NumPy layers
  (:mod:`cnn_ext_reference.cnn_from_scratch`) and over :mod:`cnn_ext.cnn_from_scratch`,
  the latter checked against the former;
* ``epoch``: ``Network.fit`` over 60,000 images, or over a 10,000-image slice, extrapolated;
* ``inference``: class probabilities for the 10,000 test images;
* scaling: inference images/s against threads, and epoch time against training-set size.
"""
import statistics

import numpy as np

from .timing import NUMPY, REF, Case, perf_counter, rel_error

LAYERS = "cnn_ext layers"
FUSED = "cnn_ext fused"
# The English original's API (backprop(g, learn_rate)): its loops and cnn_ext's façade.
ORIGINAL_REF = "original's loops"
ORIGINAL = "cnn_ext original API"

LEARN_RATE = 0.005
NUM_FILTERS = 8
NUM_CLASSES = 10


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


def original_layer_set(module, seed):
    """(conv, pool, softmax) of the English original's API (no learn rate in the
    constructors, softmax weights / input_len) after ``np.random.seed(seed)``."""
    np.random.seed(seed)
    return module.Conv3x3(NUM_FILTERS), module.MaxPool2(), module.Softmax(13 * 13 * NUM_FILTERS, NUM_CLASSES)


def original_step(layers, image, label, lr=LEARN_RATE):
    """The English original's ``train(im, label, lr)``: the rate goes to each backprop."""
    conv, pool, softmax = layers
    out = softmax.forward(pool.forward(conv.forward((image / 255) - 0.5)))
    gradient = np.zeros(NUM_CLASSES)
    gradient[label] = -1 / out[label]
    gradient = softmax.backprop(gradient, lr)
    gradient = pool.backprop(gradient)
    conv.backprop(gradient, lr)
    return out


def tutorial_forward(layers, image):
    """The tutorial's forward pass of one uint8 image: the (10,) float64 probabilities."""
    conv, pool, softmax = layers
    return softmax.forward(pool.forward(conv.forward((image / 255) - 0.5)))


def layer_params(layers):
    """(filters, weights, biases) of a (conv, pool, softmax) layer set."""
    conv, _, softmax = layers
    return conv.filters, softmax.weights, softmax.biases


def network_params(network):
    """(filters, weights, biases) of a :class:`cnn_ext.Network`."""
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

    def stepper(step, layers, count):
        """A timed run of ``step`` (tutorial_step or original_step) over the next images."""
        def run():
            ims, lbs = next_images(count)
            lbs = lbs.tolist()
            start = perf_counter()
            for i in range(count):
                step(layers, ims[i], lbs[i])
            return perf_counter() - start
        return run

    for name, module in ((REF, cnn_ext_reference), (NUMPY, vectorized), (LAYERS, cnn_ext)):
        count = n_ref if name == REF else n
        case.add(name, stepper(tutorial_step, layer_set(module, seed), count), count,
                 rel_error=errors[name])

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

    # --- the English original's API: its loops, and cnn_ext's façade checked against them
    from cnn_ext import cnn_from_scratch
    from cnn_ext_reference import cnn_from_scratch as original_reference

    original_layers = {}
    for name, module in ((ORIGINAL_REF, original_reference), (ORIGINAL, cnn_from_scratch)):
        layers = original_layer_set(module, seed)
        for i in range(k):
            original_step(layers, images[i], int(labels[i]))
        original_layers[name] = [np.array(p) for p in layer_params(layers)]
    original_error = rel_error(original_layers[ORIGINAL], original_layers[ORIGINAL_REF])
    for name, module in ((ORIGINAL_REF, original_reference), (ORIGINAL, cnn_from_scratch)):
        count = n_ref if name == ORIGINAL_REF else n
        case.add(name, stepper(original_step, original_layer_set(module, seed), count), count,
                 rel_error=0.0 if name == ORIGINAL_REF else original_error)

    for fw_name, factory in frameworks:
        add_framework_train_rows(case, fw_name, factory, data, cfg, notes)
    return case, notes


def add_framework_train_rows(case, fw_name, factory, data, cfg, notes):
    """Add a framework's batch-1 and batch-32 training rows to ``case``, checked first."""
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
    """The epoch row: ``Network.fit`` timed per image, checked against the loops."""
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
    """Class probabilities of the test images: loops, NumPy, cnn_ext on 1 and 2 threads, frameworks."""
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


def load_frameworks(cfg, versions):
    """[(name, factory(network) -> model)] for the installed frameworks."""
    from . import frameworks as _frameworks

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




def usable_cpus():
    """CPUs this process may run on (affinity), else the logical CPU count."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def inference_scaling_case(data, cfg):
    """``Network.predict_proba`` on the test images with 1..the usable CPUs threads, interleaved."""
    import cnn_ext

    images = np.ascontiguousarray(data["test"][0])
    network = cnn_ext.Network(seed=cfg.seed, learn_rate=LEARN_RATE)
    case = Case("scaling", f"predict_proba, {len(images)} test images")
    for threads in range(1, max(1, usable_cpus()) + 1):
        def run(t=threads):
            start = perf_counter()
            network.predict_proba(images, num_threads=t)
            return perf_counter() - start

        case.add(f"cnn_ext {threads} thread{'s' if threads > 1 else ''}", run, len(images),
                 threads=threads)
    return case


#: Training-set sizes of the epoch-scaling run (the last is the full MNIST training set).
EPOCH_SIZES = (1_000, 3_000, 10_000, 30_000, 60_000)


def epoch_scaling_case(data, cfg, sizes=EPOCH_SIZES):
    """``Network.fit`` for one epoch on the first ``n`` training images, for each size, interleaved."""
    import cnn_ext

    images, labels = data["train"]
    case = Case("scaling", "Network.fit, one epoch")
    for n in sizes:
        n = min(n, len(images))

        def run(n=n):
            network = cnn_ext.Network(seed=cfg.seed, learn_rate=LEARN_RATE)
            start = perf_counter()
            network.fit(images[:n], labels[:n], epochs=1, seed=0)
            return perf_counter() - start

        case.add(f"{n} images", run, n, train_images=n)
    return case
