/* Vector kernels of Conv3x3 (valid 3x3 convolution, stride 1) for the vector builds (AVX2,
   AVX-512, NEON), and the filter gradient of a block of four filters for every build.

   Arrays are C-contiguous float64: image (h, w); t, the filters transposed, (9, nf);
   conv output (h-2, w-2, nf); d_L_d_filters (nf, 9). Header-only: static inline. */
#ifndef CNN_EXT_CONV_H
#define CNN_EXT_CONV_H

#include <stddef.h>

#include "simd.h"

/* Vector kernels of the vector builds for a number of filters that is a multiple of 4.

   One 3x3 output is always the same chain of FMAs in tap order,
       acc = 0; acc = fma(x[0,0], f[0,0], acc); acc = fma(x[0,1], f[0,1], acc); ...
   whichever kernel computes it, so identical regions give bit-identical sums (the
   max-pool tie rule) and the fused network gives the numbers of the layer calls.

   The fused kernels walk the 2x2 pooling windows. A window's four outputs read a 4x4
   patch of the image; CNN_EXT_PATCH visits that patch row-major and hands each pixel to
   every (output position p, tap k) it belongs to, so each pixel is broadcast once per
   window and each position still sees its taps in order 0..8, each tap its positions
   in order (0,0), (0,1), (1,0), (1,1). */
#if CNN_EXT_V4D
#define CNN_EXT_PATCH(OP, x, w) CNN_EXT_PATCH_T(OP, x, w, cnn_ext_v4d, cnn_ext_bcast)
/* the same walk for a vector type T whose broadcast is BCAST (8-wide in the AVX-512 build) */
#define CNN_EXT_PATCH_T(OP, x, w, T, BCAST) do { T v; \
    v = BCAST(x);                 OP(0, 0); \
    v = BCAST(x + 1);             OP(0, 1); OP(1, 0); \
    v = BCAST(x + 2);             OP(0, 2); OP(1, 1); \
    v = BCAST(x + 3);             OP(1, 2); \
    v = BCAST(x + w);             OP(0, 3); OP(2, 0); \
    v = BCAST(x + w + 1);         OP(0, 4); OP(1, 3); OP(2, 1); OP(3, 0); \
    v = BCAST(x + w + 2);         OP(0, 5); OP(1, 4); OP(2, 2); OP(3, 1); \
    v = BCAST(x + w + 3);         OP(1, 5); OP(3, 2); \
    v = BCAST(x + 2 * w);         OP(0, 6); OP(2, 3); \
    v = BCAST(x + 2 * w + 1);     OP(0, 7); OP(1, 6); OP(2, 4); OP(3, 3); \
    v = BCAST(x + 2 * w + 2);     OP(0, 8); OP(1, 7); OP(2, 5); OP(3, 4); \
    v = BCAST(x + 2 * w + 3);     OP(1, 8); OP(3, 5); \
    v = BCAST(x + 3 * w);         OP(2, 6); \
    v = BCAST(x + 3 * w + 1);     OP(2, 7); OP(3, 6); \
    v = BCAST(x + 3 * w + 2);     OP(2, 8); OP(3, 7); \
    v = BCAST(x + 3 * w + 3);     OP(3, 8); \
    } while (0)

/* One pooling window of one block of four filters: the window's four conv outputs
   (acc, positions (0,0), (0,1), (1,0), (1,1)) from the 4x4 patch at x, the block's nine
   tap vectors in F. */
static inline __attribute__((always_inline))
void cnn_ext_conv_window4(const double* x, ptrdiff_t w, const cnn_ext_v4d F[9],
                          cnn_ext_v4d acc[4]) {
    for (int p = 0; p < 4; p++)
        acc[p] = cnn_ext_zero();
#define CNN_EXT_CONV_OP(p, k) acc[p] = cnn_ext_fma(v, F[k], acc[p])
    CNN_EXT_PATCH(CNN_EXT_CONV_OP, x, w);
#undef CNN_EXT_CONV_OP
}

/* The window's maximum, NaN-propagating like np.amax. nan_free: the caller knows no
   output is NaN, so a plain maximum (cnn_ext_max: b > m ? b : m, the same rule and the
   same result as cnn_ext_max_nan on numbers, one vmaxpd on x86) takes it. */
static inline __attribute__((always_inline))
cnn_ext_v4d cnn_ext_window_max4(const cnn_ext_v4d acc[4], const int nan_free) {
    if (nan_free)
        return cnn_ext_max(acc[3], cnn_ext_max(acc[2], cnn_ext_max(acc[1], acc[0])));
    return cnn_ext_max_nan(cnn_ext_max_nan(cnn_ext_max_nan(acc[0], acc[1]), acc[2]), acc[3]);
}

