/* What a kernel build was compiled with, for cnn_ext.build_info(): the compiler, the flags
   (CNN_EXT_CFLAGS, defined by setup.py) and the instruction sets the compiler was allowed
   to use. */
#ifndef CNN_EXT_BUILD_INFO_H
#define CNN_EXT_BUILD_INFO_H

#ifndef CNN_EXT_CFLAGS
#define CNN_EXT_CFLAGS ""
#endif

#if defined(__clang__)
#define CNN_EXT_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define CNN_EXT_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define CNN_EXT_COMPILER "msvc"
#else
#define CNN_EXT_COMPILER "unknown"
#endif

/* space-separated, e.g. " avx2 fma avx sse2" */
static inline const char* cnn_ext_simd(void) {
    return ""
#if defined(__AVX512F__)
        " avx512f"
#endif
#if defined(__AVX512VL__)
        " avx512vl"
#endif
#if defined(__AVX512DQ__)
        " avx512dq"
#endif
#if defined(__AVX2__)
        " avx2"
#endif
#if defined(__FMA__)
        " fma"
#endif
#if defined(__AVX__)
        " avx"
#endif
#if defined(__SSE2__) || defined(_M_X64)
        " sse2"
#endif
#if defined(__ARM_NEON)
        " neon"
#endif
        ;
}

#endif /* CNN_EXT_BUILD_INFO_H */
