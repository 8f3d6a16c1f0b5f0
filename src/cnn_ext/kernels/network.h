/* The network's forward pass for the vector builds: Conv3x3 and MaxPool2 in one loop
   over the pooling windows, without storing the convolution (cnn_ext_conv_pool_v4); in
   the x86 builds (AVX2, AVX-512), for ten nodes, Softmax's dense layer in the same loop
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
   is the dense layer's input x (L,); mask (windows, 4 * nf) or NULL, laid out as
   cnn_ext_mask_block says (conv.h); weights (L, 10), row-major or, with blocked set,
   quad-blocked (softmax.h).
   nf is a multiple of 4. Header-only: static inline. */
#ifndef CNN_EXT_NETWORK_H
#define CNN_EXT_NETWORK_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "softmax.h"

/* 1 in the x86 vector builds (AVX2, AVX-512), which run the forward pass in one loop
   (cnn_ext_forward10_v4); 0 in the NEON and portable builds */
#if CNN_EXT_V4D && defined(__AVX2__)
#define CNN_EXT_ONE_LOOP_FORWARD 1
#else
#define CNN_EXT_ONE_LOOP_FORWARD 0
#endif

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
    /* four copies, each without the tests it does not need (the training step's, with the
       masks, and inference's, without) */
    if (mask && nan_free)
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, mask, 0, 1, 1);
    else if (mask)
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, mask, 0, 1, 0);
    else if (nan_free)
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, NULL, 0, 1, 1);
    else
        cnn_ext_conv_windows_v4(image, h, w, t, nf, NULL, pool, NULL, 0, 1, 0);
}

#if CNN_EXT_ONE_LOOP_FORWARD
/* The x86 vector builds' forward pass for ten nodes: pool (and mask, if not NULL) as
   cnn_ext_conv_pool_v4, and totals (10,) = pool @ weights without the biases, as
   cnn_ext_dense10_forward.

   One row of pooling windows at a time: its windows for every block of filters, then
   the dense layer's quads of that row, in ascending order, which is the dense kernel's
   own order. Each window prefetches the weights of its quad (the dense layer's rows of
   its pooled values: 320 bytes, 8 KB per row of windows for MNIST) while the row is
   convolved, so the dense layer reads them from L1 and their loads overlap the
   convolution's arithmetic instead of following it: from L2, the dense forward waits on
   its 108 KB of weights (twice the time per quad that it takes from L1, Zen 4).

   The AVX-512 build keeps its five 8-wide dense accumulators in registers (32 of them).
   The AVX2 build's ten 4-wide accumulators wait in memory while a row is convolved: the
   convolution needs 14 of the 16 registers (nine filter taps, four outputs, a pixel) and
   temporaries, and with the accumulators live across it GCC spilled inside the window
   loop and the one loop lost to two. */
static inline __attribute__((always_inline))
void cnn_ext_forward10_impl(const double* restrict image, ptrdiff_t h, ptrdiff_t w,
                            const double* restrict t, ptrdiff_t nf, double* restrict pool,
                            void* restrict mask, const double* restrict weights,
                            double* restrict totals, const int nan_free, const int blocked) {
    ptrdiff_t ph = (h - 2) / 2, pw = (w - 2) / 2, row = pw * nf;  /* pool values per row */
    cnn_ext_v4d a[10];
#if CNN_EXT_V8D
    cnn_ext_v8d A[5];  /* the dense accumulators (cnn_ext_dense10_quad8) */
    for (int j = 0; j < 5; j++)
        A[j] = (cnn_ext_v8d){0, 0, 0, 0, 0, 0, 0, 0};
#else
    double held[40] __attribute__((aligned(32)));  /* a[], between the rows' dense passes */
    for (int v = 0; v < 40; v++)
        held[v] = 0.0;
#endif
    for (ptrdiff_t pi = 0; pi < ph; pi++) {
        ptrdiff_t f = 0;
#if CNN_EXT_V8D
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
                    cnn_ext_window_mask8(acc, m, cnn_ext_mask_block(mask, win, nf, f));
                const char* quads = (const char*)(weights + 10 * (win * nf + f));
                for (int e = 0; e < 10; e++)
                    __builtin_prefetch(quads + 64 * e, 0, 3);
            }
        }