/* The masks of the window maxima, (windows, 4 * nf) long long: all ones where a position
   equals its window's maximum, which is where MaxPool2's backprop routes the gradient.
   Within a window, a block of filters [f, f + n) (n = 4, or 8 in the AVX-512 build) keeps
   its four positions together, position p's n lanes at 4 * f + p * n: one block's masks of
   a window are whole cache lines, written by the forward pass and read by the filter
   gradient in the same pass over that block. (With the positions nf apart, each pass over a
   block of four of eight filters wrote and then read half of every line, so the 43 KB of
   an MNIST step's masks crossed between L1 and L2 twice per pass.) Private to a build's
   step: the forward pass writes them, its backward pass reads them. */
static inline __attribute__((always_inline))
long long* cnn_ext_mask_block(const void* mask, ptrdiff_t win, ptrdiff_t nf, ptrdiff_t f) {
    /* not const: the forward pass writes through it (the backward pass only reads) */
    return (long long*)mask + 4 * (win * nf + f);
}

/* A window's masks of a block of four filters at q (cnn_ext_mask_block). NaN equals
   nothing. */
static inline __attribute__((always_inline))
void cnn_ext_window_mask4(const cnn_ext_v4d acc[4], cnn_ext_v4d m, long long* q) {
    for (int p = 0; p < 4; p++)
        cnn_ext_store_mask(q + 4 * p, cnn_ext_eq(acc[p], m));
}

/* The gradient of the window's four positions, d, from the pooled gradient g (the
   block's four filters) where the mask at q is set, 0 elsewhere. */
static inline __attribute__((always_inline))
void cnn_ext_window_grads4(cnn_ext_v4d g, const long long* q, cnn_ext_v4d d[4]) {
    for (int p = 0; p < 4; p++)
        d[p] = cnn_ext_and_mask(g, cnn_ext_load_mask(q + 4 * p));
}

/* The window's share of the block's filter gradient: acc[k] += the patch pixel under
   tap k of position p, times d[p], for each position p in order. */
static inline __attribute__((always_inline))
void cnn_ext_grad_window4(const double* x, ptrdiff_t w, const cnn_ext_v4d d[4],
                          cnn_ext_v4d acc[9]) {
#define CNN_EXT_GRAD_OP(p, k) acc[k] = cnn_ext_fma(v, d[p], acc[k])
    CNN_EXT_PATCH(CNN_EXT_GRAD_OP, x, w);
#undef CNN_EXT_GRAD_OP
}

/* A block's filter gradient, acc[k] lane q for filter f + q, into d_L_d_filters (nf, 9). */
static inline __attribute__((always_inline))
void cnn_ext_store_grad4(const cnn_ext_v4d acc[9], ptrdiff_t f, double* d_L_d_filters) {
    for (int k = 0; k < 9; k++)
        for (int q = 0; q < 4; q++)
            d_L_d_filters[9 * (f + q) + k] = cnn_ext_lane(acc[k], q);
}

#if CNN_EXT_V8D
/* The window helpers above for a block of eight filters (the AVX-512 build): lane q is
   filter f + q, and each lane's operations are those of the 4-wide helpers, in the same
   order, so the numbers are the same bit for bit. */
static inline __attribute__((always_inline))
void cnn_ext_conv_window8(const double* x, ptrdiff_t w, const cnn_ext_v8d F[9],
                          cnn_ext_v8d acc[4]) {
    for (int p = 0; p < 4; p++)
        acc[p] = (cnn_ext_v8d){0, 0, 0, 0, 0, 0, 0, 0};
#define CNN_EXT_CONV_OP(p, k) acc[p] = cnn_ext_fma8(v, F[k], acc[p])
    CNN_EXT_PATCH_T(CNN_EXT_CONV_OP, x, w, cnn_ext_v8d, cnn_ext_bcast8);
#undef CNN_EXT_CONV_OP
}

static inline __attribute__((always_inline))
cnn_ext_v8d cnn_ext_window_max8(const cnn_ext_v8d acc[4], const int nan_free) {
    if (nan_free) {
        __m512d r = _mm512_max_pd((__m512d)acc[1], (__m512d)acc[0]);
        r = _mm512_max_pd((__m512d)acc[2], r);
        return (cnn_ext_v8d)_mm512_max_pd((__m512d)acc[3], r);
    }
    return cnn_ext_max_nan8(cnn_ext_max_nan8(cnn_ext_max_nan8(acc[0], acc[1]), acc[2]), acc[3]);
}

