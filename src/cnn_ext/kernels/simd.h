/* The 4-wide float64 vocabulary of the vector builds (AVX2, AVX-512, NEON), and the CPU checks.

   The vector builds hand-vectorise the loops that the auto-vectoriser handles badly. The
   kernels (conv.h, maxpool.h, softmax.h, network.h) are written once, in the helpers
   below: cnn_ext_v4d, a vector of four doubles, with loads, stores, FMAs, masks and a few
   shuffles. Each instruction set defines them in its own section, NumPy's "universal
   intrinsics" on a small scale:
   - x86-64 with AVX2 and FMA (the AVX2 and AVX-512 builds): GCC/clang 4-wide vector
     extensions and AVX intrinsics;
   - aarch64 (the NEON build, CNN_EXT_NEON from setup.py): a pair of 2-wide NEON registers.
   Every helper does per lane what its namesake does on the other ISA, and fused
   multiply-adds round once everywhere, so the builds give the same numbers bit for bit
   (tests/data/fma_fingerprints.json holds them). Every output runs the same instructions,
   so equal inputs give bit-equal outputs. Elsewhere CNN_EXT_V4D is 0, these helpers do
   not exist, and the plain loops of the .pxi files run.

   Why MSVC (and clang-cl, which follows it) gets no vector build: the x86 helpers use the
   vector extensions' operators (+, *, ==, &, lane reads), which MSVC does not have.

   Header-only: every function is static inline. Needs only the C standard headers and
   <immintrin.h> or <arm_neon.h>. */
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

/* The rest of the 4-wide vocabulary the kernels are written in (the NEON build below
   defines the same names): loads and stores at any 8-byte alignment, lanes, arithmetic,
   masks (lanes of all ones or all zeros, stored as long long) and the few shuffles of the
   dense layer. */
static inline cnn_ext_v4d cnn_ext_zero(void) { return (cnn_ext_v4d){0, 0, 0, 0}; }
static inline cnn_ext_v4d cnn_ext_load(const double* p) { return *(const cnn_ext_v4d*)p; }
static inline void cnn_ext_store(double* p, cnn_ext_v4d v) { *(cnn_ext_v4d*)p = v; }
static inline cnn_ext_v4d cnn_ext_set1(double x) { return (cnn_ext_v4d){x, x, x, x}; }
static inline cnn_ext_v4d cnn_ext_setr(double a, double b, double c, double d) {
    return (cnn_ext_v4d){a, b, c, d};
}
static inline double cnn_ext_lane(cnn_ext_v4d a, int i) { return a[i]; }
static inline cnn_ext_v4d cnn_ext_add(cnn_ext_v4d a, cnn_ext_v4d b) { return a + b; }
static inline cnn_ext_v4d cnn_ext_mul(cnn_ext_v4d a, cnn_ext_v4d b) { return a * b; }
static inline cnn_ext_v4d cnn_ext_sub(cnn_ext_v4d a, cnn_ext_v4d b) { return a - b; }
static inline cnn_ext_v4i cnn_ext_load_mask(const long long* p) { return *(const cnn_ext_v4i*)p; }
static inline void cnn_ext_store_mask(long long* p, cnn_ext_v4i m) { *(cnn_ext_v4i*)p = m; }
/* all ones where a == b (NaN equals nothing) */
static inline cnn_ext_v4i cnn_ext_eq(cnn_ext_v4d a, cnn_ext_v4d b) { return (cnn_ext_v4i)(a == b); }
/* a where m is set, +0.0 elsewhere */
static inline cnn_ext_v4d cnn_ext_and_mask(cnn_ext_v4d a, cnn_ext_v4i m) {
    return (cnn_ext_v4d)((cnn_ext_v4i)a & m);
}
/* a where m is clear, +0.0 elsewhere */
static inline cnn_ext_v4d cnn_ext_andnot_mask(cnn_ext_v4i m, cnn_ext_v4d a) {
    return (cnn_ext_v4d)_mm256_andnot_pd((__m256d)m, (__m256d)a);
}
static inline cnn_ext_v4i cnn_ext_or_mask(cnn_ext_v4i a, cnn_ext_v4i b) { return a | b; }
static inline cnn_ext_v4i cnn_ext_mask_none(void) { return (cnn_ext_v4i){0, 0, 0, 0}; }
/* all ones where a or b is NaN */
static inline cnn_ext_v4i cnn_ext_unord(cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4i)_mm256_cmp_pd((__m256d)a, (__m256d)b, _CMP_UNORD_Q);
}
/* m, and all ones where a is NaN: one compare, as an all-ones mask is itself a NaN */
static inline cnn_ext_v4i cnn_ext_or_isnan(cnn_ext_v4i m, cnn_ext_v4d a) {
    return (cnn_ext_v4i)_mm256_cmp_pd((__m256d)m, (__m256d)a, _CMP_UNORD_Q);
}
/* nonzero when any lane of the mask is set */
static inline int cnn_ext_any(cnn_ext_v4i m) { return !_mm256_testz_pd((__m256d)m, (__m256d)m); }

