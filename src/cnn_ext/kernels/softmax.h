/* Vector kernels of Softmax's dense layer for the vector builds, for ten nodes (MNIST's
   classes): x (L,), weights (L, 10), totals (10,), C-contiguous float64; and the same
   passes on weights in a quad-blocked layout (below), with the same numbers.
   Header-only: static inline. */
#ifndef CNN_EXT_SOFTMAX_H
#define CNN_EXT_SOFTMAX_H

#include <stddef.h>

#include "simd.h"

/* Ten nodes (MNIST's classes), four rows of weights at a time: 40 contiguous doubles
   are exactly ten 4-wide vectors, W0..W9, and every node's value sits at a fixed lane
   of a fixed vector, so the short rows need neither remainder loops nor gathers.
   Row r of the four is elements 10r..10r+9: W0, W1 and the low half of W2 hold row 0,
   the high half of W2, W3 and W4 row 1, and likewise W5..W9 rows 2 and 3. */
#if CNN_EXT_V4D
#define CNN_EXT_LOAD4(p) cnn_ext_load(p)
/* v is in a register from here on: the compiler may not read it again from memory as
   the operand of each of its uses (GCC does, for the blocked backward pass, whose loads
   then outnumber what the core can issue). No instruction is emitted. */
#if defined(__x86_64__) || defined(__i386__)
#define CNN_EXT_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define CNN_EXT_IN_REGISTER(v) ((void)0)
#endif
/* One quad of the forward pass: rows k..k+3 of the weights (w, 40 doubles) times
   x[k..k+3] into the ten accumulators a (one per vector: a[v] collects rows 4q + r). */
static inline __attribute__((always_inline))
void cnn_ext_dense10_quad(const double* x, const double* w, cnn_ext_v4d a[10]) {
    /* rows 0 and 1 (a[0..4]), then rows 2 and 3 (a[5..9]): three vectors of x live at a
       time, not six. With all four broadcast first, GCC kept one of the ten accumulators
       on the stack in the AVX2 build's one-loop forward, a store and a reload on its
       chain of FMAs every quad. */
    for (int half = 0; half < 2; half++) {
        cnn_ext_v4d x0 = cnn_ext_bcast(x + 2 * half), x1 = cnn_ext_bcast(x + 2 * half + 1);
        cnn_ext_v4d* b = a + 5 * half;
        const double* u = w + 20 * half;
        b[0] = cnn_ext_fma(x0, CNN_EXT_LOAD4(u), b[0]);
        b[1] = cnn_ext_fma(x0, CNN_EXT_LOAD4(u + 4), b[1]);
        b[2] = cnn_ext_fma(cnn_ext_pair(x0, x1), CNN_EXT_LOAD4(u + 8), b[2]);
        b[3] = cnn_ext_fma(x1, CNN_EXT_LOAD4(u + 12), b[3]);
        b[4] = cnn_ext_fma(x1, CNN_EXT_LOAD4(u + 16), b[4]);
    }
}
#if CNN_EXT_V8D
/* The AVX-512 build's quad: the same 40 weights as five 8-wide vectors, A[j] holding the
   lanes of a[2j] and a[2j + 1], so each weight meets the same x in the same accumulator
   lane as in cnn_ext_dense10_quad: the same sums, bit for bit, in half the instructions.
   Element e of the quad is row e / 10: the x vectors are x[0..3] permuted. */
