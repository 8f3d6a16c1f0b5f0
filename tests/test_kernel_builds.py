"""Every kernel build this CPU can run, against each other and against stored numbers: the
"fma" family (the AVX2, AVX-512 and arm64 NEON builds) must give the same numbers bit for
bit, in every public result, on every machine: each fma build this machine runs is compared
with the AVX2 build's fingerprints (tests/data/fma_fingerprints.json) and hashes
(bench/callgrind.json), and the portable build with its own hashes.

The AVX-512 build takes eight filters per block where the AVX2 build takes four, and its
compiler has 32 vector registers; each output must still see the AVX2 build's operations in
the AVX2 build's order. Compared here: the layer kernels one by one, on real MNIST digits
(whose blank regions make max-pool ties), on NaN, infinities and huge values, on odd image
shapes and filter counts 1..13; the fused TrainState steps and predict_proba; and, with
each build forced by CNN_EXT_KERNELS in a subprocess, Network.fit, train_step,
predict_proba and trace.

On a CPU with AVX-512, the project's CI (CNN_EXT_CI=1) fails when the AVX-512 build is
missing rather than skipping: it is what such CPUs must run.
"""
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import cnn_ext
from cnn_ext import _dispatch, _kernels


def _load_file(name, path):
    """A helper script of the checkout as a module (the tests import in importlib mode)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fma_fingerprints = _load_file("fma_fingerprints", Path(__file__).with_name("fma_fingerprints.py"))

X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _load(name, cpu_has):
    """(module, None) or (None, why it cannot run here)."""
    if not X86_64:
        return None, f"{name} is an x86-64 build, this is {platform.machine()}"
    if not cpu_has():
        return None, f"this CPU (or OS) cannot run {name}"
    try:
        return importlib.import_module(f"cnn_ext.{name}"), None
    except ImportError as e:
        return None, f"{name} is not built in this installation ({e})"


AVX2, AVX2_WHY = _load("_kernels_avx2", _kernels.cpu_has_avx2_fma)
AVX512, AVX512_WHY = _load("_kernels_avx512", _kernels.cpu_has_avx512)
ARM64 = platform.machine().lower() in ("aarch64", "arm64")
try:
    NEON = importlib.import_module("cnn_ext._kernels_neon") if ARM64 else None
except ImportError:
    NEON = None
# The "fma" builds this machine runs (the portable build is the "tutorial" family)
FMA_BUILDS = [(name, k) for name, k in (("avx2", AVX2), ("avx512", AVX512), ("neon", NEON))
              if k is not None]


def _avx512_required():
    """On a CPU with AVX-512, a GCC/clang build on x86-64 must have the AVX-512 variant."""
    return X86_64 and _kernels.cpu_has_avx512() and _kernels.COMPILER != "msvc"


def _need_pair():
    """(reference, other): the AVX2 build and the AVX-512 build, or skip/fail with the reason."""
    if AVX2 is not None and AVX512 is not None:
        return AVX2, AVX512
    reason = AVX2_WHY if AVX2 is None else AVX512_WHY
    if os.environ.get("CNN_EXT_CI") and _avx512_required():
        pytest.fail(f"{reason}: the project's CI builds and tests it on this AVX-512 CPU")
    reason = f"only one build of the fma family can run here: {reason}"
    print(reason)
    pytest.skip(reason)


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


def assert_bits(a, b, what):
    """Bit for bit, except that a NaN's sign and payload are not compared (the NaN must be
    at the same place): where two NaNs meet in one operation, x86 returns the first source
    operand, and for commutative operations the compiler picks that order per build (with
    32 registers it picks differently). Every number, infinity and signed zero must match."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    same = (bits(a) == bits(b)) | (nan_a & nan_b)
    assert same.all(), f"{what}: {np.count_nonzero(~same)} of {a.size} values differ, first at " \
                       f"{np.unravel_index(np.argmin(same), a.shape)}"


def test_the_avx512_build_runs_where_the_cpu_has_it():
    info = cnn_ext.build_info()
    print({k: info[k] for k in ("kernels", "family", "cpu_has_avx512", "avx512_variant")})
    assert info["family"] == _dispatch.FAMILIES[info["kernels"]]
    if not _avx512_required():
        reason = "this CPU has no AVX-512 (or the build is not GCC/clang on x86-64)"
        print(reason)
        pytest.skip(reason)
    if AVX512 is None:
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail(AVX512_WHY)
        print(AVX512_WHY)
        pytest.skip(AVX512_WHY)
    assert "avx512f" in AVX512.SIMD and "-march=native" not in AVX512.CFLAGS
    assert info["avx512_variant"] == "built"
    forced = os.environ.get("CNN_EXT_KERNELS", "auto").strip().lower() or "auto"
    if forced in ("auto", "avx512"):
        assert info["kernels"] == "_kernels_avx512" and info["family"] == "fma"