/* mask ? a : b, lane by lane; mask lanes are all ones or all zeros */
static inline cnn_ext_v4d cnn_ext_select(cnn_ext_v4i mask, cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)(((cnn_ext_v4i)a & mask) | ((cnn_ext_v4i)b & ~mask));
}

/* a > b ? a : b, lane by lane: vmaxpd's rule (b when either is NaN, or both are zeros) */
static inline cnn_ext_v4d cnn_ext_max(cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)_mm256_max_pd((__m256d)a, (__m256d)b);
}

/* the maximum of m and b, where a NaN in either wins (np.amax's rule) */
static inline cnn_ext_v4d cnn_ext_max_nan(cnn_ext_v4d m, cnn_ext_v4d b) {
    return cnn_ext_select((cnn_ext_v4i)((b > m) | (b != b)), b, m);
}

/* {a0, a1, b2, b3} */
static inline cnn_ext_v4d cnn_ext_pair(cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)_mm256_blend_pd((__m256d)a, (__m256d)b, 0xC);
}
/* {a0 + a1, b0 + b1, a2 + a3, b2 + b3} */
static inline cnn_ext_v4d cnn_ext_hadd(cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)_mm256_hadd_pd((__m256d)a, (__m256d)b);
}
/* {a0, a1, b0, b1} and {a2, a3, b2, b3} */
static inline cnn_ext_v4d cnn_ext_cat_lo(cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)_mm256_permute2f128_pd((__m256d)a, (__m256d)b, 0x20);
}
static inline cnn_ext_v4d cnn_ext_cat_hi(cnn_ext_v4d a, cnn_ext_v4d b) {
    return (cnn_ext_v4d)_mm256_permute2f128_pd((__m256d)a, (__m256d)b, 0x31);
}
/* {a0, a2, a1, a3} */
static inline cnn_ext_v4d cnn_ext_perm0213(cnn_ext_v4d a) {
    return (cnn_ext_v4d)_mm256_permute4x64_pd((__m256d)a, 0xD8);
}
/* four bytes at p as doubles, exactly */
static inline cnn_ext_v4d cnn_ext_u8x4(const unsigned char* p) {
    int four;
    __builtin_memcpy(&four, p, sizeof four);
    return (cnn_ext_v4d)_mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)));
}

#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__) && defined(CNN_EXT_NEON)
/* The NEON build (aarch64; setup.py defines CNN_EXT_NEON for it): the same 4-wide
   vocabulary over pairs of 2-wide float64 registers. NEON's fused multiply-add rounds
   once, like x86's FMA, and every helper does per lane what its x86 namesake does, so
   the kernels written in these names give the AVX2 build's numbers bit for bit.
   A struct, not a 32-byte vector-extension type: GCC lowers 32-byte vectors on aarch64
   through the stack as soon as a compare or a bit operation meets them. */
#define CNN_EXT_V4D 1
#include <arm_neon.h>

typedef struct { float64x2_t lo, hi; } cnn_ext_v4d;
typedef struct { uint64x2_t lo, hi; } cnn_ext_v4i;

