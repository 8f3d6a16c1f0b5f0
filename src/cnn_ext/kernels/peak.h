/* The float64 arithmetic peak probe: independent multiply-add chains in a C loop, the
   instructions the kernels of this build can use, so that a benchmark can say how close a
   kernel comes to the limit of the core it runs on.

   AVX-512 build (__AVX512F__): 16 independent chains of 8-wide FMAs (_mm512_fmadd_pd), the
   widest float64 arithmetic of x86-64. AVX2 build (__AVX2__ and __FMA__): 12 independent
   chains of 4-wide FMAs (_mm256_fmadd_pd); twelve hide the FMA latency (4-5 cycles) on two
   FMA ports with room to spare. aarch64: 16 chains of 2-wide NEON FMAs (vfmaq_f64), the
   core's widest float64 arithmetic, which the benchmark holds the portable kernels to.
   Other builds: 12 independent chains of a multiply then an add, 2-wide with the GCC/clang
   vector extensions (SSE2 on x86-64), scalar elsewhere; the portable build is compiled with
   -ffp-contract=off, so the multiply and the add stay two instructions, as in the kernels
   of that build.

   Flops are counted honestly: one FMA or one multiply + add is one multiply-add, 2 flops.
   Every chain runs x = x * m + c with m = 1 - 2^-20 and c = 2^-20 (fixed point 1.0), so no
   value overflows or goes subnormal, and the compiler cannot fold the loop (the count is a
   run-time value and the chains' sum is returned).

   Header-only: every function is static inline. Needs only the C standard headers and
   <immintrin.h>. */
#ifndef CNN_EXT_PEAK_H
#define CNN_EXT_PEAK_H

#include <stddef.h>

/* Pins v in time: the loop count is read after the caller's first clock reading, and the
   chains' sum is computed before its second. Without it the compiler may move the whole
   loop (pure arithmetic) past the clock call that follows it (GCC did, in the AVX-512
   build), and the probe times nothing. */
#if defined(__GNUC__) || defined(__clang__)
#define CNN_EXT_PEAK_PIN(v) __asm__ volatile("" : "+m"(v) : : "memory")
#else
#define CNN_EXT_PEAK_PIN(v) ((void)0)
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__) && defined(__FMA__)
#include <immintrin.h>
#define CNN_EXT_PEAK_CHAINS 16
#define CNN_EXT_PEAK_LANES 8
#define CNN_EXT_PEAK_ISA "avx512f fma, 16 chains x 8 lanes"

/* Runs `iterations` rounds of 16 8-wide FMAs; returns the sum of the chains. Sixteen
   chains cover two 512-bit FMA pipes of latency 4 twice over. */
static inline double cnn_ext_peak_run(long long iterations) {
    CNN_EXT_PEAK_PIN(iterations);
    const __m512d m = _mm512_set1_pd(1.0 - 1.0 / 1048576.0);
    const __m512d c = _mm512_set1_pd(1.0 / 1048576.0);
    __m512d x[CNN_EXT_PEAK_CHAINS];
    x[0] = _mm512_set_pd(0.50, 0.51, 0.52, 0.53, 0.54, 0.55, 0.56, 0.57);
    for (int k = 1; k < CNN_EXT_PEAK_CHAINS; k++)
        x[k] = _mm512_add_pd(x[k - 1], c);
    for (long long i = 0; i < iterations; i++) {
        /* unrolled by the compiler: the 16 chains stay in registers (32 zmm) */
        for (int k = 0; k < CNN_EXT_PEAK_CHAINS; k++)
            x[k] = _mm512_fmadd_pd(x[k], m, c);
    }
    __m512d total = x[0];
    for (int k = 1; k < CNN_EXT_PEAK_CHAINS; k++)
        total = _mm512_add_pd(total, x[k]);
    double sum = _mm512_reduce_add_pd(total);
    CNN_EXT_PEAK_PIN(sum);
    return sum;
}

#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define CNN_EXT_PEAK_CHAINS 16
#define CNN_EXT_PEAK_LANES 2
#define CNN_EXT_PEAK_ISA "neon fma, 16 chains x 2 lanes"

/* Runs `iterations` rounds of 16 2-wide FMAs (vfmaq_f64, one rounding: contraction is off
   in this build, the intrinsic is explicit); returns the sum of the chains. Sixteen chains
   cover four FMA pipes of latency 4 (Neoverse V2, Apple cores). */
static inline double cnn_ext_peak_run(long long iterations) {
    CNN_EXT_PEAK_PIN(iterations);
    const float64x2_t m = vdupq_n_f64(1.0 - 1.0 / 1048576.0);
    const float64x2_t c = vdupq_n_f64(1.0 / 1048576.0);
    float64x2_t x[CNN_EXT_PEAK_CHAINS];
    x[0] = vdupq_n_f64(0.5);
    for (int k = 1; k < CNN_EXT_PEAK_CHAINS; k++)
        x[k] = vaddq_f64(x[k - 1], c);
    for (long long i = 0; i < iterations; i++) {
        for (int k = 0; k < CNN_EXT_PEAK_CHAINS; k++)
            x[k] = vfmaq_f64(c, x[k], m);  /* c + x * m */
    }
    float64x2_t total = x[0];
    for (int k = 1; k < CNN_EXT_PEAK_CHAINS; k++)
        total = vaddq_f64(total, x[k]);
    double sum = vgetq_lane_f64(total, 0) + vgetq_lane_f64(total, 1);
    CNN_EXT_PEAK_PIN(sum);
    return sum;
}

#elif (defined(__GNUC__) || defined(__clang__)) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CNN_EXT_PEAK_CHAINS 12
#define CNN_EXT_PEAK_LANES 4
#define CNN_EXT_PEAK_ISA "avx2 fma, 12 chains x 4 lanes"

/* Runs `iterations` rounds of 12 4-wide FMAs; returns the sum of the chains. */
static inline double cnn_ext_peak_run(long long iterations) {
    CNN_EXT_PEAK_PIN(iterations);
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
    double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    CNN_EXT_PEAK_PIN(sum);
    return sum;
}

#else

#define CNN_EXT_PEAK_CHAINS 12
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
    CNN_EXT_PEAK_PIN(iterations);
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
    CNN_EXT_PEAK_PIN(total);
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
