"""Time two or more builds of the compiled kernels against each other, interleaved in one
process: a kernel change's before/after on a machine whose speed drifts.

    python bench/compare_builds.py OLD.so NEW.so [--rounds 15]

Each argument is a kernel module file (``_kernels_avx512.*.so``, ``_kernels_avx2.*.so`` or
``_kernels.*.so``), for instance one copied aside before a change and the freshly built
one. For each build, per round: ``TrainState.step`` on 4,000 MNIST training images (one
step per call, the kernel without ``Network.train_step``'s Python), ``train_steps`` over
4,000 digits in a shuffled order drawn from all 60,000 (one call, what ``Network.fit`` runs
per chunk: the images leave the cache as in an epoch) and ``predict_proba`` of the 10,000
test images on one thread; the rounds alternate the builds. Each build gets
its own 64-byte aligned copies of the same parameters, as a Network allocates them. It
prints medians, the fraction of the first build's FMA peak (``fma_peak``), and the median
of the per-round ratios to the first build, the steadiest figure on a shared machine. The
numbers must agree too: the parameters after the steps and the chunks, and the
probabilities, are compared bit for bit with the first build's.
"""
import argparse
import importlib.machinery
import importlib.util
import statistics
import time

import numpy as np

import cnn_ext
from cnn_ext._aligned import aligned_float64
from cnn_ext.bench.peak import multiply_adds
from cnn_ext.datasets import mnist


def load(path):
    """The kernel module in ``path`` (any file name: a copy kept aside may be renamed),
    loaded beside any other build of it."""
    with open(path, "rb") as f:
        exported = f.read()
    base = next((n for n in ("_kernels_avx512", "_kernels_avx2", "_kernels") if b"PyInit_" + n.encode() in exported), None)
    if base is None:
        raise SystemExit(f"{path} is not a cnn_ext kernel module (no PyInit__kernels*)")
    name = "cnn_ext." + base
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="+", help="kernel module files, the first is the reference")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--images", type=int, default=4000, help="training steps per round")
    args = parser.parse_args()
    builds = [load(p) for p in args.modules]
    (x, y), (x_test, _) = mnist.load_data()
    images, labels = np.ascontiguousarray(x[:args.images]), [int(v) for v in y[:args.images]]
    peak = statistics.median(builds[0].fma_peak(0.2)["gflops"] for _ in range(3))
    order = np.random.default_rng(0).permutation(len(x))[:args.images].astype(np.int64)
    labels64 = y.astype(np.int64)
    losses, correct = np.empty(len(order)), np.empty(len(order), dtype=np.uint8)
    states, chunks, inference, results = [], [], [], {}
    for k in builds:
        # 64-byte aligned copies, as Network's own: a NumPy copy lands 0, 16, 32 or 48 bytes
        # past a boundary, and a misaligned weights array costs a build 6-20% per step, which
        # would be measured instead of the build
        arrays = [aligned_float64(a) for a in cnn_ext.Network(seed=1)._parameters()]
        states.append((k.TrainState(*arrays, 0.005, 28, 28), arrays))
        chunks.append([aligned_float64(a) for a in cnn_ext.Network(seed=1)._parameters()])
        inference.append([aligned_float64(a) for a in cnn_ext.Network(seed=1)._parameters()]
                         + [np.empty((len(x_test), 10))])
    cases = ("step", "train_steps", "inference")
    times = {(b, case): [] for b in range(len(builds)) for case in cases}
    for _ in range(args.rounds):
        for b, k in enumerate(builds):
            step = states[b][0].step
            start = time.perf_counter()
            for i in range(len(images)):
                step(images[i], labels[i])
            times[(b, "step")].append((time.perf_counter() - start) / len(images))
            start = time.perf_counter()
            k.train_steps(x, labels64, order, *chunks[b], 0.005, losses, correct)
            times[(b, "train_steps")].append((time.perf_counter() - start) / len(order))
            f, w, bias, out = inference[b]
            start = time.perf_counter()
            k.predict_proba(x_test, f, w, bias, out, 1)
            times[(b, "inference")].append((time.perf_counter() - start) / len(x_test))
    for b in range(1, len(builds)):
        same = all(np.array_equal(p, q) for p, q in zip(states[0][1] + chunks[0],
                                                        states[b][1] + chunks[b]))
        same_probs = np.array_equal(inference[0][3], inference[b][3])
        results[b] = "bit for bit the same" if same and same_probs else "DIFFERENT numbers"
    network = cnn_ext.Network(seed=1)
    floors = {case: 2 * multiply_adds(network, training=case != "inference") / (peak * 1e9)
              for case in cases}
    print(f"peak {peak:.1f} GFLOP/s (first build's probe); {args.rounds} interleaved rounds")
    for case in cases:
        for b, path in enumerate(args.modules):
            median = statistics.median(times[(b, case)])
            ratio = statistics.median(r / t for r, t in zip(times[(0, case)], times[(b, case)]))
            print(f"{case:11s} {path}: {median * 1e6:7.3f} us, {floors[case] / median:5.1%} of peak, "
                  f"{ratio:.3f}x the first (median per-round ratio)")
    for b, verdict in results.items():
        print(f"{args.modules[b]} against {args.modules[0]}: {verdict}")
    return 0 if all(v.startswith("bit") for v in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