#endif
        for (; f < nf; f += 4) {  /* four filters: one quad */
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
                    cnn_ext_window_mask4(acc, m, cnn_ext_mask_block(mask, win, nf, f));
                /* the window's quad of weights, 5 cache lines, for the row's dense pass */
                const char* quad = (const char*)(weights + 10 * (win * nf + f));
                for (int e = 0; e < 5; e++)
                    __builtin_prefetch(quad + 64 * e, 0, 3);
            }
        }
#if CNN_EXT_V8D
        for (ptrdiff_t k = pi * row; k < (pi + 1) * row; k += 4)
            if (blocked)
                cnn_ext_dense10_quad8_blocked(pool + k, weights + 10 * k, A);
            else
                cnn_ext_dense10_quad8(pool + k, weights + 10 * k, A);
#else
        /* The empty asm statements say that held[] may change under them: the compiler
           must store the accumulators before and load them after, rather than keep them
           in registers through the next row's convolution. No instruction is emitted. */
        __asm__ volatile("" : "+m"(held));
        for (int v = 0; v < 10; v++)
            a[v] = cnn_ext_load(held + 4 * v);
        for (ptrdiff_t k = pi * row; k < (pi + 1) * row; k += 4)
            if (blocked)
                cnn_ext_dense10_quad_blocked(pool + k, weights + 10 * k, a);
            else
                cnn_ext_dense10_quad(pool + k, weights + 10 * k, a);
        for (int v = 0; v < 10; v++)
            cnn_ext_store(held + 4 * v, a[v]);
        __asm__ volatile("" : "+m"(held));
#endif
    }
#if CNN_EXT_V8D
    cnn_ext_dense10_split8(A, a);
#else
    for (int v = 0; v < 10; v++)
        a[v] = cnn_ext_load(held + 4 * v);
#endif
    if (blocked)
        cnn_ext_dense10_fold_blocked(a, totals);
    else
        cnn_ext_dense10_fold(a, totals);
}

/* In one loop the forward pass of the x86 builds is faster than in two, conv + pool and
   then the dense layer: the AVX-512 build's 1.1x (bench/parts.py, Zen 4), the AVX2
   build's 1.06x. The NEON build runs the two (_network.pxi's forward_c, and
   cnn_ext_train_step10): whether its loads overlap the same way has not been timed, there
   is no arm64 hardware here. */
static inline void cnn_ext_forward10_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        const double* weights, double* totals, int nan_free,
                                        int blocked) {
    /* eight copies, as cnn_ext_conv_pool_v4's four, for row-major and for blocked weights
       (softmax.h) */
#define CNN_EXT_FORWARD10(B)                                                                  \
    if (mask && nan_free)                                                                     \
        cnn_ext_forward10_impl(image, h, w, t, nf, pool, mask, weights, totals, 1, B);        \
    else if (mask)                                                                            \
        cnn_ext_forward10_impl(image, h, w, t, nf, pool, mask, weights, totals, 0, B);        \
    else if (nan_free)                                                                        \
        cnn_ext_forward10_impl(image, h, w, t, nf, pool, NULL, weights, totals, 1, B);        \
    else                                                                                      \
        cnn_ext_forward10_impl(image, h, w, t, nf, pool, NULL, weights, totals, 0, B);
    if (blocked) {
        CNN_EXT_FORWARD10(1)
    } else {
        CNN_EXT_FORWARD10(0)
    }
#undef CNN_EXT_FORWARD10
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
#if !CNN_EXT_ONE_LOOP_FORWARD
/* only the x86 vector builds run the forward pass in one loop; the others never call this */
static inline void cnn_ext_forward10_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                        const double* t, ptrdiff_t nf, double* pool, void* mask,
                                        const double* weights, double* totals, int nan_free,
                                        int blocked) {}
#endif

/* Every build: the scalar pieces of a training step, written once for the Cython layers
   (_conv.pxi, _softmax.pxi, _network.pxi, which declare them under their old names) and
   for cnn_ext_train_step10. */

