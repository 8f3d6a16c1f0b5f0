/* Vector kernels of MaxPool2 (2x2 windows, stride 2) for the vector builds (AVX2, AVX-512, NEON).

   x (h, w, nf) and its gradient are C-contiguous float64. The maxima follow np.amax (a NaN
   wins) and the backprop the tutorial's tie rule (every position equal to the maximum gets
   the gradient; a window holding a NaN routes nothing). The kernels handle the filters
   [0, nv), nv a multiple of 4; the caller does the rest. Header-only: static inline.

   Why a plain maximum: the common window holds no NaN, and there cnn_ext_max(m, v), which is
   m > v ? m : v (one vmaxpd on x86, a compare and a select per half on NEON), is a
   fraction of what the NaN rule takes. Taken in the order
   bottom-right, bottom-left, top-right, top-left, that chain keeps, among tied maxima, the
   first in the order top-left, top-right, bottom-left, bottom-right, as the tutorial's
   scalar loop does (it matters for 0.0 against -0.0). cnn_ext_max returns its second operand
   when either is NaN, so the chain's result is NaN exactly where the top-left value is;
   a NaN among the other three costs two unordered compares per 4 windows to see. The
   forward kernel, where a NaN must win with its own bits, redoes a call that met one
   with np.amax's rule; the backprop needs no second pass (a NaN window routes nothing). */
#ifndef CNN_EXT_MAXPOOL_H
#define CNN_EXT_MAXPOOL_H

#include <stddef.h>

#include "simd.h"

#if CNN_EXT_V4D
/* The maximum of four filters of one window (p: top-left value of filter f, nf: distance
   to the next column, rs: to the next row) without the NaN rule: NaN only where the
   top-left value is. */
static inline cnn_ext_v4d cnn_ext_pool4_max_plain(const double* p, ptrdiff_t nf, ptrdiff_t rs) {
    cnn_ext_v4d m = cnn_ext_max(cnn_ext_load(p + rs + nf), cnn_ext_load(p + rs));
    return cnn_ext_max(cnn_ext_max(m, cnn_ext_load(p + nf)), cnn_ext_load(p));
}

/* All ones in the lanes where one of the other three values is NaN. */
static inline cnn_ext_v4i cnn_ext_pool4_nan3(const double* p, ptrdiff_t nf, ptrdiff_t rs) {
    return cnn_ext_or_isnan(cnn_ext_unord(cnn_ext_load(p + rs + nf), cnn_ext_load(p + rs)),
                            cnn_ext_load(p + nf));
}

/* The same maximum with np.amax's rule (a NaN wins, the last one if several): the path
   of a call whose input holds a NaN. Branch-free: ties are the common case on MNIST and
   would defeat the branch predictor. */
static inline void cnn_ext_pool4_forward_nan(const double* p, ptrdiff_t nf, ptrdiff_t rs,
                                             double* o) {
    cnn_ext_v4d m = cnn_ext_load(p);
    m = cnn_ext_max_nan(m, cnn_ext_load(p + nf));
    m = cnn_ext_max_nan(m, cnn_ext_load(p + rs));
    m = cnn_ext_max_nan(m, cnn_ext_load(p + rs + nf));
    cnn_ext_store(o, m);
}

/* out[i, j, f] = max(x[2i:2i+2, 2j:2j+2, f]) for f < nv, without the NaN rule (rs: the
   row stride of x, w * nf). Returns nonzero when a NaN was met; out then holds plain
   maxima, which the NaN pass overwrites. */
static inline __attribute__((always_inline)) int cnn_ext_pool_forward_plain(
        const double* x, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t nf, ptrdiff_t nv, ptrdiff_t rs,
        double* out) {
    ptrdiff_t xs = 2 * nf;
    cnn_ext_v4i any_nan = cnn_ext_mask_none();
    for (ptrdiff_t i = 0; i < oh; i++) {
        const double* p = x + 2 * i * rs;
        double* o = out + i * ow * nf;
        for (const double* end = p + ow * xs; p != end; p += xs, o += nf)
            for (ptrdiff_t f = 0; f < nv; f += 4) {
                cnn_ext_v4d m = cnn_ext_pool4_max_plain(p + f, nf, rs);
                /* a NaN among the other three, or the top-left one (then m is NaN) */
                any_nan = cnn_ext_or_mask(any_nan, cnn_ext_or_isnan(cnn_ext_pool4_nan3(p + f, nf, rs), m));
                cnn_ext_store(o + f, m);  /* last: out may alias x as far as C knows */
            }
    }
    return cnn_ext_any(any_nan);
}

