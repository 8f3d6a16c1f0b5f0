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

#endif /* CNN_EXT_SIMD_H */