static inline __attribute__((always_inline))
void cnn_ext_window_mask8(const cnn_ext_v8d acc[4], cnn_ext_v8d m, long long* q) {
    for (int p = 0; p < 4; p++)
        *(cnn_ext_v8i*)(q + 8 * p) = (cnn_ext_v8i)(acc[p] == m);
}

static inline __attribute__((always_inline))
void cnn_ext_window_grads8(cnn_ext_v8d g, const long long* q, cnn_ext_v8d d[4]) {
    for (int p = 0; p < 4; p++)
        d[p] = (cnn_ext_v8d)((cnn_ext_v8i)g & *(const cnn_ext_v8i*)(q + 8 * p));
}

static inline __attribute__((always_inline))
void cnn_ext_grad_window8(const double* x, ptrdiff_t w, const cnn_ext_v8d d[4],
                          cnn_ext_v8d acc[9]) {
#define CNN_EXT_GRAD_OP(p, k) acc[k] = cnn_ext_fma8(v, d[p], acc[k])
    CNN_EXT_PATCH_T(CNN_EXT_GRAD_OP, x, w, cnn_ext_v8d, cnn_ext_bcast8);
#undef CNN_EXT_GRAD_OP
}

static inline __attribute__((always_inline))
void cnn_ext_store_grad8(const cnn_ext_v8d acc[9], ptrdiff_t f, double* d_L_d_filters) {
    for (int k = 0; k < 9; k++)
        for (int q = 0; q < 8; q++)
            d_L_d_filters[9 * (f + q) + k] = acc[k][q];
}
#endif

/* Conv3x3 over the pooling windows of its output, with any of three results:
   conv_out (h-2, w-2, nf), the convolution itself (only the positions inside complete
   windows: an odd last row or column is left to the caller); pool ((h-2)/2, (w-2)/2, nf),
   the window maxima in MaxPool2's order, NaN-propagating like np.amax; and mask
   (windows, 4 * nf; cnn_ext_mask_block), all-ones where a position equals its window's
   maximum. Four filters at a time (eight in the AVX-512 build), their nine tap vectors
   in registers. */
static inline __attribute__((always_inline))
void cnn_ext_conv_windows_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                             const double* t, ptrdiff_t nf, double* conv_out,
                             double* pool, void* mask, const int store_conv, const int store_pool,
                             const int nan_free) {
    /* inlined into its callers (below, and in network.h) with constant store_conv,
       store_pool and nan_free (cnn_ext_window_max4): each gets a copy without the
       outputs and checks it does not use. */
    ptrdiff_t cw = w - 2, ph = (h - 2) / 2, pw = (w - 2) / 2;
    ptrdiff_t f = 0;
#if CNN_EXT_V8D
    for (; f + 8 <= nf; f += 8) {
        cnn_ext_v8d F[9];
        for (int k = 0; k < 9; k++)
            F[k] = *(const cnn_ext_v8d*)(t + k * nf + f);
        for (ptrdiff_t pi = 0; pi < ph; pi++) {
            for (ptrdiff_t pj = 0; pj < pw; pj++) {
                const double* x = image + 2 * pi * w + 2 * pj;
                cnn_ext_v8d acc[4];
                cnn_ext_conv_window8(x, w, F, acc);
                if (store_conv) {
                    double* o = conv_out + ((2 * pi) * cw + 2 * pj) * nf + f;
                    *(cnn_ext_v8d*)o = acc[0];
                    *(cnn_ext_v8d*)(o + nf) = acc[1];
                    *(cnn_ext_v8d*)(o + cw * nf) = acc[2];
                    *(cnn_ext_v8d*)(o + cw * nf + nf) = acc[3];
                }
                if (store_pool) {
                    cnn_ext_v8d m = cnn_ext_window_max8(acc, nan_free);
                    ptrdiff_t win = pi * pw + pj;
                    *(cnn_ext_v8d*)(pool + win * nf + f) = m;
                    if (mask)
                        cnn_ext_window_mask8(acc, m, cnn_ext_mask_block(mask, win, nf, f));
                }
            }
        }
    }
#endif
    for (; f < nf; f += 4) {
        cnn_ext_v4d F[9];
        for (int k = 0; k < 9; k++)
            F[k] = cnn_ext_load(t + k * nf + f);
        for (ptrdiff_t pi = 0; pi < ph; pi++) {
            for (ptrdiff_t pj = 0; pj < pw; pj++) {
                const double* x = image + 2 * pi * w + 2 * pj;
                cnn_ext_v4d acc[4];
                cnn_ext_conv_window4(x, w, F, acc);
                if (store_conv) {
                    double* o = conv_out + ((2 * pi) * cw + 2 * pj) * nf + f;
                    cnn_ext_store(o, acc[0]);
                    cnn_ext_store(o + nf, acc[1]);
                    cnn_ext_store(o + cw * nf, acc[2]);
                    cnn_ext_store(o + cw * nf + nf, acc[3]);
                }
                if (store_pool) {
                    cnn_ext_v4d m = cnn_ext_window_max4(acc, nan_free);
                    ptrdiff_t win = pi * pw + pj;
                    cnn_ext_store(pool + win * nf + f, m);
                    if (mask)
                        cnn_ext_window_mask4(acc, m, cnn_ext_mask_block(mask, win, nf, f));
                }
            }
        }
    }
}