/* The window maxima of filters [0, nv) of x (h, w, nf) into out (h//2, w//2, nf). */
static inline void cnn_ext_pool_forward_v4(const double* x, ptrdiff_t h, ptrdiff_t w,
                                           ptrdiff_t nf, ptrdiff_t nv, double* out) {
    ptrdiff_t oh = h / 2, ow = w / 2, rs = w * nf;
    int nan;
    if (nf == 8 && nv == 8)  /* the tutorial's 8 filters: the filter loop unrolled */
        nan = cnn_ext_pool_forward_plain(x, oh, ow, 8, 8, rs, out);
    else
        nan = cnn_ext_pool_forward_plain(x, oh, ow, nf, nv, rs, out);
    if (nan)  /* rare: redo the call with the NaN rule */
        for (ptrdiff_t i = 0; i < oh; i++)
            for (ptrdiff_t j = 0; j < ow; j++)
                for (ptrdiff_t f = 0; f < nv; f += 4)
                    cnn_ext_pool4_forward_nan(x + 2 * i * rs + 2 * j * nf + f, nf, rs,
                                              out + (i * ow + j) * nf + f);
}

/* d_L_d_input of filters [0, nv) in the windows: g (h//2, w//2, nf) routed to every
   position of x (h, w, nf) equal to its window's maximum; a window holding a NaN routes
   nothing (the NaN maximum equals nothing). Odd trailing rows/columns are left to the caller. */
static inline __attribute__((always_inline)) void cnn_ext_pool_backprop_rows(
        const double* x, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t nf, ptrdiff_t nv, ptrdiff_t rs,
        const double* g, double* q) {
    ptrdiff_t xs = 2 * nf;
    for (ptrdiff_t i = 0; i < oh; i++) {
        const double* p = x + 2 * i * rs;
        double* r = q + 2 * i * rs;
        const double* d = g + i * ow * nf;
        for (const double* end = p + ow * xs; p != end; p += xs, r += xs, d += nf)
            for (ptrdiff_t f = 0; f < nv; f += 4) {
                /* a NaN top-left value makes m NaN, equal to nothing; the others zero v */
                cnn_ext_v4d m = cnn_ext_pool4_max_plain(p + f, nf, rs);
                cnn_ext_v4d v = cnn_ext_andnot_mask(cnn_ext_pool4_nan3(p + f, nf, rs),
                                                    cnn_ext_load(d + f));
                cnn_ext_store(r + f, cnn_ext_and_mask(v, cnn_ext_eq(m, cnn_ext_load(p + f))));
                cnn_ext_store(r + f + nf, cnn_ext_and_mask(v, cnn_ext_eq(m, cnn_ext_load(p + f + nf))));
                cnn_ext_store(r + f + rs, cnn_ext_and_mask(v, cnn_ext_eq(m, cnn_ext_load(p + f + rs))));
                cnn_ext_store(r + f + rs + nf,
                              cnn_ext_and_mask(v, cnn_ext_eq(m, cnn_ext_load(p + f + rs + nf))));
            }
    }
}

static inline void cnn_ext_pool_backprop_v4(const double* x, ptrdiff_t h, ptrdiff_t w,
                                            ptrdiff_t nf, ptrdiff_t nv, const double* g,
                                            double* q) {
    if (nf == 8 && nv == 8)  /* the tutorial's 8 filters: the filter loop unrolled */
        cnn_ext_pool_backprop_rows(x, h / 2, w / 2, 8, 8, w * 8, g, q);
    else
        cnn_ext_pool_backprop_rows(x, h / 2, w / 2, nf, nv, w * nf, g, q);
}
#else
static inline void cnn_ext_pool_forward_v4(const double* x, ptrdiff_t h, ptrdiff_t w,
                                           ptrdiff_t nf, ptrdiff_t nv, double* out) {}
static inline void cnn_ext_pool_backprop_v4(const double* x, ptrdiff_t h, ptrdiff_t w,
                                            ptrdiff_t nf, ptrdiff_t nv, const double* g,
                                            double* q) {}
#endif

#endif /* CNN_EXT_MAXPOOL_H */