static inline __attribute__((always_inline))
void cnn_ext_dense10_quad8(const double* x, const double* w, cnn_ext_v8d A[5]) {
    const __m512d xs = _mm512_castpd256_pd512(_mm256_loadu_pd(x));
    const __m512i i1 = _mm512_set_epi64(1, 1, 1, 1, 1, 1, 0, 0);
    const __m512i i2 = _mm512_set_epi64(2, 2, 2, 2, 1, 1, 1, 1);
    const __m512i i3 = _mm512_set_epi64(3, 3, 2, 2, 2, 2, 2, 2);
    cnn_ext_v8d X[5] = {cnn_ext_bcast8(x), (cnn_ext_v8d)_mm512_permutexvar_pd(i1, xs),
                        (cnn_ext_v8d)_mm512_permutexvar_pd(i2, xs),
                        (cnn_ext_v8d)_mm512_permutexvar_pd(i3, xs), cnn_ext_bcast8(x + 3)};
    for (int j = 0; j < 5; j++)
        A[j] = cnn_ext_fma8(X[j], *(const cnn_ext_v8d*)(w + 8 * j), A[j]);
}
/* A[5] back to the ten 4-wide accumulators of cnn_ext_dense10_quad */
static inline __attribute__((always_inline))
void cnn_ext_dense10_split8(const cnn_ext_v8d A[5], cnn_ext_v4d a[10]) {
    for (int j = 0; j < 5; j++) {
        a[2 * j] = (cnn_ext_v4d)_mm512_castpd512_pd256((__m512d)A[j]);
        a[2 * j + 1] = (cnn_ext_v4d)_mm512_extractf64x4_pd((__m512d)A[j], 1);
    }
}
#endif
/* The ten totals from the accumulators, added as (rows 0 + 2) + (rows 1 + 3). */
static inline __attribute__((always_inline))
void cnn_ext_dense10_fold(const cnn_ext_v4d a[10], double* totals) {
    cnn_ext_v4d b0 = cnn_ext_add(a[0], a[5]), b1 = cnn_ext_add(a[1], a[6]);
    cnn_ext_v4d b2 = cnn_ext_add(a[2], a[7]), b3 = cnn_ext_add(a[3], a[8]);
    cnn_ext_v4d b4 = cnn_ext_add(a[4], a[9]);
    /* rows 0 and 2 are in b0, b1 and the low half of b2; rows 1 and 3 in the rest */
#define CNN_EXT_L(v, i) cnn_ext_lane(v, i)
    totals[0] = CNN_EXT_L(b0, 0) + CNN_EXT_L(b2, 2); totals[1] = CNN_EXT_L(b0, 1) + CNN_EXT_L(b2, 3);
    totals[2] = CNN_EXT_L(b0, 2) + CNN_EXT_L(b3, 0); totals[3] = CNN_EXT_L(b0, 3) + CNN_EXT_L(b3, 1);
    totals[4] = CNN_EXT_L(b1, 0) + CNN_EXT_L(b3, 2); totals[5] = CNN_EXT_L(b1, 1) + CNN_EXT_L(b3, 3);
    totals[6] = CNN_EXT_L(b1, 2) + CNN_EXT_L(b4, 0); totals[7] = CNN_EXT_L(b1, 3) + CNN_EXT_L(b4, 1);
    totals[8] = CNN_EXT_L(b2, 0) + CNN_EXT_L(b4, 2); totals[9] = CNN_EXT_L(b2, 1) + CNN_EXT_L(b4, 3);
#undef CNN_EXT_L
}
/* The backward pass's vectors of d_L_d_t (t, 10 doubles) laid over a quad's ten vectors
   (T) and the same times learn_rate (lrT). */
static inline __attribute__((always_inline))
void cnn_ext_dense10_tvectors(const double* t, double learn_rate, cnn_ext_v4d T[5],
                              cnn_ext_v4d lrT[5]) {
    T[0] = cnn_ext_setr(t[0], t[1], t[2], t[3]);
    T[1] = cnn_ext_setr(t[4], t[5], t[6], t[7]);
    T[2] = cnn_ext_setr(t[8], t[9], t[0], t[1]);
    T[3] = cnn_ext_setr(t[2], t[3], t[4], t[5]);
    T[4] = cnn_ext_setr(t[6], t[7], t[8], t[9]);
    for (int v = 0; v < 5; v++)
        lrT[v] = cnn_ext_mul(cnn_ext_set1(learn_rate), T[v]);
}
/* One quad of the backward pass: returns rows k..k+3 of weights @ d_L_d_t (w, 40
   doubles, before the update) and applies w -= outer(x[k..k+3], learn_rate * d_L_d_t),
   each weight in one FMA (the tutorial's update up to the rounding of one product).
   A row's dot product is (lanes 0+1 + lanes 2+3) of the sum of its two full vectors,
   plus its two leftover lanes; hadd and two permutes turn the four rows' sums into one
   vector without leaving the registers. */
