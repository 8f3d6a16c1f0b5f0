/* Vector kernels of MaxPool2 (2x2 windows, stride 2) for the AVX2 build.

   x (h, w, nf) and its gradient are C-contiguous float64. The maxima follow np.amax (a NaN
   wins) and the backprop the tutorial's tie rule (every position equal to the maximum gets
   the gradient). Header-only: static inline. */
#ifndef CNN_EXT_MAXPOOL_H
#define CNN_EXT_MAXPOOL_H

#include <stddef.h>

#include "simd.h"

/* Four filters of one 2x2 window at once (p: the window's top-left value of filter f,
   nf: distance to the next column, rs: to the next row). Branch-free: ties are the
   common case on MNIST and would defeat the branch predictor. */
#if CNN_EXT_V4D
static inline void cnn_ext_pool4_forward(const double* p, ptrdiff_t nf, ptrdiff_t rs,
                                         double* o) {
    cnn_ext_v4d m = *(const cnn_ext_v4d*)p;
    m = cnn_ext_max_nan(m, *(const cnn_ext_v4d*)(p + nf));
    m = cnn_ext_max_nan(m, *(const cnn_ext_v4d*)(p + rs));
    m = cnn_ext_max_nan(m, *(const cnn_ext_v4d*)(p + rs + nf));
    *(cnn_ext_v4d*)o = m;
}
static inline void cnn_ext_pool4_backprop(const double* p, ptrdiff_t nf, ptrdiff_t rs,
                                          const double* g, double* q) {
    cnn_ext_v4d a = *(const cnn_ext_v4d*)p, b = *(const cnn_ext_v4d*)(p + nf);
    cnn_ext_v4d c = *(const cnn_ext_v4d*)(p + rs), e = *(const cnn_ext_v4d*)(p + rs + nf);
    cnn_ext_v4d m = cnn_ext_max_nan(cnn_ext_max_nan(cnn_ext_max_nan(a, b), c), e);
    cnn_ext_v4i d = *(const cnn_ext_v4i*)g;
    /* every position equal to the maximum gets the gradient; NaN equals nothing */
    *(cnn_ext_v4i*)q = d & (cnn_ext_v4i)(a == m);
    *(cnn_ext_v4i*)(q + nf) = d & (cnn_ext_v4i)(b == m);
    *(cnn_ext_v4i*)(q + rs) = d & (cnn_ext_v4i)(c == m);
    *(cnn_ext_v4i*)(q + rs + nf) = d & (cnn_ext_v4i)(e == m);
}
#else
static inline void cnn_ext_pool4_forward(const double* p, ptrdiff_t nf, ptrdiff_t rs, double* o) {}
static inline void cnn_ext_pool4_backprop(const double* p, ptrdiff_t nf, ptrdiff_t rs,
                                          const double* g, double* q) {}
#endif

#endif /* CNN_EXT_MAXPOOL_H */
