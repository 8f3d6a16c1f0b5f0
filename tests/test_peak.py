"""The float64 peak probe of the kernels (``fma_peak``) and the benchmark's arithmetic floor.

The probe is checked against an independent measurement made here: a multiply-add loop
written in this file (other chain count, other loop, the test's own flop count), compiled
by the system C compiler, which times itself in C with clock_gettime. Both are the best of
many repeats of a few milliseconds, interleaved, because on a loaded machine only
uninterrupted repeats show the core's peak and load only ever slows a repeat. A BLAS dgemm
is no check here: it may use wider vectors (AVX-512) than the probe, or, with
OPENBLAS_CORETYPE set, narrower ones.
"""
import ctypes
import importlib
import os
import platform
import shutil
import subprocess
import sys

import pytest

import cnn_ext
from cnn_ext import _kernels
from cnn_ext.bench import peak

X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# 14 independent chains (the probe has 12 or 16): enough for two FMA pipes of latency 4
# (AVX2, AVX-512), for three multiply/add pipes on a mul -> add chain of latency 8 (portable
# x86-64), and for most of four NEON FMA pipes (aarch64, where the probe uses FMAs too).
INDEPENDENT = r"""
#define _POSIX_C_SOURCE 199309L
#include <time.h>
#if defined(WITH_AVX512)
#include <immintrin.h>
typedef __m512d vec;
#define LANES 8
#define SPLAT(v) _mm512_set1_pd(v)
#define STEP(x) x = _mm512_fmadd_pd(x, m, c)
#elif defined(__aarch64__)
#include <arm_neon.h>
typedef float64x2_t vec;
#define LANES 2
#define SPLAT(v) vdupq_n_f64(v)
#define STEP(x) x = vfmaq_f64(c, x, m)
#elif defined(WITH_AVX2)
#include <immintrin.h>
typedef __m256d vec;
#define LANES 4
#define SPLAT(v) _mm256_set1_pd(v)
#define STEP(x) x = _mm256_fmadd_pd(x, m, c)
#else
typedef double vec __attribute__((vector_size(16)));
#define LANES 2
#define SPLAT(v) ((vec){(v), (v)})
#define STEP(x) x = x * m; x = x + c
#endif
#define CHAINS 14
double sink;
/* seconds for n rounds of CHAINS chains; LANES * CHAINS multiply-adds a round */
double timed_loop(long long n) {
    struct timespec t0, t1;
    vec m = SPLAT(0.9999990463256836), c = SPLAT(9.5367431640625e-07);
    vec a = SPLAT(0.3), b = SPLAT(0.31), d = SPLAT(0.32), e = SPLAT(0.33), f = SPLAT(0.34),
        g = SPLAT(0.35), h = SPLAT(0.36), i = SPLAT(0.37), j = SPLAT(0.38), k = SPLAT(0.39),
        l = SPLAT(0.40), o = SPLAT(0.41), p = SPLAT(0.42), q = SPLAT(0.43);
    long long r;
    double lanes[LANES];
    int z;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (r = 0; r < n; r++) {
        STEP(a); STEP(b); STEP(d); STEP(e); STEP(f); STEP(g); STEP(h);
        STEP(i); STEP(j); STEP(k); STEP(l); STEP(o); STEP(p); STEP(q);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    a = a + b + d + e + f + g + h + i + j + k + l + o + p + q;
    __builtin_memcpy(lanes, &a, sizeof lanes);
    sink = 0.0;
    for (z = 0; z < LANES; z++) sink += lanes[z];
    return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}
int madds_per_round(void) { return LANES * CHAINS; }
"""


def _skip_or_fail(reason):
    if os.environ.get("CNN_EXT_CI"):
        pytest.fail(reason + " (the project's CI must have it)")
    print(reason)
    pytest.skip(reason)


ISA_FLAGS = {"portable": [], "avx2": ["-DWITH_AVX2", "-mavx2", "-mfma"],
             "avx512": ["-DWITH_AVX512", "-mavx2", "-mfma", "-mavx512f"]}


