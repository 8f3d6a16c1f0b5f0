/* The network's forward pass for the vector builds: Conv3x3 and MaxPool2 in one loop
   over the pooling windows, without storing the convolution (cnn_ext_conv_pool_v4); in
   the AVX-512 build, for ten nodes, Softmax's dense layer in the same loop
   (cnn_ext_forward10_v4). The numbers are those of the layer kernels, bit for bit: the
   same chain of FMAs per conv output (conv.h), the same maxima, the same order of the
   dense layer's sums (softmax.h).

   The backward pass runs two loops in every build, the dense layer's backprop
   (cnn_ext_dense10_backprop), then the filter gradient through the forward's masks
   (cnn_ext_filter_grad_v4). One loop over the windows doing both, each window's pooled
   gradient used at once, was slower on Zen 4: the training step took 1.14x (AVX-512) and
   1.17x (AVX2) the time (bench/compare_builds.py), perhaps because each window's filter
   FMAs wait on its dense sums there, where two loops keep the windows independent.

   image (h, w); t, the filters transposed, (9, nf); pool ((h-2)/2, (w-2)/2, nf), which
   is the dense layer's input x (L,); mask (windows, 4, nf) or NULL; weights (L, 10).
   nf is a multiple of 4. Header-only: static inline. */
#ifndef CNN_EXT_NETWORK_H
#define CNN_EXT_NETWORK_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "softmax.h"

#if CNN_EXT_V4D
/* The tutorial's normalisation, x = (pixel / 255) - 0.5, of the first n - n % 4 pixels,
   four at a time; returns how many it did. The quotient is v * (1/255) corrected by one
   Newton step on its FMA residual, which rounds exactly as the division does for every
   value 0..255 (tests/test_kernel_headers.py checks all 256), without a divide. */
static inline ptrdiff_t cnn_ext_normalise_v4(const unsigned char* image, ptrdiff_t n, double* x) {
    const cnn_ext_v4d c = cnn_ext_set1(1.0 / 255.0), d = cnn_ext_set1(255.0);
    const cnn_ext_v4d half = cnn_ext_set1(0.5);
    ptrdiff_t k = 0;
    for (; k + 4 <= n; k += 4) {
        cnn_ext_v4d v = cnn_ext_u8x4(image + k);
        cnn_ext_v4d q = cnn_ext_mul(v, c);
        q = cnn_ext_fma(cnn_ext_fnma(q, d, v), c, q);
        cnn_ext_store(x + k, cnn_ext_sub(q, half));
    }
    return k;
}

/* Conv3x3 and MaxPool2 in one pass, the convolution never stored (any number of nodes) */
static inline void cnn_ext_conv_pool_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        int nan_free) {
    if (nan_free)
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, mask, 0, 1, 1);
    else
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, mask, 0, 1, 0);
}

#if CNN_EXT_V8D
/* The AVX-512 build's forward pass for ten nodes: pool (and mask, if not NULL) as
   cnn_ext_conv_pool_v4, and totals (10,) = pool @ weights without the biases, as
   cnn_ext_dense10_forward.

   One row of pooling windows at a time: its windows for every block of filters, then
   the dense layer's quads of that row, in ascending order, which is the dense kernel's
   own order. Each window prefetches the weights of its quad (the dense layer's rows of
   its pooled values: 320 bytes, 8 KB per row of windows for MNIST) while the row is
   convolved, so the dense layer reads them from L1 and their loads overlap the
   convolution's arithmetic instead of following it. */