def test_this_machine_runs_its_fma_builds():
    """Where GCC or clang built the package: an x86-64 CPU with AVX2 runs the AVX2 build
    (and an AVX-512 CPU the AVX-512 one), an arm64 CPU the NEON build. A missing one is a
    failure, not a skip: it is what such machines must run."""
    info = cnn_ext.build_info()
    print({k: info[k] for k in ("kernels", "family", "avx2_variant", "avx512_variant", "neon_variant")})
    if _kernels.COMPILER == "msvc":
        reason = "an MSVC build runs the portable kernels only (see build_info()['avx2_variant'])"
        print(reason)
        pytest.skip(reason)
    expected = set()
    if X86_64 and _kernels.cpu_has_avx2_fma():
        expected.add("avx2")
    if _avx512_required():
        expected.add("avx512")
    if ARM64:
        expected.add("neon")
    assert {name for name, _ in FMA_BUILDS} == expected, (AVX2_WHY, AVX512_WHY, info["neon_variant"])
    forced = os.environ.get("CNN_EXT_KERNELS", "auto").strip().lower() or "auto"
    if ARM64 and forced in ("auto", "neon"):
        assert info["kernels"] == "_kernels_neon" and info["family"] == "fma" and "neon" in NEON.SIMD


GLIBC = platform.libc_ver()[0] == "glibc"


def _assert_stored(differ, what):
    """No difference from the stored numbers. They were made on glibc, whose exp and log
    the softmax and the loss use; another C library (macOS, musl, Windows) may round those
    in the last bit, which the promise does not cover: there a difference is reported and
    the test skipped, with the count."""
    if differ and not GLIBC:
        reason = (f"{what}: {len(differ)} differ from the numbers stored on glibc; this "
                  f"platform's exp/log ({sys.platform}, {platform.libc_ver()}) may round "
                  f"differently, and the family's numbers are promised on glibc: {differ[:3]}")
        print(reason)
        pytest.skip(reason)
    assert not differ, f"{what}: {len(differ)} differ from the stored numbers: {differ[:8]}"


@pytest.mark.parametrize("name, build", FMA_BUILDS, ids=[name for name, _ in FMA_BUILDS])
def test_fma_build_gives_the_stored_numbers(mnist, name, build):
    """Every "fma" build gives the numbers stored from the x86-64 AVX2 build
    (tests/data/fma_fingerprints.json): all layer kernels, fused steps and inference, on
    real digits, odd shapes, 1..13 filters and huge, infinite and NaN values. This is what
    makes an arm64 run comparable to an x86-64 one, and it catches a change in any build's
    numbers, which comparing two builds of one source on one machine cannot."""
    stored = json.loads(fma_fingerprints.STORED.read_text())
    found = fma_fingerprints.fingerprints(build, mnist)
    assert set(found) == set(stored)
    differ = sorted(case for case in stored if found[case] != stored[case])
    print(f"{name}: {len(stored) - len(differ)} of {len(stored)} cases give the stored numbers")
    _assert_stored(differ, f"{name} against the AVX2 build's fingerprints")


def _bench_callgrind():
    """bench/callgrind.py of the source checkout, as a module (its hashes and their check)."""
    return _load_file("bench_callgrind", Path(__file__).resolve().parents[1] / "bench" / "callgrind.py")


@pytest.mark.parametrize("name", [name for name, _ in FMA_BUILDS] + ["baseline"])
def test_network_hashes_are_the_stored_ones(name):
    """Network.train_step x 1000, fit on 2000 images, predict_proba on 1000 and the
    layer-by-layer step x 1000, with the build forced in a child process: the hashes that
    bench/callgrind.py stores, the AVX2 build's for every fma build and the portable
    build's for the portable build, on x86-64 and arm64 alike (``--check`` does the same
    by hand)."""
    callgrind = _bench_callgrind()
    found = callgrind.hashes(name)
    print(name, found)
    assert found["kernels"] == ("_kernels" if name == "baseline" else f"_kernels_{name}")
    _assert_stored(callgrind.check_hashes({name: found}), f"{name} against the stored hashes")