static inline __attribute__((always_inline))
cnn_ext_v4d cnn_ext_dense10_quad_backprop(const double* x, double* w, const cnn_ext_v4d T[5],
                                          const cnn_ext_v4d lrT[5]) {
    cnn_ext_v4d x0 = cnn_ext_bcast(x), x1 = cnn_ext_bcast(x + 1);
    cnn_ext_v4d x2 = cnn_ext_bcast(x + 2), x3 = cnn_ext_bcast(x + 3);
    cnn_ext_v4d W0, W1;
    /* Each pair of vectors is read, used for the input gradient, updated and stored
       before the next is read: short live ranges, no spills (16 registers). */
#define CNN_EXT_PAIR(P, va, vb, Ta, Tb, Xa, Xb) \
    W0 = CNN_EXT_LOAD4(w + 4 * (va)); W1 = CNN_EXT_LOAD4(w + 4 * (vb)); \
    cnn_ext_v4d P = cnn_ext_fma(W1, T[Tb], cnn_ext_mul(W0, T[Ta])); \
    cnn_ext_store(w + 4 * (va), cnn_ext_fnma(Xa, lrT[Ta], W0)); \
    cnn_ext_store(w + 4 * (vb), cnn_ext_fnma(Xb, lrT[Tb], W1));
    /* leftover lanes first, while all four x are live: W2 * T2 holds rows 0 and 1, W7 * T2
       rows 2 and 3 */
    W0 = CNN_EXT_LOAD4(w + 8); W1 = CNN_EXT_LOAD4(w + 28);
    cnn_ext_v4d rest = cnn_ext_hadd(cnn_ext_mul(W0, T[2]), cnn_ext_mul(W1, T[2]));
    cnn_ext_store(w + 8, cnn_ext_fnma(cnn_ext_pair(x0, x1), lrT[2], W0));
    cnn_ext_store(w + 28, cnn_ext_fnma(cnn_ext_pair(x2, x3), lrT[2], W1));
    /* then the pairs, each two folded at once (the same hadds as before, earlier): fewer
       live vectors, fewer spills with 16 registers */
    CNN_EXT_PAIR(A, 0, 1, 0, 1, x0, x0)
    CNN_EXT_PAIR(B, 3, 4, 3, 4, x1, x1)
    cnn_ext_v4d AB = cnn_ext_hadd(A, B);
    CNN_EXT_PAIR(C, 5, 6, 0, 1, x2, x2)
    CNN_EXT_PAIR(D, 8, 9, 3, 4, x3, x3)
    cnn_ext_v4d CD = cnn_ext_hadd(C, D);
#undef CNN_EXT_PAIR
    cnn_ext_v4d full = cnn_ext_add(cnn_ext_cat_lo(AB, CD), cnn_ext_cat_hi(AB, CD));
    rest = cnn_ext_perm0213(rest);  /* rows 0, 2, 1, 3 -> 0, 1, 2, 3 */
    return cnn_ext_add(full, rest);
}
/* The backward pass of rows k..L-1 one at a time (those after the last quad, row-major in
   both layouts): d_L_d_input[r] = weights[r] . t, then the update. */
static inline void cnn_ext_dense10_backprop_rows(const double* x, ptrdiff_t k, ptrdiff_t L,
                                                 double* weights, const double* t,
                                                 double learn_rate, double* d_L_d_input) {
    for (; k < L; k++) {
        double* w = weights + 10 * k;
        double acc = 0.0;
        for (int n = 0; n < 10; n++)
            acc = CNN_EXT_MADD(w[n], t[n], acc);
        d_L_d_input[k] = acc;
        for (int n = 0; n < 10; n++)
            w[n] = CNN_EXT_MADD(-learn_rate, x[k] * t[n], w[n]);
    }
}
/* d_L_d_input (L,) = weights @ d_L_d_t with the weights before the update, then
   weights -= outer(x, learn_rate * d_L_d_t): quad by quad, then the rows left over. */