/* out (h-2, w-2, nf) of image (h, w); t holds the filters transposed, (9, nf): the
   complete pooling windows as above, then an odd last row and column one position at a
   time, with the same chain of FMAs. */
static inline void cnn_ext_conv_forward_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                           const double* t, ptrdiff_t nf, double* out) {
    ptrdiff_t ch = h - 2, cw = w - 2, ph = ch / 2, pw = cw / 2;
    cnn_ext_conv_windows_v4(image, h, w, t, nf, out, NULL, NULL, 1, 0, 0);
    for (ptrdiff_t i = 0; i < ch; i++) {
        for (ptrdiff_t j = (i < 2 * ph ? 2 * pw : 0); j < cw; j++) {
            const double* x = image + i * w + j;
            for (ptrdiff_t f = 0; f < nf; f += 4) {
                cnn_ext_v4d acc = cnn_ext_zero();
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 3; b++)
                        acc = cnn_ext_fma(cnn_ext_bcast(x + a * w + b),
                                          cnn_ext_load(t + (3 * a + b) * nf + f), acc);
                cnn_ext_store(out + (i * cw + j) * nf + f, acc);
            }
        }
    }
}

/* d_L_d_filters (nf, 9) from the image (h, w) and per-position output gradients.
   With mask == NULL, g is d_L_d_out (h-2, w-2, nf) itself; otherwise g is the gradient
   of the pooled output (windows, nf) and each position's gradient is g where mask is set
   and 0 elsewhere, which is what MaxPool2's backprop hands to Conv3x3's. Complete
   windows are summed window by window; an odd last row or column of positions (which
   MaxPool2 never routes to) follows, position by position. */
static inline void cnn_ext_filter_grad_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                          const double* g, const void* mask, ptrdiff_t nf,
                                          double* d_L_d_filters) {
    ptrdiff_t ch = h - 2, cw = w - 2, ph = ch / 2, pw = cw / 2;
    ptrdiff_t f = 0;
#if CNN_EXT_V8D
    /* the masked case (the network's) eight filters at a time; the rest below */
    for (; mask && f + 8 <= nf; f += 8) {
        cnn_ext_v8d acc[9];
        for (int k = 0; k < 9; k++)
            acc[k] = (cnn_ext_v8d){0, 0, 0, 0, 0, 0, 0, 0};
        for (ptrdiff_t pi = 0; pi < ph; pi++) {
            for (ptrdiff_t pj = 0; pj < pw; pj++) {
                ptrdiff_t win = pi * pw + pj;
                cnn_ext_v8d d[4];
                cnn_ext_window_grads8(*(const cnn_ext_v8d*)(g + win * nf + f),
                                      cnn_ext_mask_block(mask, win, nf, f), d);
                cnn_ext_grad_window8(image + 2 * pi * w + 2 * pj, w, d, acc);
            }
        }
        cnn_ext_store_grad8(acc, f, d_L_d_filters);
    }
#endif
    for (; f < nf; f += 4) {
        cnn_ext_v4d acc[9];
        for (int k = 0; k < 9; k++)
            acc[k] = cnn_ext_zero();
        for (ptrdiff_t pi = 0; pi < ph; pi++) {
            for (ptrdiff_t pj = 0; pj < pw; pj++) {
                const double* x = image + 2 * pi * w + 2 * pj;
                cnn_ext_v4d d[4];
                /* one loop for both cases: with the masked case in a loop of its own, GCC 12
                   kept one of the nine accumulators on the stack, and the filter gradient
                   took 1.3x the time (bench/parts.py, AVX2) */
                if (mask) {
                    ptrdiff_t win = pi * pw + pj;
                    cnn_ext_window_grads4(cnn_ext_load(g + win * nf + f),
                                          cnn_ext_mask_block(mask, win, nf, f), d);
                } else {
                    const double* r = g + ((2 * pi) * cw + 2 * pj) * nf + f;
                    d[0] = cnn_ext_load(r);
                    d[1] = cnn_ext_load(r + nf);
                    d[2] = cnn_ext_load(r + cw * nf);
                    d[3] = cnn_ext_load(r + cw * nf + nf);
                }
                cnn_ext_grad_window4(x, w, d, acc);
            }
        }
        if (!mask) {  /* an odd last row or column, position by position */
            for (ptrdiff_t i = 0; i < ch; i++) {
                for (ptrdiff_t j = (i < 2 * ph ? 2 * pw : 0); j < cw; j++) {
                    cnn_ext_v4d d = cnn_ext_load(g + (i * cw + j) * nf + f);
                    for (int a = 0; a < 3; a++)
                        for (int b = 0; b < 3; b++)
                            acc[3 * a + b] = cnn_ext_fma(cnn_ext_bcast(image + (i + a) * w + j + b),
                                                         d, acc[3 * a + b]);
                }
            }
        }
        cnn_ext_store_grad4(acc, f, d_L_d_filters);
    }
}
#else
static inline void cnn_ext_conv_forward_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                           const double* t, ptrdiff_t nf, double* out) {}
static inline void cnn_ext_filter_grad_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                          const double* g, const void* mask, ptrdiff_t nf,
                                          double* d_L_d_filters) {}
