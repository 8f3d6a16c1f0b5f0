/* The float64 arithmetic peak probe: independent multiply-add chains in a C loop, the
   instructions the kernels of this build can use, so that a benchmark can say how close a
   kernel comes to the limit of the core it runs on.

   AVX2 build (__AVX2__ and __FMA__): 12 independent chains of 4-wide FMAs (_mm256_fmadd_pd).
   Twelve hide the FMA latency (4-5 cycles) on two FMA ports with room to spare.
   Other builds: 12 independent chains of a multiply then an add, 2-wide with the GCC/clang
   vector extensions (SSE2 on x86-64, NEON on aarch64), scalar elsewhere; the portable build
   is compiled with -ffp-contract=off, so the multiply and the add stay two instructions,
   as in the kernels of that build.

   Flops are counted honestly: one FMA or one multiply + add is one multiply-add, 2 flops.
   Every chain runs x = x * m + c with m = 1 - 2^-20 and c = 2^-20 (fixed point 1.0), so no
   value overflows or goes subnormal, and the compiler cannot fold the loop (the count is a
   run-time value and the chains' sum is returned).

   Header-only: every function is static inline. Needs only the C standard headers and
   <immintrin.h>. */
#ifndef CNN_EXT_PEAK_H
#define CNN_EXT_PEAK_H

#include <stddef.h>

#define CNN_EXT_PEAK_CHAINS 12

#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CNN_EXT_PEAK_LANES 4
#define CNN_EXT_PEAK_ISA "avx2 fma, 12 chains x 4 lanes"

/* Runs `iterations` rounds of 12 4-wide FMAs; returns the sum of the chains. */
static inline double cnn_ext_peak_run(long long iterations) {
    const __m256d m = _mm256_set1_pd(1.0 - 1.0 / 1048576.0);
    const __m256d c = _mm256_set1_pd(1.0 / 1048576.0);
    __m256d x0 = _mm256_set_pd(0.50, 0.51, 0.52, 0.53), x1 = _mm256_add_pd(x0, c);
    __m256d x2 = _mm256_add_pd(x1, c), x3 = _mm256_add_pd(x2, c), x4 = _mm256_add_pd(x3, c);
    __m256d x5 = _mm256_add_pd(x4, c), x6 = _mm256_add_pd(x5, c), x7 = _mm256_add_pd(x6, c);
    __m256d x8 = _mm256_add_pd(x7, c), x9 = _mm256_add_pd(x8, c), x10 = _mm256_add_pd(x9, c);
    __m256d x11 = _mm256_add_pd(x10, c);
    long long i;
    double lanes[4];
    for (i = 0; i < iterations; i++) {
        x0 = _mm256_fmadd_pd(x0, m, c);
        x1 = _mm256_fmadd_pd(x1, m, c);
        x2 = _mm256_fmadd_pd(x2, m, c);
        x3 = _mm256_fmadd_pd(x3, m, c);
        x4 = _mm256_fmadd_pd(x4, m, c);
        x5 = _mm256_fmadd_pd(x5, m, c);
        x6 = _mm256_fmadd_pd(x6, m, c);
        x7 = _mm256_fmadd_pd(x7, m, c);
        x8 = _mm256_fmadd_pd(x8, m, c);
        x9 = _mm256_fmadd_pd(x9, m, c);
        x10 = _mm256_fmadd_pd(x10, m, c);
        x11 = _mm256_fmadd_pd(x11, m, c);
    }
    x0 = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(x0, x1), _mm256_add_pd(x2, x3)),
                       _mm256_add_pd(_mm256_add_pd(x4, x5), _mm256_add_pd(x6, x7)));
    x0 = _mm256_add_pd(x0, _mm256_add_pd(_mm256_add_pd(x8, x9), _mm256_add_pd(x10, x11)));
    _mm256_storeu_pd(lanes, x0);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

#else

#if defined(__GNUC__) || defined(__clang__)
#define CNN_EXT_PEAK_LANES 2
typedef double cnn_ext_peak_vec __attribute__((vector_size(16)));
#if defined(__SSE2__)
#define CNN_EXT_PEAK_ISA "sse2 mul+add, 12 chains x 2 lanes"
#elif defined(__aarch64__) || defined(__ARM_NEON)
#define CNN_EXT_PEAK_ISA "neon mul+add, 12 chains x 2 lanes"
#else
#define CNN_EXT_PEAK_ISA "vector extension mul+add, 12 chains x 2 lanes"
#endif
#define CNN_EXT_PEAK_SPLAT(v) {(v), (v)}
#else
#define CNN_EXT_PEAK_LANES 1
typedef double cnn_ext_peak_vec;
#define CNN_EXT_PEAK_ISA "scalar mul+add, 12 chains"
#define CNN_EXT_PEAK_SPLAT(v) (v)
#endif

/* Runs `iterations` rounds of 12 multiplies and 12 adds; returns the sum of the chains. */
static inline double cnn_ext_peak_run(long long iterations) {
    const cnn_ext_peak_vec m = CNN_EXT_PEAK_SPLAT(1.0 - 1.0 / 1048576.0);
    const cnn_ext_peak_vec c = CNN_EXT_PEAK_SPLAT(1.0 / 1048576.0);
    cnn_ext_peak_vec x[CNN_EXT_PEAK_CHAINS];
    cnn_ext_peak_vec t;
    double total = 0.0;
    long long i;
    int k, lane;
    for (k = 0; k < CNN_EXT_PEAK_CHAINS; k++) {
        cnn_ext_peak_vec start = CNN_EXT_PEAK_SPLAT(0.5 + 0.01 * k);
        x[k] = start;
    }
    for (i = 0; i < iterations; i++) {
        /* the chains are independent: the compiler keeps them in registers and may
           interleave them, but cannot merge or reorder the operations of one chain */
        for (k = 0; k < CNN_EXT_PEAK_CHAINS; k++) {
            t = x[k] * m;
            x[k] = t + c;
        }
    }
    for (k = 0; k < CNN_EXT_PEAK_CHAINS; k++) {
        for (lane = 0; lane < CNN_EXT_PEAK_LANES; lane++) {
#if CNN_EXT_PEAK_LANES > 1
            total += x[k][lane];
#else
            total += x[k];
#endif
        }
    }
    return total;
}

#endif

/* Multiply-adds done by one iteration of cnn_ext_peak_run (2 flops each). */
static inline long long cnn_ext_peak_madds_per_iteration(void) {
    return (long long)CNN_EXT_PEAK_CHAINS * CNN_EXT_PEAK_LANES;
}

/* What the probe runs, e.g. "avx2 fma, 12 chains x 4 lanes". */
static inline const char* cnn_ext_peak_isa(void) {
    return CNN_EXT_PEAK_ISA;
}

#endif /* CNN_EXT_PEAK_H */