@pytest.mark.parametrize("special", [None, 2e300, np.inf, -np.inf, np.nan, 1e300])
@pytest.mark.parametrize("shape", fma_fingerprints.SHAPES)
def test_layer_kernels_bit_for_bit(mnist, shape, special):
    ref, other = _need_pair()
    rng = np.random.default_rng(zlib.crc32(repr((shape, special)).encode()))
    h, w = shape
    for nf in fma_fingerprints.FILTERS:
        image = fma_fingerprints.digits(mnist[0][0], h, w, 1, rng)[0]
        filters = fma_fingerprints.filters_with(nf, rng, special)
        outs = [k.conv3x3_forward(image, filters) for k in (ref, other)]
        assert_bits(*outs, f"conv3x3_forward {shape} nf={nf}")
        pools = [k.maxpool2_forward(o) for k, o in zip((ref, other), outs)]
        assert_bits(*pools, f"maxpool2_forward {shape} nf={nf}")
        L = pools[0].size
        weights = rng.standard_normal((L, 10)) / L
        biases = rng.standard_normal(10) * 0.1
        if special is not None:
            weights[rng.integers(L), rng.integers(10)] = special
        fwd = [k.softmax_forward(p.ravel(), weights, biases) for k, p in zip((ref, other), pools)]
        for name, a, b in zip(("totals", "probs"), *fwd):
            assert_bits(a, b, f"softmax_forward {name} {shape} nf={nf}")
        grad = np.zeros(10)
        grad[rng.integers(10)] = -1 / max(fwd[0][1].max(), 1e-3)
        results = []
        for k, (totals, _), p, o in zip((ref, other), fwd, pools, outs):
            wk, bk, fk = weights.copy(), biases.copy(), filters.copy()
            d_pool = k.softmax_backprop(p.ravel(), wk, bk, totals, grad, 0.005)
            d_conv = k.maxpool2_backprop(o, d_pool.reshape(p.shape))
            k.conv3x3_backprop(image, d_conv, fk, 0.005)
            results.append((d_pool, wk, bk, d_conv, fk))
        for name, a, b in zip(("d_pool", "weights", "biases", "d_conv", "filters"), *results):
            assert_bits(a, b, f"backprop {name} {shape} nf={nf}")


@pytest.mark.parametrize("special", [None, 2e300, np.inf, np.nan])
@pytest.mark.parametrize("shape, nf", fma_fingerprints.FUSED_CASES)
def test_fused_steps_and_inference_bit_for_bit(mnist, shape, nf, special):
    ref, other = _need_pair()
    images, labels, test = fma_fingerprints.fused_inputs(mnist, shape)
    names = ("step losses", "step hits", "losses", "hits", "filters", "weights", "biases", "probs")
    a = fma_fingerprints.train_and_predict(ref, images, labels, test, nf, special)
    b = fma_fingerprints.train_and_predict(other, images, labels, test, nf, special)
    for name, x, y in zip(names, a, b):
        assert_bits(x, y, f"{name} {shape} nf={nf} special={special}")


# One process per build: Network's public results, hashed.
NETWORK_SCRIPT = r"""
import hashlib, json, numpy as np, cnn_ext
from cnn_ext.datasets import mnist
(x, y), (xt, yt) = mnist.load_data()
digest = {}
def put(name, *arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    digest[name] = h.hexdigest()
net = cnn_ext.Network(seed=0)
history = net.fit(x[:2000], y[:2000], seed=3)
put("fit", net.conv.filters, net.softmax.weights, net.softmax.biases)
steps = [net.train_step(x[2000 + i], y[2000 + i]) for i in range(300)]
put("train_step", np.array(steps, float), net.conv.filters, net.softmax.weights, net.softmax.biases)
put("predict_proba", net.predict_proba(xt[:2000]), net.predict_proba(xt[:500], num_threads=1))
traces = [net.trace(xt[i], yt[i]) for i in range(5)]
put("trace", *[getattr(t, f) for t in traces for f in ("input", "conv", "pool", "pool_mask", "totals",
    "probs", "d_L_d_filters", "d_L_d_weights", "d_L_d_biases", "d_L_d_conv")])
odd = cnn_ext.Network(num_filters=12, image_shape=(28, 29), seed=1)
odd_images = np.zeros((300, 28, 29), np.uint8)
odd_images[:, :, :28] = x[:300]
odd.fit(odd_images, y[:300], seed=0)
put("fit 12 filters 28x29", odd.conv.filters, odd.softmax.weights, odd.predict_proba(odd_images[:50]))
info = cnn_ext.build_info()
print(json.dumps({"kernels": info["kernels"], "family": info["family"], "digest": digest}))
"""