static inline void cnn_ext_dense10_backprop(const double* x, ptrdiff_t L, double* weights,
                                            const double* t, double learn_rate,
                                            double* d_L_d_input) {
    cnn_ext_v4d T[5], lrT[5];
    cnn_ext_dense10_tvectors(t, learn_rate, T, lrT);
    ptrdiff_t k = 0;
    for (; k + 4 <= L; k += 4)
        cnn_ext_store(d_L_d_input + k, cnn_ext_dense10_quad_backprop(x + k, weights + 10 * k,
                                                                     T, lrT));
    cnn_ext_dense10_backprop_rows(x, k, L, weights, t, learn_rate, d_L_d_input);
}

/* One quad of the forward pass, blocked: acc[s] lane r collects x[4q + r] times its
   weight, the same chain per (row of the quad, node) as cnn_ext_dense10_quad's. */
static inline __attribute__((always_inline))
void cnn_ext_dense10_quad_blocked(const double* x, const double* w, cnn_ext_v4d acc[10]) {
    cnn_ext_v4d xs = cnn_ext_load(x);
    for (int s = 0; s < 10; s++)
        acc[s] = cnn_ext_fma(xs, CNN_EXT_LOAD4(w + 4 * s), acc[s]);
}
#if CNN_EXT_V8D
/* the AVX-512 build's: vectors 2j and 2j + 1 in one, x[k..k+3] in both halves */
static inline __attribute__((always_inline))
void cnn_ext_dense10_quad8_blocked(const double* x, const double* w, cnn_ext_v8d A[5]) {
    const cnn_ext_v8d xs = (cnn_ext_v8d)_mm512_broadcast_f64x4(_mm256_loadu_pd(x));
    for (int j = 0; j < 5; j++)
        A[j] = cnn_ext_fma8(xs, *(const cnn_ext_v8d*)(w + 8 * j), A[j]);
}
#endif
/* The ten totals from the blocked accumulators, added as cnn_ext_dense10_fold does:
   (rows 0 + 2) + (rows 1 + 3). */
static inline __attribute__((always_inline))
void cnn_ext_dense10_fold_blocked(const cnn_ext_v4d acc[10], double* totals) {
    /* node n: rows 0 and 2 in acc[n], rows 1 and 3 in acc[(n + 8) % 10]; written out, so
       that every lane index is a constant (with a loop over n, GCC's NEON code kept all
       ten accumulators on the stack through the quads) */
#define CNN_EXT_T(n, m) totals[n] = (cnn_ext_lane(acc[n], 0) + cnn_ext_lane(acc[n], 2)) + \
                                    (cnn_ext_lane(acc[m], 1) + cnn_ext_lane(acc[m], 3))
    CNN_EXT_T(0, 8); CNN_EXT_T(1, 9); CNN_EXT_T(2, 0); CNN_EXT_T(3, 1); CNN_EXT_T(4, 2);
    CNN_EXT_T(5, 3); CNN_EXT_T(6, 4); CNN_EXT_T(7, 5); CNN_EXT_T(8, 6); CNN_EXT_T(9, 7);
#undef CNN_EXT_T
}
/* totals (10,) = x (L,) @ weights (L, 10), without the biases: the quads in ascending
   order, then the rows left over; weights row-major, or quad-blocked with blocked set
   (the same totals, bit for bit). */
