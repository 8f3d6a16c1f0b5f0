/* Conv3x3 and MaxPool2 in one pass for the fused network of the AVX2 build: the window
   maxima (and where they are) without storing the convolution. The numbers are those of
   the two layer kernels: the same chain of FMAs (conv.h) and the same maxima.

   image (h, w); t, the filters transposed, (9, nf); pool ((h-2)/2, (w-2)/2, nf); mask
   (windows, 4, nf) or NULL. Header-only: static inline. */
#ifndef CNN_EXT_CONV_POOL_H
#define CNN_EXT_CONV_POOL_H

#include <stddef.h>

#include "conv.h"

#if CNN_EXT_V4D
/* Conv3x3 and MaxPool2 in one pass, the convolution never stored (the fused network) */
static inline void cnn_ext_conv_pool_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        int nan_free) {
    if (nan_free)
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, mask, 0, 1, 1);
    else
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, mask, 0, 1, 0);
}
#else
static inline void cnn_ext_conv_pool_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        int nan_free) {}
#endif

#endif /* CNN_EXT_CONV_POOL_H */