static inline cnn_ext_v4d cnn_ext_v4(float64x2_t lo, float64x2_t hi) {
    cnn_ext_v4d r = {lo, hi};
    return r;
}
static inline cnn_ext_v4i cnn_ext_m4(uint64x2_t lo, uint64x2_t hi) {
    cnn_ext_v4i r = {lo, hi};
    return r;
}
static inline cnn_ext_v4d cnn_ext_fma(cnn_ext_v4d a, cnn_ext_v4d b, cnn_ext_v4d c) {
    return cnn_ext_v4(vfmaq_f64(c.lo, a.lo, b.lo), vfmaq_f64(c.hi, a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_fnma(cnn_ext_v4d a, cnn_ext_v4d b, cnn_ext_v4d c) {
    return cnn_ext_v4(vfmsq_f64(c.lo, a.lo, b.lo), vfmsq_f64(c.hi, a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_bcast(const double* p) {
    float64x2_t v = vld1q_dup_f64(p);
    return cnn_ext_v4(v, v);
}
static inline cnn_ext_v4d cnn_ext_zero(void) {
    return cnn_ext_v4(vdupq_n_f64(0.0), vdupq_n_f64(0.0));
}
static inline cnn_ext_v4d cnn_ext_load(const double* p) {
    return cnn_ext_v4(vld1q_f64(p), vld1q_f64(p + 2));
}
static inline void cnn_ext_store(double* p, cnn_ext_v4d v) {
    vst1q_f64(p, v.lo);
    vst1q_f64(p + 2, v.hi);
}
static inline cnn_ext_v4d cnn_ext_set1(double x) {
    return cnn_ext_v4(vdupq_n_f64(x), vdupq_n_f64(x));
}
static inline cnn_ext_v4d cnn_ext_setr(double a, double b, double c, double d) {
    return cnn_ext_v4(vsetq_lane_f64(b, vdupq_n_f64(a), 1), vsetq_lane_f64(d, vdupq_n_f64(c), 1));
}
static inline double cnn_ext_lane(cnn_ext_v4d a, int i) {
    return i < 2 ? a.lo[i] : a.hi[i - 2];
}
static inline cnn_ext_v4d cnn_ext_add(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(vaddq_f64(a.lo, b.lo), vaddq_f64(a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_mul(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(vmulq_f64(a.lo, b.lo), vmulq_f64(a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_sub(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(vsubq_f64(a.lo, b.lo), vsubq_f64(a.hi, b.hi));
}
static inline cnn_ext_v4i cnn_ext_load_mask(const long long* p) {
    return cnn_ext_m4(vld1q_u64((const uint64_t*)p), vld1q_u64((const uint64_t*)p + 2));
}
static inline void cnn_ext_store_mask(long long* p, cnn_ext_v4i m) {
    vst1q_u64((uint64_t*)p, m.lo);
    vst1q_u64((uint64_t*)p + 2, m.hi);
}
static inline cnn_ext_v4i cnn_ext_eq(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_m4(vceqq_f64(a.lo, b.lo), vceqq_f64(a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_and_mask(cnn_ext_v4d a, cnn_ext_v4i m) {
    return cnn_ext_v4(vreinterpretq_f64_u64(vandq_u64(vreinterpretq_u64_f64(a.lo), m.lo)),
                      vreinterpretq_f64_u64(vandq_u64(vreinterpretq_u64_f64(a.hi), m.hi)));
}
static inline cnn_ext_v4d cnn_ext_andnot_mask(cnn_ext_v4i m, cnn_ext_v4d a) {
    return cnn_ext_v4(vreinterpretq_f64_u64(vbicq_u64(vreinterpretq_u64_f64(a.lo), m.lo)),
                      vreinterpretq_f64_u64(vbicq_u64(vreinterpretq_u64_f64(a.hi), m.hi)));
}
static inline cnn_ext_v4i cnn_ext_or_mask(cnn_ext_v4i a, cnn_ext_v4i b) {
    return cnn_ext_m4(vorrq_u64(a.lo, b.lo), vorrq_u64(a.hi, b.hi));
}
/* NaN where a value is not equal to itself */
static inline uint64x2_t cnn_ext_isnan2(float64x2_t a) {
    return vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a, a))));
}
static inline cnn_ext_v4i cnn_ext_mask_none(void) {
    return cnn_ext_m4(vdupq_n_u64(0), vdupq_n_u64(0));
}
static inline cnn_ext_v4i cnn_ext_unord(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_m4(vorrq_u64(cnn_ext_isnan2(a.lo), cnn_ext_isnan2(b.lo)),
                      vorrq_u64(cnn_ext_isnan2(a.hi), cnn_ext_isnan2(b.hi)));
}
static inline cnn_ext_v4i cnn_ext_or_isnan(cnn_ext_v4i m, cnn_ext_v4d a) {
    return cnn_ext_m4(vorrq_u64(m.lo, cnn_ext_isnan2(a.lo)), vorrq_u64(m.hi, cnn_ext_isnan2(a.hi)));
}
static inline int cnn_ext_any(cnn_ext_v4i m) {
    return vmaxvq_u32(vreinterpretq_u32_u64(vorrq_u64(m.lo, m.hi))) != 0;
}
static inline cnn_ext_v4d cnn_ext_select(cnn_ext_v4i mask, cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(vbslq_f64(mask.lo, a.lo, b.lo), vbslq_f64(mask.hi, a.hi, b.hi));
}
/* a > b ? a : b, vmaxpd's rule; not NEON's fmax, which orders -0.0 below 0.0 and
   returns a NaN operand */
static inline cnn_ext_v4d cnn_ext_max(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(vbslq_f64(vcgtq_f64(a.lo, b.lo), a.lo, b.lo),
                      vbslq_f64(vcgtq_f64(a.hi, b.hi), a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_max_nan(cnn_ext_v4d m, cnn_ext_v4d b) {
    return cnn_ext_v4(vbslq_f64(vorrq_u64(vcgtq_f64(b.lo, m.lo), cnn_ext_isnan2(b.lo)), b.lo, m.lo),
                      vbslq_f64(vorrq_u64(vcgtq_f64(b.hi, m.hi), cnn_ext_isnan2(b.hi)), b.hi, m.hi));
}
static inline cnn_ext_v4d cnn_ext_pair(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(a.lo, b.hi);
}
static inline cnn_ext_v4d cnn_ext_hadd(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(vpaddq_f64(a.lo, b.lo), vpaddq_f64(a.hi, b.hi));
}
static inline cnn_ext_v4d cnn_ext_cat_lo(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(a.lo, b.lo);
}
static inline cnn_ext_v4d cnn_ext_cat_hi(cnn_ext_v4d a, cnn_ext_v4d b) {
    return cnn_ext_v4(a.hi, b.hi);
}
static inline cnn_ext_v4d cnn_ext_perm0213(cnn_ext_v4d a) {
    return cnn_ext_v4(vzip1q_f64(a.lo, a.hi), vzip2q_f64(a.lo, a.hi));
}
static inline cnn_ext_v4d cnn_ext_u8x4(const unsigned char* p) {
    uint32_t four;
    __builtin_memcpy(&four, p, sizeof four);
    uint16x4_t h = vget_low_u16(vmovl_u8(vcreate_u8(four)));
    uint32x4_t w = vmovl_u16(h);
    return cnn_ext_v4(vcvtq_f64_u64(vmovl_u32(vget_low_u32(w))),
                      vcvtq_f64_u64(vmovl_u32(vget_high_u32(w))));
}

#else
#define CNN_EXT_V4D 0
#endif

/* a * b + c in the scalar code of every build (the .pxi loops, the headers' leftover rows):
   one rounding (C99 fma, one instruction on FMA hardware) in the vector builds, whose
   numbers are the "fma" family's; two in the portable build, the tutorial's. Every build
   is compiled with -ffp-contract=off, so the compiler fuses nothing by itself: which
   products it would fuse is each compiler's own choice (GCC and clang choose differently,
   and GCC's vectoriser unfuses in-order sums), and the family's numbers must not depend
   on the compiler. In the portable build, CNN_EXT_MADD(a, b, c) is a * b + c, which is
   c + a * b and, with a = -r, c - r * b, bit for bit. */
#if CNN_EXT_V4D
#include <math.h>
#define CNN_EXT_MADD(a, b, c) fma((a), (b), (c))
#else
#define CNN_EXT_MADD(a, b, c) ((a) * (b) + (c))
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

/* 1 on every aarch64 CPU: NEON (Advanced SIMD) with float64 FMA is part of the architecture,
   so the NEON build runs wherever an arm64 Python does. */
static inline int cnn_ext_cpu_has_neon(void) {
#if defined(__aarch64__) || defined(_M_ARM64)
    return 1;
#else
    return 0;
#endif
}

#endif /* CNN_EXT_SIMD_H */
