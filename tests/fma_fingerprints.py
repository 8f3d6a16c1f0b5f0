"""Fingerprints of the "fma" family's numbers: every layer kernel, the fused training steps
and batch inference, on real MNIST digits (blank borders, max-pool ties), odd shapes,
filter counts 1..13 and huge, infinite and NaN values. One sha256 per case.

``tests/data/fma_fingerprints.json`` holds the AVX2 build's fingerprints, made on x86-64 with
``python tests/fma_fingerprints.py --kernels avx2 --write``; tests/test_kernel_builds.py
checks every "fma" build this machine runs (AVX2, AVX-512, arm64 NEON) against them, so the
promise "one set of numbers" is tested across machines, not only between the builds one
machine has. A NaN's sign and payload are not part of the fingerprint (x86 and arm64 keep
different ones where two NaNs meet, and so may two builds on one CPU); its place is, as is
every other bit, signed zeros included.
"""
import argparse
import hashlib
import importlib
import json
import zlib
from pathlib import Path

import numpy as np

STORED = Path(__file__).resolve().parent / "data" / "fma_fingerprints.json"
SHAPES = [(28, 28), (28, 29), (5, 7), (6, 6), (9, 12), (13, 11)]
SPECIALS = [None, 2e300, np.inf, -np.inf, np.nan, 1e300]
FILTERS = list(range(1, 14))
# MNIST's shape with filter counts of one and two 8-blocks, 4-blocks and remainders; the odd
# shapes with a few of them (a short run)
FUSED_CASES = ([((28, 28), nf) for nf in (8, 4, 12, 16, 13, 1)]
               + [(shape, nf) for shape in ((28, 29), (5, 7)) for nf in (8, 4, 12, 13)])
FUSED_SPECIALS = [None, 2e300, np.inf, np.nan]