#endif

/* Gradient of filters f0..f0+3, one filter row a at a time: three 4-wide accumulators
   (one per filter column b) stay in registers while the loop streams over all output
   positions in row-major order, the tutorial's accumulation order. Written with the
   4-wide helpers of simd.h (one FMA per position and accumulator) because the
   auto-vectoriser turns this loop nest into a shuffle-heavy reduction over positions
   instead; plain C in the portable build. */
static inline void cnn_ext_filter_grad_block4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                              const double* d_L_d_out, ptrdiff_t nf,
                                              ptrdiff_t f0, double* d_L_d_filters) {
    ptrdiff_t ow = w - 2;
    for (ptrdiff_t a = 0; a < 3; a++) {
#if CNN_EXT_V4D
        cnn_ext_v4d acc0 = cnn_ext_zero(), acc1 = cnn_ext_zero(), acc2 = cnn_ext_zero();
        for (ptrdiff_t i = 0; i < h - 2; i++) {
            const double* x = image + (i + a) * w;
            const double* d = d_L_d_out + i * ow * nf + f0;
            for (ptrdiff_t j = 0; j < ow; j++, d += nf) {
                cnn_ext_v4d dv = cnn_ext_load(d);
                acc0 = cnn_ext_fma(cnn_ext_bcast(x + j), dv, acc0);
                acc1 = cnn_ext_fma(cnn_ext_bcast(x + j + 1), dv, acc1);
                acc2 = cnn_ext_fma(cnn_ext_bcast(x + j + 2), dv, acc2);
            }
        }
        for (int q = 0; q < 4; q++) {
            d_L_d_filters[9 * (f0 + q) + 3 * a] = cnn_ext_lane(acc0, q);
            d_L_d_filters[9 * (f0 + q) + 3 * a + 1] = cnn_ext_lane(acc1, q);
            d_L_d_filters[9 * (f0 + q) + 3 * a + 2] = cnn_ext_lane(acc2, q);
        }
#else
        double acc0[4] = {0}, acc1[4] = {0}, acc2[4] = {0};
        for (ptrdiff_t i = 0; i < h - 2; i++) {
            const double* x = image + (i + a) * w;
            const double* d = d_L_d_out + i * ow * nf + f0;
            for (ptrdiff_t j = 0; j < ow; j++, d += nf) {
                for (int q = 0; q < 4; q++) {
                    acc0[q] += x[j] * d[q];
                    acc1[q] += x[j + 1] * d[q];
                    acc2[q] += x[j + 2] * d[q];
                }
            }
        }
        for (int q = 0; q < 4; q++) {
            d_L_d_filters[9 * (f0 + q) + 3 * a] = acc0[q];
            d_L_d_filters[9 * (f0 + q) + 3 * a + 1] = acc1[q];
            d_L_d_filters[9 * (f0 + q) + 3 * a + 2] = acc2[q];
        }
#endif
    }
}

#endif /* CNN_EXT_CONV_H */