/* (nf, 9) -> (9, nf): the vector kernels read the same tap of consecutive filters. */
static inline void cnn_ext_transpose_filters(const double* filters, ptrdiff_t nf, double* t) {
    for (ptrdiff_t f = 0; f < nf; f++)
        for (int k = 0; k < 9; k++)
            t[k * nf + f] = filters[9 * f + k];
}

/* Pixels are normalised into [-0.5, 0.5]: with every filter weight at most 1e300 in
   magnitude a conv sum stays below 4.5e300, finite, so no NaN can reach a pool window and
   the maxima need no NaN rule. (A NaN weight fails the test, as it should.) */
static inline int cnn_ext_filters_bounded(const double* filters, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++)
        if (!(fabs(filters[k]) <= 1e300))
            return 0;
    return 1;
}

/* softmax(totals) into probs (n,): the maximum subtracted first, the exponentials summed
   in order */
static inline void cnn_ext_softmax_probs(const double* totals, ptrdiff_t n, double* probs) {
    double m = totals[0], s = 0.0;
    for (ptrdiff_t k = 1; k < n; k++)
        if (totals[k] > m)
            m = totals[k];
    for (ptrdiff_t k = 0; k < n; k++) {
        probs[k] = exp(totals[k] - m);
        s += probs[k];
    }
    for (ptrdiff_t k = 0; k < n; k++)
        probs[k] = probs[k] / s;
}

/* np.argmax of p (n,): the first maximum, and a NaN counts as the maximum */
static inline ptrdiff_t cnn_ext_argmax(const double* p, ptrdiff_t n) {
    ptrdiff_t best = 0;
    for (ptrdiff_t k = 1; k < n; k++) {
        if (p[best] != p[best])
            break;
        if (p[k] > p[best] || p[k] != p[k])
            best = k;
    }
    return best;
}

/* The scratch buffers of a training step (cnn_ext_train_step10), each as the package's
   Buffers (_network.pxi) allocates it: x (h, w), the normalised image; t (9, nf), the
   filters transposed; pool (L,); mask (windows, 4 * nf); d_pool (L,); d_filt (nf, 9);
   totals and probs (10,). */
typedef struct {
    double *x, *t, *pool, *mask, *d_pool, *d_filt, *totals, *probs;
} cnn_ext_step_buffers;

#if CNN_EXT_V4D
/* The tutorial's train(im, label) for ten nodes in the vector builds (nf a multiple of
   4): one SGD step on the uint8 image (h, w), updating filters (nf, 3, 3), weights (L, 10)
   and biases (10,) in place. Returns the loss, -log p of the label's probability (inf
   when p is 0, NaN when p is NaN), and sets *correct to whether the first maximum of the
   probabilities is the label. blocked: the weights are quad-blocked (softmax.h), as in
   train_steps' chunks; else row-major (L, 10), as TrainState.step passes the caller's
   array. The calls and the order of every operation are those of
   the six layer kernels (_network.pxi's train_step_c runs the same sequence for the other
   shapes and builds), so the numbers are theirs bit for bit. One C function, not the
   Cython one: the same sequence ran 3% slower as Cython's than as C (in one process, on
   the same digits and parameters, Zen 4), and bench/parts.c times this very function. */
