# The float64 peak probe of this build (kernels/peak.h): what the core can do at most with
# the instructions this module's kernels use, for the benchmark's fraction of peak.
from time import perf_counter as _perf_counter


cdef extern from "cnn_ext/kernels/peak.h" nogil:
    double cnn_ext_peak_run(long long iterations)
    long long cnn_ext_peak_madds_per_iteration()
    const char* cnn_ext_peak_isa()


cdef double _peak_seconds(long long iterations) except -1.0:
    cdef double sink
    start = _perf_counter()
    with nogil:
        sink = cnn_ext_peak_run(iterations)
    elapsed = _perf_counter() - start
    if sink != sink:  # never true: keeps the result alive
        raise ArithmeticError("peak probe produced NaN")
    return elapsed


def fma_peak(seconds=0.2):
    """Measure this core's float64 multiply-add peak with the instructions of this build.

    Runs independent multiply-add chains (AVX-512 build: 16 chains of 8-wide FMAs; AVX2
    build: 12 of 4-wide FMAs; aarch64: 16 of 2-wide NEON FMAs; other portable builds: 12 of
    2-wide or scalar multiply then add) without the GIL, in repeats of about ``min(seconds / 10, 4 ms)``,
    for about ``seconds`` in all. The best repeat is the peak (other load only slows a repeat).
    Returns a dict: ``gflops`` (best, 1 multiply-add = 2 flops), ``multiply_adds_per_s``,
    ``median_gflops``, ``repeats``, ``seconds``, ``isa`` (what ran) and ``flops_per_iteration``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not (0.001 <= seconds <= 60.0):
        raise ValueError(f"seconds must be between 0.001 and 60, got {seconds!r}")
    cdef long long madds = cnn_ext_peak_madds_per_iteration()
    cdef long long n = 1000
    # Short repeats (at most 4 ms, about a scheduler time slice) so that on a loaded
    # machine some run uninterrupted; calibrate: grow the loop until one takes ~target.
    target = min(seconds / 10.0, 0.004)
    elapsed = _peak_seconds(n)
    while elapsed < target / 2.0:
        n *= 2 if elapsed > target / 16.0 else 8
        elapsed = _peak_seconds(n)
    rates = [2.0 * madds * n / elapsed]
    total = elapsed
    while total < seconds or len(rates) < 3:
        elapsed = _peak_seconds(n)
        total += elapsed
        rates.append(2.0 * madds * n / elapsed)
    rates.sort()
    best = rates[len(rates) - 1]
    return {"gflops": best / 1e9, "multiply_adds_per_s": best / 2.0,
            "median_gflops": rates[len(rates) // 2] / 1e9, "repeats": len(rates),
            "seconds": total, "iterations_per_repeat": n, "flops_per_iteration": 2 * madds,
            "isa": cnn_ext_peak_isa().decode()}