static inline __attribute__((always_inline))
void cnn_ext_dense10_forward_impl(const double* x, ptrdiff_t L, const double* weights,
                                  double* totals, const int blocked) {
    cnn_ext_v4d a[10];
    ptrdiff_t k = 0;
#if CNN_EXT_V8D
    cnn_ext_v8d A[5];
    for (int j = 0; j < 5; j++)
        A[j] = (cnn_ext_v8d){0, 0, 0, 0, 0, 0, 0, 0};
    for (; k + 4 <= L; k += 4)
        if (blocked)
            cnn_ext_dense10_quad8_blocked(x + k, weights + 10 * k, A);
        else
            cnn_ext_dense10_quad8(x + k, weights + 10 * k, A);
    cnn_ext_dense10_split8(A, a);
#else
    for (int v = 0; v < 10; v++)
        a[v] = cnn_ext_zero();
    for (; k + 4 <= L; k += 4)
        if (blocked)
            cnn_ext_dense10_quad_blocked(x + k, weights + 10 * k, a);
        else
            cnn_ext_dense10_quad(x + k, weights + 10 * k, a);
#endif
    if (blocked)
        cnn_ext_dense10_fold_blocked(a, totals);
    else
        cnn_ext_dense10_fold(a, totals);
    for (; k < L; k++)  /* the rows after the last quad are row-major in both layouts */
        for (int n = 0; n < 10; n++)
            totals[n] = CNN_EXT_MADD(x[k], weights[10 * k + n], totals[n]);
}
static inline void cnn_ext_dense10_forward(const double* x, ptrdiff_t L,
                                           const double* weights, double* totals) {
    cnn_ext_dense10_forward_impl(x, L, weights, totals, 0);
}
static inline void cnn_ext_dense10_forward_blocked(const double* x, ptrdiff_t L,
                                                   const double* blocked, double* totals) {
    cnn_ext_dense10_forward_impl(x, L, blocked, totals, 1);
}
/* One quad of the backward pass, blocked: cnn_ext_dense10_quad_backprop's sums and
   updates, lane by lane. T[s] and lrT[s] hold d_L_d_t (and learn_rate times it) of the
   nodes of vector s: t[s] in lanes 0 and 2, t[(s + 2) % 10] in lanes 1 and 3. Row r's
   dot product is ((A0 + A1) + (A2 + A3)) + (p8 + p9), A_l = W_(4+l) T_(4+l) + W_l T_l
   (one FMA), p_s = W_s T_s: for an even row, nodes l and 4 + l, and 8 and 9; for an odd
   row, 2 + l and 6 + l, and 0 and 1, as the row-major kernel pairs them. */
static inline __attribute__((always_inline))
cnn_ext_v4d cnn_ext_dense10_quad_backprop_blocked(const double* x, double* w,
                                                  const cnn_ext_v4d T[10],
                                                  const cnn_ext_v4d lrT[10]) {
    /* vector by vector, each stored as soon as it has been used: few live registers, as
       the 20 vectors of T and lrT take more than the AVX2 build's 16 */
    cnn_ext_v4d xs = cnn_ext_load(x), A[4];
    for (int l = 0; l < 4; l++) {
        cnn_ext_v4d Wa = CNN_EXT_LOAD4(w + 4 * l), Wb = CNN_EXT_LOAD4(w + 4 * (l + 4));
        A[l] = cnn_ext_fma(Wb, T[l + 4], cnn_ext_mul(Wa, T[l]));
        cnn_ext_store(w + 4 * l, cnn_ext_fnma(xs, lrT[l], Wa));
        cnn_ext_store(w + 4 * (l + 4), cnn_ext_fnma(xs, lrT[l + 4], Wb));
    }
    cnn_ext_v4d W8 = CNN_EXT_LOAD4(w + 32), W9 = CNN_EXT_LOAD4(w + 36);
    cnn_ext_v4d rest = cnn_ext_add(cnn_ext_mul(W8, T[8]), cnn_ext_mul(W9, T[9]));
    cnn_ext_store(w + 32, cnn_ext_fnma(xs, lrT[8], W8));
    cnn_ext_store(w + 36, cnn_ext_fnma(xs, lrT[9], W9));
    return cnn_ext_add(cnn_ext_add(cnn_ext_add(A[0], A[1]), cnn_ext_add(A[2], A[3])), rest);
}
/* Two quads at once, each vector of T and lrT read once for both: with 16 registers the
   20 vectors cannot all stay in registers, and one quad at a time read them (or the
   weights twice) from L1 more often than the loads can go (31 loads a quad in GCC's
   AVX2 code against 21). */