def digest(*arrays):
    """sha256 of the arrays' float64 bits, every NaN made one NaN."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.array(a, dtype=np.float64)  # a copy
        a[np.isnan(a)] = np.nan
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def digits(x_train, h, w, n, rng):
    """n normalised MNIST digits cut or padded to (h, w): real images, blank borders, ties."""
    x = x_train[rng.choice(len(x_train), n, replace=False)]
    out = np.zeros((n, h, w), np.uint8)
    out[:, :min(h, 28), :min(w, 28)] = x[:, :min(h, 28), :min(w, 28)]
    return out / 255.0 - 0.5


def filters_with(nf, rng, special=None):
    """Random (nf, 3, 3) filters, one entry replaced by ``special`` if given."""
    f = rng.standard_normal((nf, 3, 3)) / 9
    if special is not None:
        f[rng.integers(nf), rng.integers(3), rng.integers(3)] = special
    return f


def fused_inputs(mnist, shape):
    """(images, labels, test) of a fused case: MNIST digits cut or padded to ``shape``."""
    (x_train, y_train), (x_test, _) = mnist
    rng = np.random.default_rng(7)
    h, w = shape
    n = 300 if shape == (28, 28) else 60
    idx = rng.choice(len(x_train), n, replace=False)
    images = np.zeros((n, h, w), np.uint8)
    images[:, :min(h, 28), :min(w, 28)] = x_train[idx][:, :min(h, 28), :min(w, 28)]
    test = np.zeros((100, h, w), np.uint8)
    test[:, :min(h, 28), :min(w, 28)] = x_test[:100, :min(h, 28), :min(w, 28)]
    return images, y_train[idx].astype(np.int64), test


def train_and_predict(k, images, labels, test, nf, special, rng_seed=11):
    """TrainState.step over the first half of the images, train_steps over the second half
    (reversed), then predict_proba on two threads; returns step losses, step hits, losses,
    hits, filters, weights, biases, probabilities (float64 arrays)."""
    rng = np.random.default_rng(rng_seed)
    h, w = images.shape[1:]
    L = ((h - 2) // 2) * ((w - 2) // 2) * nf
    filters = filters_with(nf, rng, special)
    weights, biases = rng.standard_normal((L, 10)) / L, np.zeros(10)
    state = k.TrainState(filters, weights, biases, 0.005, h, w)
    steps = [state.step(images[i], int(labels[i])) for i in range(len(images) // 2)]
    order = np.arange(len(images) // 2, len(images), dtype=np.int64)[::-1].copy()
    losses, correct = np.empty(len(order)), np.empty(len(order), np.uint8)
    k.train_steps(images, labels, order, filters, weights, biases, 0.005, losses, correct)
    probs = np.empty((len(test), 10))
    k.predict_proba(test, filters, weights, biases, probs, 2)
    return [np.array([s[0] for s in steps]), np.array([s[1] for s in steps], float), losses,
            correct.astype(float), filters, weights, biases, probs]


def layer_fingerprints(k, mnist):
    """Every layer kernel, one forward and one backward per (shape, special, filter count)."""
    x_train = mnist[0][0]
    out = {}
    for shape in SHAPES:
        for special in SPECIALS:
            rng = np.random.default_rng(zlib.crc32(repr((shape, special)).encode()))
            h, w = shape
            for nf in FILTERS:
                image = digits(x_train, h, w, 1, rng)[0]
                filters = filters_with(nf, rng, special)
                conv = k.conv3x3_forward(image, filters)
                pool = k.maxpool2_forward(conv)
                L = pool.size
                weights = rng.standard_normal((L, 10)) / L
                biases = rng.standard_normal(10) * 0.1
                if special is not None:
                    weights[rng.integers(L), rng.integers(10)] = special
                totals, probs = k.softmax_forward(pool.ravel(), weights, biases)
                grad = np.zeros(10)
                grad[rng.integers(10)] = -1 / max(probs.max(), 1e-3)
                d_pool = k.softmax_backprop(pool.ravel(), weights, biases, totals, grad, 0.005)
                d_conv = k.maxpool2_backprop(conv, d_pool.reshape(pool.shape))
                k.conv3x3_backprop(image, d_conv, filters, 0.005)
                out[f"layers {h}x{w} nf={nf} special={special}"] = digest(
                    conv, pool, totals, probs, d_pool, weights, biases, d_conv, filters)
    return out


def fused_fingerprints(k, mnist):
    """TrainState.step, train_steps and predict_proba, per (shape, filter count, special)."""
    out = {}
    for shape, nf in FUSED_CASES:
        images, labels, test = fused_inputs(mnist, shape)
        for special in FUSED_SPECIALS:
            results = train_and_predict(k, images, labels, test, nf, special)
            # the steps' losses and hits as one (n, 2) array, then the rest
            out[f"fused {shape[0]}x{shape[1]} nf={nf} special={special}"] = digest(
                np.stack(results[:2], axis=1), *results[2:])
    return out


def fingerprints(k, mnist):
    return {**layer_fingerprints(k, mnist), **fused_fingerprints(k, mnist)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", default="avx2", help="the build: avx2, avx512, neon or baseline")
    parser.add_argument("--write", action="store_true", help=f"store them in {STORED.name}")
    args = parser.parse_args()
    from cnn_ext.datasets import mnist
    name = "_kernels" if args.kernels == "baseline" else f"_kernels_{args.kernels}"
    k = importlib.import_module(f"cnn_ext.{name}")
    found = fingerprints(k, mnist.load_data())
    if args.write:
        STORED.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"{len(found)} fingerprints of {name} written to {STORED}")
    else:
        stored = json.loads(STORED.read_text())
        differ = sorted(c for c in stored if found.get(c) != stored[c])
        print(f"{name}: {len(stored) - len(differ)} of {len(stored)} cases as stored"
              + (": differ " + ", ".join(differ) if differ else ""))


if __name__ == "__main__":
    main()