static inline __attribute__((always_inline))
void cnn_ext_forward10_impl(const double* restrict image, ptrdiff_t h, ptrdiff_t w,
                            const double* restrict t, ptrdiff_t nf, double* restrict pool,
                            void* restrict mask, const double* restrict weights,
                            double* restrict totals, const int nan_free) {
    ptrdiff_t ph = (h - 2) / 2, pw = (w - 2) / 2, row = pw * nf;  /* pool values per row */
    cnn_ext_v4d a[10];
    cnn_ext_v8d A[5];  /* the dense accumulators (cnn_ext_dense10_quad8) */
    for (int j = 0; j < 5; j++)
        A[j] = (cnn_ext_v8d){0, 0, 0, 0, 0, 0, 0, 0};
    for (ptrdiff_t pi = 0; pi < ph; pi++) {
        ptrdiff_t f = 0;
        for (; f + 8 <= nf; f += 8) {  /* eight filters, two quads of the dense layer */
            cnn_ext_v8d F[9];
            for (int k = 0; k < 9; k++)
                F[k] = *(const cnn_ext_v8d*)(t + k * nf + f);
            for (ptrdiff_t pj = 0; pj < pw; pj++) {
                cnn_ext_v8d acc[4];
                cnn_ext_conv_window8(image + 2 * pi * w + 2 * pj, w, F, acc);
                cnn_ext_v8d m = cnn_ext_window_max8(acc, nan_free);
                ptrdiff_t win = pi * pw + pj;
                *(cnn_ext_v8d*)(pool + win * nf + f) = m;
                if (mask)
                    cnn_ext_window_mask8(acc, m, (long long*)mask + win * 4 * nf + f, nf);
                const char* quads = (const char*)(weights + 10 * (win * nf + f));
                for (int e = 0; e < 10; e++)
                    __builtin_prefetch(quads + 64 * e, 0, 3);
            }
        }
        for (; f < nf; f += 4) {  /* four filters left over: one quad */
            cnn_ext_v4d F[9];
            for (int k = 0; k < 9; k++)
                F[k] = cnn_ext_load(t + k * nf + f);
            for (ptrdiff_t pj = 0; pj < pw; pj++) {
                cnn_ext_v4d acc[4];
                cnn_ext_conv_window4(image + 2 * pi * w + 2 * pj, w, F, acc);
                cnn_ext_v4d m = cnn_ext_window_max4(acc, nan_free);
                ptrdiff_t win = pi * pw + pj;
                cnn_ext_store(pool + win * nf + f, m);
                if (mask)
                    cnn_ext_window_mask4(acc, m, (long long*)mask + win * 4 * nf + f, nf);
                /* the window's quad of weights, 5 cache lines, for the row's dense pass */
                const char* quad = (const char*)(weights + 10 * (win * nf + f));
                for (int e = 0; e < 5; e++)
                    __builtin_prefetch(quad + 64 * e, 0, 3);
            }
        }
        for (ptrdiff_t k = pi * row; k < (pi + 1) * row; k += 4)
            cnn_ext_dense10_quad8(pool + k, weights + 10 * k, A);
    }
    cnn_ext_dense10_split8(A, a);
    cnn_ext_dense10_fold(a, totals);
}

/* In one loop the AVX-512 build's forward is 1.1x faster than in two, conv + pool, then
   the dense layer (bench/parts.py, Zen 4). The AVX2 build, with 16 vector registers,
   was slower in one loop (its training step 1.035x and inference 1.08x faster in two,
   bench/compare_builds.py), so it and the NEON build (whose 32 registers hold 16 of the
   4-wide pairs; not timed, no arm64 hardware) run the two: _network.pxi's forward_c. */
static inline void cnn_ext_forward10_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        const double* weights, double* totals, int nan_free) {
    if (nan_free)
        cnn_ext_forward10_impl(image, h, w, t, nf, pool, mask, weights, totals, 1);
    else
        cnn_ext_forward10_impl(image, h, w, t, nf, pool, mask, weights, totals, 0);
}
#endif
#else
static inline ptrdiff_t cnn_ext_normalise_v4(const unsigned char* image, ptrdiff_t n, double* x) {
    return 0;
}
static inline void cnn_ext_conv_pool_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        int nan_free) {}
#endif
#if !CNN_EXT_V8D
/* only the AVX-512 build runs the forward pass in one loop; the others never call this */
static inline void cnn_ext_forward10_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        const double* weights, double* totals, int nan_free) {}
#endif

/* Every build: asks the cache for the n bytes at p (the next image of a training chunk,
   whose order is known), so that a shuffled epoch's images come from the cache, not from
   memory. Only a hint: no number changes. */
static inline void cnn_ext_prefetch_bytes(const void* p, ptrdiff_t n) {
#if defined(__GNUC__) || defined(__clang__)
    for (ptrdiff_t k = 0; k < n; k += 64)
        __builtin_prefetch((const char*)p + k, 0, 3);
#endif
}

/* Every build: a 64-byte aligned copy of n doubles at src, inside the block *raw (to be
   freed with free()), or NULL when out of memory. The vector kernels read the dense
   layer's weights in 32- and 64-byte vectors; NumPy places an array 16 bytes past a
   64-byte boundary as often as on one, and then a vector in two reads crosses a line. */
static inline double* cnn_ext_aligned_copy(const double* src, ptrdiff_t n, void** raw) {
    *raw = malloc((size_t)n * sizeof(double) + 64);
    if (*raw == NULL)
        return NULL;
    double* p = (double*)(((size_t)*raw + 63) & ~(size_t)63);
    memcpy(p, src, (size_t)n * sizeof(double));
    return p;
}

#endif /* CNN_EXT_NETWORK_H */
