/* The 4-wide float64 vector type of the AVX2 build, its helpers, and the CPU check.

   The AVX2 build (and any build for a target with AVX2 and FMA) hand-vectorises the loops
   that the auto-vectoriser handles badly, with GCC/clang 4-wide float64 vector extensions
   and a few intrinsics. Every output runs the same instructions, so equal inputs give
   bit-equal outputs. Elsewhere CNN_EXT_V4D is 0, these helpers do not exist, and the plain
   loops of the .pxi files run.

   Why MSVC (and clang-cl, which follows it) gets no AVX2 build: the kernels use the vector
   extensions' operators (+, *, ==, &, lane reads) rather than intrinsics for everything,
   and the AVX2 variant is compiled with -ffp-contract=fast, so that the compiler fuses the
   scalar a*b+c of the Cython code into FMAs; MSVC has neither the extensions nor the same
   contraction rules, so its AVX2 numbers would not be those of the GCC/clang AVX2 build.

   Header-only: every function is static inline. Needs only the C standard headers and
   <immintrin.h>. */
#ifndef CNN_EXT_SIMD_H
#define CNN_EXT_SIMD_H

#include <stddef.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX2__) && defined(__FMA__)
#define CNN_EXT_V4D 1
#include <immintrin.h>

/* may_alias, as __m256d: the kernels read the same buffers as doubles and as masks */
typedef double cnn_ext_v4d __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long cnn_ext_v4i __attribute__((vector_size(32), aligned(8), may_alias));

/* a * b + c with one rounding, spelled out so that no kernel depends on contraction */
static inline cnn_ext_v4d cnn_ext_fma(cnn_ext_v4d a, cnn_ext_v4d b, cnn_ext_v4d c) {
    return (cnn_ext_v4d)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
}

/* c - a * b with one rounding */
static inline cnn_ext_v4d cnn_ext_fnma(cnn_ext_v4d a, cnn_ext_v4d b, cnn_ext_v4d c) {
    return (cnn_ext_v4d)_mm256_fnmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
}

static inline cnn_ext_v4d cnn_ext_bcast(const double* p) {
    return (cnn_ext_v4d)_mm256_broadcast_sd(p);
}

/* mask ? a : b, lane by lane; mask lanes are all ones or all zeros */
static inline cnn_ext_v4d cnn_ext_select(cnn_ext_v4i mask, cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)(((cnn_ext_v4i)a & mask) | ((cnn_ext_v4i)b & ~mask));
}

/* the maximum of m and b, where a NaN in either wins (np.amax's rule) */
static inline cnn_ext_v4d cnn_ext_max_nan(cnn_ext_v4d m, cnn_ext_v4d b) {
    return cnn_ext_select((cnn_ext_v4i)((b > m) | (b != b)), b, m);
}

#else
#define CNN_EXT_V4D 0
#endif

/* The AVX-512 build (F, VL, DQ) adds an 8-wide float64 type: the conv and filter-gradient
   kernels take eight filters per block. Each lane still runs the chain of FMAs of its
   filter in the 4-wide kernels' order, so its numbers are the AVX2 build's bit for bit. */
#if CNN_EXT_V4D && defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define CNN_EXT_V8D 1
typedef double cnn_ext_v8d __attribute__((vector_size(64), aligned(8), may_alias));
typedef long long cnn_ext_v8i __attribute__((vector_size(64), aligned(8), may_alias));

static inline cnn_ext_v8d cnn_ext_fma8(cnn_ext_v8d a, cnn_ext_v8d b, cnn_ext_v8d c) {
    return (cnn_ext_v8d)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
}

static inline cnn_ext_v8d cnn_ext_bcast8(const double* p) {
    return (cnn_ext_v8d)_mm512_set1_pd(*p);
}

static inline cnn_ext_v8d cnn_ext_select8(cnn_ext_v8i mask, cnn_ext_v8d a, cnn_ext_v8d b) {
    return (cnn_ext_v8d)(((cnn_ext_v8i)a & mask) | ((cnn_ext_v8i)b & ~mask));
}

static inline cnn_ext_v8d cnn_ext_max_nan8(cnn_ext_v8d m, cnn_ext_v8d b) {
    return cnn_ext_select8((cnn_ext_v8i)((b > m) | (b != b)), b, m);
}

/* {lo, hi}: two 4-wide vectors as one 8-wide */
static inline cnn_ext_v8d cnn_ext_join8(cnn_ext_v4d lo, cnn_ext_v4d hi) {
    return (cnn_ext_v8d)_mm512_insertf64x4(_mm512_castpd256_pd512((__m256d)lo), (__m256d)hi, 1);
}
#else
#define CNN_EXT_V8D 0
#endif

/* 1 when this CPU (and OS) can run the AVX2 + FMA build: asked of the portable build,
   which runs anywhere, before the AVX2 one is imported. */
static inline int cnn_ext_cpu_has_avx2_fma(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* 1 when this CPU and OS can run the AVX-512 build: CPUID says AVX2, FMA, AVX512F, DQ and
   VL, and XCR0 says the OS saves the YMM state (bits 1-2) and the opmask and ZMM state
   (bits 5-7), without which AVX-512 instructions fault even on a CPU that has them. */
static inline int cnn_ext_cpu_has_avx512(void) {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    unsigned int a, b, c, d, lo, hi;
    if (!cnn_ext_cpu_has_avx2_fma())
        return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 27)))  /* OSXSAVE: xgetbv is available */
        return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6)
        return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    return (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 31));  /* F, DQ, VL */
#else
    return 0;
#endif
}

#endif /* CNN_EXT_SIMD_H */