static inline __attribute__((always_inline))
void cnn_ext_dense10_quads2_backprop_blocked(const double* x, double* w,
                                             const cnn_ext_v4d T[10], const cnn_ext_v4d lrT[10],
                                             double* d_L_d_input) {
    cnn_ext_v4d xa = cnn_ext_load(x), xb = cnn_ext_load(x + 4), Aa[4], Ab[4];
    double* u = w + 40;
    for (int l = 0; l < 4; l++) {
        cnn_ext_v4d Wa = CNN_EXT_LOAD4(w + 4 * l), Ua = CNN_EXT_LOAD4(u + 4 * l);
        cnn_ext_v4d Wb = CNN_EXT_LOAD4(w + 4 * (l + 4)), Ub = CNN_EXT_LOAD4(u + 4 * (l + 4));
        cnn_ext_v4d Ta = T[l], Tb = T[l + 4], La = lrT[l], Lb = lrT[l + 4];
        CNN_EXT_IN_REGISTER(Wa); CNN_EXT_IN_REGISTER(Ua);
        CNN_EXT_IN_REGISTER(Wb); CNN_EXT_IN_REGISTER(Ub);
        Aa[l] = cnn_ext_fma(Wb, Tb, cnn_ext_mul(Wa, Ta));
        Ab[l] = cnn_ext_fma(Ub, Tb, cnn_ext_mul(Ua, Ta));
        cnn_ext_store(w + 4 * l, cnn_ext_fnma(xa, La, Wa));
        cnn_ext_store(u + 4 * l, cnn_ext_fnma(xb, La, Ua));
        cnn_ext_store(w + 4 * (l + 4), cnn_ext_fnma(xa, Lb, Wb));
        cnn_ext_store(u + 4 * (l + 4), cnn_ext_fnma(xb, Lb, Ub));
    }
    cnn_ext_v4d W8 = CNN_EXT_LOAD4(w + 32), W9 = CNN_EXT_LOAD4(w + 36);
    cnn_ext_v4d U8 = CNN_EXT_LOAD4(u + 32), U9 = CNN_EXT_LOAD4(u + 36);
    CNN_EXT_IN_REGISTER(W8); CNN_EXT_IN_REGISTER(W9);
    CNN_EXT_IN_REGISTER(U8); CNN_EXT_IN_REGISTER(U9);
    cnn_ext_v4d ra = cnn_ext_add(cnn_ext_mul(W8, T[8]), cnn_ext_mul(W9, T[9]));
    cnn_ext_v4d rb = cnn_ext_add(cnn_ext_mul(U8, T[8]), cnn_ext_mul(U9, T[9]));
    cnn_ext_store(w + 32, cnn_ext_fnma(xa, lrT[8], W8));
    cnn_ext_store(u + 32, cnn_ext_fnma(xb, lrT[8], U8));
    cnn_ext_store(w + 36, cnn_ext_fnma(xa, lrT[9], W9));
    cnn_ext_store(u + 36, cnn_ext_fnma(xb, lrT[9], U9));
    cnn_ext_store(d_L_d_input, cnn_ext_add(cnn_ext_add(cnn_ext_add(Aa[0], Aa[1]),
                                                       cnn_ext_add(Aa[2], Aa[3])), ra));
    cnn_ext_store(d_L_d_input + 4, cnn_ext_add(cnn_ext_add(cnn_ext_add(Ab[0], Ab[1]),
                                                           cnn_ext_add(Ab[2], Ab[3])), rb));
}
/* cnn_ext_dense10_backprop on blocked weights: the same d_L_d_input and updated weights,
   bit for bit */