def _compile(tmp_path, build):
    cc = os.environ.get("CC", "cc").split()[0]
    if shutil.which(cc) is None or sys.platform == "win32":
        _skip_or_fail(f"no C compiler ({cc}) to build the independent multiply-add loop")
    source = tmp_path / "independent.c"
    source.write_text(INDEPENDENT)
    library = tmp_path / f"independent_{build}.so"
    flags = ["-O2", "-ffp-contract=off", "-shared", "-fPIC"] + ISA_FLAGS[build]
    result = subprocess.run([cc, *flags, str(source), "-o", str(library)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lib = ctypes.CDLL(str(library))
    lib.timed_loop.restype = ctypes.c_double
    lib.timed_loop.argtypes = [ctypes.c_longlong]
    return lib


def _independent_gflops(lib, budget):
    """Best GFLOP/s of repeats of ~2 ms for ``budget`` seconds (2 flops per multiply-add)."""
    madds = lib.madds_per_round()
    n = 1000
    while lib.timed_loop(n) < 0.002:
        n *= 2
    best, spent = 0.0, 0.0
    while spent < budget:
        seconds = lib.timed_loop(n)
        spent += seconds
        best = max(best, 2.0 * madds * n / seconds / 1e9)
    return best


def _modules():
    """[(build, module, its probe's ISA prefix, flops per iteration)] for the builds this CPU runs."""
    aarch64 = platform.machine().lower() in ("aarch64", "arm64")
    found = [("portable", _kernels, "neon fma" if aarch64 else "sse2 mul+add" if X86_64 else "",
              64 if aarch64 else 48 if X86_64 else None)]
    for build, check, isa, flops in (("avx2", "cpu_has_avx2_fma", "avx2 fma", 96),
                                     ("avx512", "cpu_has_avx512", "avx512f fma", 256)):
        if X86_64 and getattr(_kernels, check)():
            try:
                module = importlib.import_module(f"cnn_ext._kernels_{build}")
            except ImportError:
                continue  # tests/test_kernel_builds.py says whether it must be there
            found.append((build, module, isa, flops))
    return found


@pytest.mark.parametrize("build", [m[0] for m in _modules()])
def test_probe_agrees_with_an_independent_loop(build, tmp_path):
    _, module, _, _ = next(m for m in _modules() if m[0] == build)
    lib = _compile(tmp_path, build)
    probe, independent = 0.0, 0.0
    for _ in range(6):  # interleaved, so a busy spell hits both
        probe = max(probe, module.fma_peak(0.1)["gflops"])
        independent = max(independent, _independent_gflops(lib, 0.1))
    print(f"{build}: fma_peak {probe:.1f} GFLOP/s, independent loop {independent:.1f} GFLOP/s")
    assert probe == pytest.approx(independent, rel=0.25), (build, probe, independent)


def test_probe_result_and_isa():
    for build, module, isa, flops in _modules():
        result = module.fma_peak(0.01)
        assert set(result) >= {"gflops", "multiply_adds_per_s", "median_gflops", "repeats", "seconds",
                               "isa", "flops_per_iteration"}
        assert result["gflops"] > 0 and result["multiply_adds_per_s"] == pytest.approx(result["gflops"] * 5e8)
        assert result["median_gflops"] <= result["gflops"] and result["repeats"] >= 3
        assert result["isa"].startswith(isa), (build, result["isa"])
        assert result["flops_per_iteration"] == (flops or result["flops_per_iteration"])


def test_the_bench_measures_the_widest_peak():
    """measure_peak holds results to the widest build's probe and keeps every build's."""
    result = peak.measure_peak(0.05)
    builds = _modules()
    widest = builds[-1] if len(builds) > 1 else builds[0]
    assert result["isa"].startswith(widest[2]), (result["isa"], widest)
    assert result["kernels"] == widest[1].__name__.rsplit(".", 1)[1]
    assert set(result["isa_peaks"]) == {m[1].__name__.rsplit(".", 1)[1] for m in builds}
    assert result["kernels_in_use"] == cnn_ext.build_info()["kernels"]


@pytest.mark.parametrize("bad,error", [("0.2", TypeError), (True, TypeError), (0.0, ValueError),
                                       (-1, ValueError), (1e9, ValueError)])
def test_probe_rejects_bad_seconds(bad, error):
    with pytest.raises(error, match="seconds"):
        _kernels.fma_peak(bad)


def test_arithmetic_floor_counts_the_tutorials_multiply_adds():
    net = cnn_ext.Network(seed=0)
    conv, dense = 26 * 26 * 8 * 9, 1352 * 10
    assert peak.multiply_adds(net, (28, 28), training=False) == conv + dense
    assert peak.multiply_adds(net, (28, 28), training=True) == 2 * conv + 3 * dense == 137_904
    # derived from the shapes, not constants
    small = cnn_ext.Network(num_filters=4, image_shape=(12, 16), seed=0)
    conv, dense = 10 * 14 * 4 * 9, 5 * 7 * 4 * 10
    assert peak.multiply_adds(small, (12, 16), training=True) == 2 * conv + 3 * dense


def test_fraction_of_peak_rows():
    peak_info = {"gflops": 10.0}
    madds = {"training": 1000, "inference": 400}
    rows = [{"section": "train step", "implementation": "cnn_ext fused", "median_s": 1e-6, "min_s": 5e-7},
            {"section": "inference", "implementation": "cnn_ext 2 threads", "median_s": 1e-7, "min_s": 1e-7},
            {"section": "layer", "implementation": "cnn_ext layers", "median_s": 1e-6, "min_s": 1e-6}]
    peak.add_fractions(rows, peak_info, madds, cpus=2)
    assert rows[0]["floor_s"] == pytest.approx(2000 / 10e9)
    assert rows[0]["fraction_of_peak"] == pytest.approx(0.2)
    assert rows[0]["fraction_of_peak_best"] == pytest.approx(0.4)
    assert rows[1]["peak_threads"] == 2 and rows[1]["fraction_of_peak"] == pytest.approx(800 / 20e9 / 1e-7)
    assert rows[2]["fraction_of_peak"] is None
    peak.add_fractions(rows[1:2], peak_info, madds, cpus=1)
    assert rows[1]["peak_threads"] == 1