def _network_digests(choice):
    env = dict(os.environ, CNN_EXT_KERNELS=choice)
    run = subprocess.run([sys.executable, "-c", NETWORK_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_network_results_are_one_set_of_numbers_across_the_fma_family():
    """fit, train_step, predict_proba and trace with each build forced: every build of the
    "fma" family this CPU runs gives the same hashes; the portable build is the "tutorial"
    family."""
    _need_pair()
    results = {c: _network_digests(c) for c in ("avx2", "avx512", "baseline")}
    print(json.dumps(results, indent=1))
    assert results["avx512"]["kernels"] == "_kernels_avx512" and results["avx512"]["family"] == "fma"
    assert results["avx2"]["kernels"] == "_kernels_avx2" and results["avx2"]["family"] == "fma"
    assert results["baseline"]["kernels"] == "_kernels" and results["baseline"]["family"] == "tutorial"
    assert results["avx512"]["digest"] == results["avx2"]["digest"]
    # the families differ (separate multiply and add against FMA): the comparison has teeth
    assert results["baseline"]["digest"]["fit"] != results["avx2"]["digest"]["fit"]


@pytest.mark.parametrize("choice, message", [
    ("sse9", "CNN_EXT_KERNELS must be one of auto, avx512, avx2, neon, baseline, got 'sse9'"),
])
def test_an_unknown_kernel_choice_is_a_clear_error(choice, message):
    env = dict(os.environ, CNN_EXT_KERNELS=choice)
    run = subprocess.run([sys.executable, "-c", "import cnn_ext"], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and message in run.stderr, run.stderr


def test_an_unavailable_build_is_a_clear_error():
    """Forcing a build this CPU cannot run (or this installation lacks) names it."""
    missing = [c for c, m in (("avx512", AVX512), ("avx2", AVX2), ("neon", NEON)) if m is None]
    if not missing:
        reason = "every build runs on this CPU: no unavailable choice to test"
        print(reason)
        pytest.skip(reason)
    env = dict(os.environ, CNN_EXT_KERNELS=missing[0])
    run = subprocess.run([sys.executable, "-c", "import cnn_ext"], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and f"CNN_EXT_KERNELS={missing[0]}, but" in run.stderr, run.stderr


def _placed(a, offset):
    """A copy of a whose data starts ``offset`` bytes past a 64-byte boundary."""
    buf = np.empty(a.size + 16)
    start = ((-buf.ctypes.data) % 64 + offset) // 8
    view = buf[start:start + a.size].reshape(a.shape)
    view[...] = a
    assert view.ctypes.data % 64 == offset
    return view


@pytest.mark.parametrize("offset", [0, 8, 16, 32, 48])
def test_train_steps_and_predict_proba_wherever_the_weights_sit(mnist, offset):
    """fit's chunks and batch inference work on a private copy of the weights (64-byte
    aligned; quad-blocked in the x86 builds): the numbers are those of TrainState.step
    and of small batches on the caller's array, and the caller's array holds the result."""
    (x, y), (xt, _) = mnist
    k = _dispatch.kernels
    net = cnn_ext.Network(seed=2)
    f0, w0, b0 = [np.array(p) for p in net._parameters()]
    n = 200  # above the copy's threshold
    order = np.arange(n, dtype=np.int64)[::-1].copy()
    f, w, b = f0.copy(), _placed(w0, offset), b0.copy()
    losses, correct = np.empty(n), np.empty(n, np.uint8)
    k.train_steps(np.ascontiguousarray(x[:n]), y[:n].astype(np.int64), order, f, w, b, 0.005,
                  losses, correct)
    sf, sw, sb = f0.copy(), w0.copy(), b0.copy()
    state = k.TrainState(sf, sw, sb, 0.005, 28, 28)
    steps = [state.step(x[i], int(y[i])) for i in order]
    assert_bits(losses, [s[0] for s in steps], "losses")
    for name, got, want in (("filters", f, sf), ("weights", w, sw), ("biases", b, sb)):
        assert_bits(got, want, name)
    probs, expected = np.empty((300, 10)), np.empty((300, 10))
    k.predict_proba(xt[:300], f, w, b, probs, 1)  # one batch: above the copy's threshold
    for start in range(0, 300, 100):  # batches below it, on the caller's array
        k.predict_proba(xt[start:start + 100], sf, sw, sb, expected[start:start + 100], 1)
    assert_bits(probs, expected, "probabilities")


def _digits(images, shape):
    """Real digits cropped or zero-padded to ``shape``: their flat backgrounds tie in max-pool."""
    out = np.zeros((len(images),) + shape, dtype=np.uint8)
    h, w = min(shape[0], 28), min(shape[1], 28)
    out[:, :h, :w] = images[:, :h, :w]
    return out


def test_chunks_and_batches_block_the_weights_in_the_x86_vector_builds():
    kernels = _dispatch.kernels
    x86_vector = cnn_ext.build_info()["kernels"] in ("_kernels_avx2", "_kernels_avx512")
    assert kernels.dense_layout(28, 28, 8, 10) == ("blocked" if x86_vector else "row-major")
    assert kernels.dense_layout(9, 12, 16, 10) == ("blocked" if x86_vector else "row-major")
    for h, w, nf, nodes in ((28, 28, 5, 10), (28, 28, 8, 9), (28, 28, 3, 2)):
        assert kernels.dense_layout(h, w, nf, nodes) == "row-major"


@pytest.mark.parametrize("shape,num_filters", [((28, 28), 8), ((13, 11), 4), ((28, 29), 12), ((9, 12), 16)])
@pytest.mark.parametrize("poison", ["none", "zeros and subnormals", "unbounded filter", "nan"])
def test_chunks_on_blocked_weights_equal_single_steps(mnist, shape, num_filters, poison):
    # Chunks of at least 64 steps and batches of at least 256 images run the dense layer on
    # a quad-blocked private copy of the weights in the x86 builds (kernels/softmax.h;
    # test_chunks_and_batches_block_the_weights_in_the_x86_vector_builds); single steps
    # and small batches on the caller's row-major array. Both must give the same numbers,
    # bit for bit, and the chunk must hand the weights back row-major. The poisons: signed
    # zeros and a subnormal among the dense weights; a filter weight above 1e300 (the
    # maxima's NaN rule on; it overflows within a few steps); a NaN weight (NaN everywhere,
    # in the same places).
    kernels = _dispatch.kernels
    (x_train, y_train), (x_test, _) = mnist
    images, labels = _digits(x_train[:80], shape), y_train[:80].astype(np.int64)
    network = cnn_ext.Network(seed=7, num_filters=num_filters, image_shape=shape)
    weights = network.softmax.weights
    if poison == "zeros and subnormals":
        weights[::7, 3], weights[5::11, 8], weights[6, 1] = 0.0, -0.0, 5e-324
    elif poison == "unbounded filter":
        network.conv.filters[1, 0, 2] = 2e300
    elif poison == "nan":
        weights[5, 3] = np.nan
    chunked = [np.array(a) for a in network._parameters()]
    single = [np.array(a) for a in network._parameters()]
    losses, correct = np.empty(80), np.empty(80, dtype=np.uint8)
    with np.errstate(all="ignore"):
        kernels.train_steps(images, labels, np.arange(80, dtype=np.int64), *chunked, 0.005, losses,
                            correct)
        state = kernels.TrainState(*single, 0.005, *shape)
        steps = [state.step(image, int(label)) for image, label in zip(images, labels)]
    assert_bits(losses, [loss for loss, _ in steps], "losses")
    assert correct.tolist() == [hit for _, hit in steps]
    for name, a, b in zip(("filters", "weights", "biases"), chunked, single):
        assert_bits(a, b, name)
    if poison in ("none", "zeros and subnormals"):  # numbers were compared, not only NaNs
        assert np.isfinite(losses).all() and np.isfinite(chunked[1]).all()
    test = _digits(x_test[:300], shape)
    with np.errstate(all="ignore"):
        batch = network.predict_proba(test, num_threads=1)  # blocked: 300 images
        small = np.concatenate([network.predict_proba(test[k:k + 30], num_threads=1)
                                for k in range(0, 300, 30)])
    assert_bits(batch, small, "probabilities")
    if poison != "nan":
        assert np.isfinite(batch).any()