static inline void cnn_ext_dense10_backprop_blocked(const double* x, ptrdiff_t L,
                                                    double* blocked, const double* t,
                                                    double learn_rate, double* d_L_d_input) {
    cnn_ext_v4d T[10], lrT[10];
    for (int s = 0; s < 10; s++) {
        T[s] = cnn_ext_setr(t[s], t[(s + 2) % 10], t[s], t[(s + 2) % 10]);
        lrT[s] = cnn_ext_mul(cnn_ext_set1(learn_rate), T[s]);
    }
    ptrdiff_t k = 0;
    for (; k + 8 <= L; k += 8)
        cnn_ext_dense10_quads2_backprop_blocked(x + k, blocked + 10 * k, T, lrT, d_L_d_input + k);
    for (; k + 4 <= L; k += 4)
        cnn_ext_store(d_L_d_input + k,
                      cnn_ext_dense10_quad_backprop_blocked(x + k, blocked + 10 * k, T, lrT));
    cnn_ext_dense10_backprop_rows(x, k, L, blocked, t, learn_rate, d_L_d_input);
}
#else
static inline void cnn_ext_dense10_forward(const double* x, ptrdiff_t L,
                                           const double* weights, double* totals) {}
static inline void cnn_ext_dense10_backprop(const double* x, ptrdiff_t L, double* weights,
                                            const double* t, double learn_rate,
                                            double* d_L_d_input) {}
static inline void cnn_ext_dense10_forward_blocked(const double* x, ptrdiff_t L,
                                                   const double* blocked, double* totals) {}
static inline void cnn_ext_dense10_backprop_blocked(const double* x, ptrdiff_t L,
                                                    double* blocked, const double* t,
                                                    double learn_rate, double* d_L_d_input) {}
#endif

/* The quad-blocked layout of the weights, for chunks of training steps and batches of
   images in the x86 builds (_network.pxi converts the caller's (L, 10) array once per
   chunk or batch, and back). Quad q's 40 doubles stay where they were, at 40q, as ten
   vectors of four: vector s holds node s of
   rows 4q and 4q + 2 (lanes 0 and 2) and node (s + 2) % 10 of rows 4q + 1 and 4q + 3
   (lanes 1 and 3). Element (4q + r, n) is at 40q + 4s + r, s = n for even r and
   (n + 8) % 10 for odd r. The rotation of the odd rows follows the order of the
   row-major quad's sums, whose odd rows start two nodes later: each of the backward
   pass's sums then pairs the same vectors in every lane, the four rows' dot products
   come out vertically, and neither pass needs a shuffle (the blocked backward pass takes
   12-16% less time than the row-major one, bench/parts.py, Zen 4). Every weight meets the same operands in the same
   order as in the row-major kernels: the numbers are theirs, bit for bit. The rows left
   over after the last quad (L % 4) stay row-major. */
static inline ptrdiff_t cnn_ext_dense10_slot(ptrdiff_t r, ptrdiff_t n) {
    return (r & 1) ? (n + 8) % 10 : n;
}
/* weights (L, 10) row-major -> blocked (L * 10 doubles) */
static inline void cnn_ext_dense10_block(const double* weights, ptrdiff_t L, double* blocked) {
    ptrdiff_t q = 0;
    for (; 4 * q + 4 <= L; q++)
        for (ptrdiff_t r = 0; r < 4; r++)
            for (ptrdiff_t n = 0; n < 10; n++)
                blocked[40 * q + 4 * cnn_ext_dense10_slot(r, n) + r] = weights[40 * q + 10 * r + n];
    for (ptrdiff_t k = 40 * q; k < 10 * L; k++)
        blocked[k] = weights[k];
}
/* and back */
static inline void cnn_ext_dense10_unblock(const double* blocked, ptrdiff_t L, double* weights) {
    ptrdiff_t q = 0;
    for (; 4 * q + 4 <= L; q++)
        for (ptrdiff_t r = 0; r < 4; r++)
            for (ptrdiff_t n = 0; n < 10; n++)
                weights[40 * q + 10 * r + n] = blocked[40 * q + 4 * cnn_ext_dense10_slot(r, n) + r];
    for (ptrdiff_t k = 40 * q; k < 10 * L; k++)
        weights[k] = blocked[k];
}

#endif /* CNN_EXT_SOFTMAX_H */
