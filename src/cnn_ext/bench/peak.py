"""The hardware limit: this core's measured float64 peak, and each result's arithmetic floor.

The peak is the core's widest float64 FMA: ``fma_peak`` of the widest kernel build this CPU
and OS can run (:mod:`cnn_ext._dispatch`), whichever build the results ran on. The AVX-512
build times 16 independent chains of 8-wide FMAs, the AVX2 build 12 chains of 4-wide FMAs,
the aarch64 build 16 chains of 2-wide NEON FMAs, other portable builds multiply-add chains
of the width they run. Every build's probe is measured and kept (``isa_peaks``). The floor of a result is the tutorial's multiply-adds per image, counted
from the network's actual shapes, at that peak (2 flops per multiply-add; on N threads,
N times the one-core peak):

* inference: conv forward ``(h-2)(w-2) * filters * 9`` + dense forward ``inputs * classes``;
* training step: the same, + dense backward ``2 * inputs * classes`` (the weight gradient
  and the input gradient) + conv backward ``(h-2)(w-2) * filters * 9`` (the filter gradient).

The max-pool, the softmax's exponentials, the bias and SGD updates are left out: they are
comparisons and O(inputs) work, not multiply-adds. The fraction of peak is floor / time.
"""
import importlib


def multiply_adds(network, image_shape=(28, 28), training=True):
    """The tutorial's multiply-adds for one image through ``network`` (a :class:`cnn_ext.Network`)."""
    h, w = image_shape
    num_filters, kh, kw = network.conv.filters.shape
    inputs, classes = network.softmax.weights.shape
    conv = (h - kh + 1) * (w - kw + 1) * num_filters * kh * kw
    dense = inputs * classes
    if not training:
        return conv + dense
    return conv + dense + 2 * dense + conv


def arithmetic(network, image_shape=(28, 28)):
    """{"training": ..., "inference": ...} multiply-adds per image, with the terms counted."""
    h, w = image_shape
    num_filters, kh, kw = network.conv.filters.shape
    inputs, classes = network.softmax.weights.shape
    conv = (h - kh + 1) * (w - kw + 1) * num_filters * kh * kw
    dense = inputs * classes
    return {"training": multiply_adds(network, image_shape, True),
            "inference": multiply_adds(network, image_shape, False),
            "terms": {"conv forward": conv, "dense forward": dense, "dense backward": 2 * dense,
                      "conv backward": conv},
            "counted": (f"conv forward {h - kh + 1}*{w - kw + 1}*{num_filters}*{kh * kw}, dense "
                        f"forward {inputs}*{classes}; training adds dense backward "
                        f"2*{inputs}*{classes} and conv backward {h - kh + 1}*{w - kw + 1}*"
                        f"{num_filters}*{kh * kw}")}


def runnable_builds():
    """[(module name, module)] of every kernel build this CPU and OS can run, widest first."""
    from .._dispatch import BUILDS, baseline

    found = []
    for name, (module, cpu_has, _) in BUILDS.items():
        if cpu_has():
            try:
                found.append((module, importlib.import_module(f"cnn_ext.{module}")))
            except ImportError:  # not built in this installation
                pass
    return found + [("_kernels", baseline)]


def measure_peak(seconds=0.5):
    """The widest build's ``fma_peak(seconds)`` dict, with ``kernels`` (the probe's module),
    ``kernels_in_use`` (the dispatched one) and ``isa_peaks`` (every build's probe:
    {module: {"isa", "gflops", "median_gflops"}}); None if no build has a probe."""
    from .._dispatch import NAME

    isa_peaks, widest = {}, None
    for module, k in runnable_builds():
        probe = getattr(k, "fma_peak", None)
        if probe is None:
            continue
        result = dict(probe(seconds))
        isa_peaks[module] = {key: result[key] for key in ("isa", "gflops", "median_gflops")}
        if widest is None:
            widest = dict(result, kernels=module)
    if widest is None:
        return None
    widest["kernels_in_use"] = NAME
    widest["isa_peaks"] = isa_peaks
    return widest


def threads_of(row, framework_threads=1):
    """Cores a result may use: its thread count, 1 for single-threaded rows."""
    if "threads" in row:
        return row["threads"]
    name = row["implementation"]
    if name.startswith("cnn_ext ") and name.split()[1].isdigit():
        return int(name.split()[1])
    if name.startswith(("PyTorch", "TensorFlow")):
        return framework_threads
    return 1


def add_fractions(rows, peak, madds, framework_threads=1, cpus=None):
    """Give each train-step, epoch and inference row ``floor_s`` and ``fraction_of_peak``.

    ``madds``: :func:`arithmetic`'s dict. The floor of a row on N threads is its
    multiply-adds at N times the one-core peak (N capped at ``cpus``); other rows get None.
    """
    for row in rows:
        kind = {"train step": "training", "epoch": "training", "inference": "inference"}.get(
            row["section"])
        if row["section"] == "scaling":
            kind = "training" if "train_images" in row else "inference"
        if kind is None or peak is None:
            row["multiply_adds_per_image"] = None if kind is None else madds[kind]
            row["floor_s"] = row["fraction_of_peak"] = row["fraction_of_peak_best"] = None
            continue
        threads = threads_of(row, framework_threads)
        if cpus:
            threads = min(threads, cpus)
        flops = 2.0 * madds[kind]
        floor = flops / (peak["gflops"] * 1e9 * threads)
        row["multiply_adds_per_image"] = madds[kind]
        row["peak_threads"] = threads
        row["floor_s"] = floor
        row["fraction_of_peak"] = floor / row["median_s"] if row["median_s"] > 0 else None
        row["fraction_of_peak_best"] = floor / row["min_s"] if row.get("min_s") else None
    return rows