static inline double cnn_ext_train_step10(const unsigned char* image, ptrdiff_t label,
                                          ptrdiff_t h, ptrdiff_t w, double* filters,
                                          ptrdiff_t nf, double* weights, double* biases,
                                          double learn_rate, const cnn_ext_step_buffers* b,
                                          unsigned char* correct, int blocked) {
    ptrdiff_t L = ((h - 2) / 2) * ((w - 2) / 2) * nf;
    double d_L_d_t[10];
    /* the filters transposed for the vector kernels, and whether every weight is at most
       1e300 in magnitude: then pixels in [-0.5, 0.5] give finite conv sums, no window can
       hold a NaN, and the maxima need no NaN rule (a NaN weight fails the test) */
    cnn_ext_transpose_filters(filters, nf, b->t);
    int nan_free = cnn_ext_filters_bounded(filters, 9 * nf);
    /* the tutorial's (image / 255) - 0.5 */
    for (ptrdiff_t k = cnn_ext_normalise_v4(image, h * w, b->x); k < h * w; k++)
        b->x[k] = image[k] / 255.0 - 0.5;
    /* forward: Conv3x3, MaxPool2 (and its masks), Softmax */
#if CNN_EXT_ONE_LOOP_FORWARD
    cnn_ext_forward10_v4(b->x, h, w, b->t, nf, b->pool, b->mask, weights, b->totals, nan_free,
                         blocked);
#else
    cnn_ext_conv_pool_v4(b->x, h, w, b->t, nf, b->pool, b->mask, nan_free);
    if (blocked)
        cnn_ext_dense10_forward_blocked(b->pool, L, weights, b->totals);
    else
        cnn_ext_dense10_forward(b->pool, L, weights, b->totals);
#endif
    for (int n = 0; n < 10; n++)
        b->totals[n] = b->totals[n] + biases[n];
    cnn_ext_softmax_probs(b->totals, 10, b->probs);
    double p = b->probs[label];
    *correct = cnn_ext_argmax(b->probs, 10) == label;
    /* backward: the gradient of the loss, -1/p at the label, through Softmax
       (softmax_d_totals_c: its sum runs over the non-zero entries, the label's alone) */
    double g = -1 / p;
    if (g != 0) {
        double s = CNN_EXT_MADD(g, b->probs[label], 0.0);
        for (int n = 0; n < 10; n++)
            d_L_d_t[n] = b->probs[n] * ((n == label ? g : 0.0) - s);
        if (blocked)
            cnn_ext_dense10_backprop_blocked(b->pool, L, weights, d_L_d_t, learn_rate, b->d_pool);
        else
            cnn_ext_dense10_backprop(b->pool, L, weights, d_L_d_t, learn_rate, b->d_pool);
        for (int n = 0; n < 10; n++)
            biases[n] = CNN_EXT_MADD(-learn_rate, d_L_d_t[n], biases[n]);
    } else {  /* nothing to learn (the layers' rule), though -1/p is never 0 */
        memset(b->d_pool, 0, (size_t)L * sizeof(double));
    }
    /* MaxPool2's backprop and the filter gradient in one pass through the masks, and the
       filters' SGD update */
    cnn_ext_filter_grad_v4(b->x, h, w, b->d_pool, b->mask, nf, b->d_filt);
    for (ptrdiff_t k = 0; k < 9 * nf; k++)
        filters[k] = CNN_EXT_MADD(-learn_rate, b->d_filt[k], filters[k]);
    return p > 0 ? -log(p) : (p != p ? p : INFINITY);
}
#else
static inline double cnn_ext_train_step10(const unsigned char* image, ptrdiff_t label,
                                          ptrdiff_t h, ptrdiff_t w, double* filters,
                                          ptrdiff_t nf, double* weights, double* biases,
                                          double learn_rate, const cnn_ext_step_buffers* b,
                                          unsigned char* correct, int blocked) {
    return 0.0;
}
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

/* Every build: room for n doubles on a 64-byte boundary, or a 64-byte aligned copy of n
   doubles at src, inside the block *raw (to be freed with free()), or NULL when out of
   memory. The vector kernels read the dense
   layer's weights in 32- and 64-byte vectors; NumPy places an array 16 bytes past a
   64-byte boundary as often as on one, and then a vector in two reads crosses a line. */
static inline double* cnn_ext_aligned_alloc(ptrdiff_t n, void** raw) {
    *raw = malloc((size_t)n * sizeof(double) + 64);
    if (*raw == NULL)
        return NULL;
    return (double*)(((size_t)*raw + 63) & ~(size_t)63);
}
static inline double* cnn_ext_aligned_copy(const double* src, ptrdiff_t n, void** raw) {
    double* p = cnn_ext_aligned_alloc(n, raw);
    if (p != NULL)
        memcpy(p, src, (size_t)n * sizeof(double));
    return p;
}

#endif /* CNN_EXT_NETWORK_H */
