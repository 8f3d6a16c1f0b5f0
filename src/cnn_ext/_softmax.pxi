# Kernels of Softmax (dense layer + softmax), included by _kernels*.pyx.
# Arrays are C-contiguous float64: x (L,), weights (L, nodes), biases/totals/out (nodes,).
#
# Forward shifts the totals by their maximum before exp: no overflow for any finite
# totals, and equal to the tutorial's unshifted formula within rounding where that one
# does not overflow. Backprop is the Jacobian-vector product in O(nodes),
# d_L_d_t[k] = p[k] * (g[k] - sum_i g[i] p[i]), which is what the tutorial's loop over the
# non-zero entries of g adds up to; the input gradient uses the weights from before the
# update, as the tutorial does.


cdef void softmax_probs_c(const double* totals, Py_ssize_t nodes, double* out) noexcept nogil:
    cdef Py_ssize_t n
    cdef double m = totals[0], s = 0.0
    for n in range(1, nodes):
        if totals[n] > m:
            m = totals[n]
    for n in range(nodes):
        out[n] = exp(totals[n] - m)
        s += out[n]
    for n in range(nodes):
        out[n] = out[n] / s


cdef extern from *:
    """
    /* Ten nodes (MNIST's classes), four rows of weights at a time: 40 contiguous doubles
       are exactly ten 4-wide vectors, W0..W9, and every node's value sits at a fixed lane
       of a fixed vector, so the short rows need neither remainder loops nor gathers.
       Row r of the four is elements 10r..10r+9: W0, W1 and the low half of W2 hold row 0,
       the high half of W2, W3 and W4 row 1, and likewise W5..W9 rows 2 and 3. */
    #if CNN_EXT_V4D
    #define CNN_EXT_LOAD4(p) (*(const cnn_ext_v4d*)(p))
    /* {a, a, b, b} */
    static inline cnn_ext_v4d cnn_ext_pair(cnn_ext_v4d a, cnn_ext_v4d b) {
        return (cnn_ext_v4d)_mm256_blend_pd((__m256d)a, (__m256d)b, 0xC);
    }
    /* totals (10,) = x (L,) @ weights (L, 10), without the biases. Ten accumulators, one
       per vector, collect rows 4q + r; they are added as (rows 0 + 2) + (rows 1 + 3). */
    static inline void cnn_ext_dense10_forward(const double* x, Py_ssize_t L,
                                               const double* weights, double* totals) {
        cnn_ext_v4d a[10];
        for (int v = 0; v < 10; v++)
            a[v] = (cnn_ext_v4d){0, 0, 0, 0};
        Py_ssize_t k = 0;
        for (; k + 4 <= L; k += 4) {
            const double* w = weights + 10 * k;
            cnn_ext_v4d x0 = cnn_ext_bcast(x + k), x1 = cnn_ext_bcast(x + k + 1);
            cnn_ext_v4d x2 = cnn_ext_bcast(x + k + 2), x3 = cnn_ext_bcast(x + k + 3);
            cnn_ext_v4d X[10] = {x0, x0, cnn_ext_pair(x0, x1), x1, x1,
                                 x2, x2, cnn_ext_pair(x2, x3), x3, x3};
            for (int v = 0; v < 10; v++)
                a[v] = cnn_ext_fma(X[v], CNN_EXT_LOAD4(w + 4 * v), a[v]);
        }
        cnn_ext_v4d b0 = a[0] + a[5], b1 = a[1] + a[6], b2 = a[2] + a[7];
        cnn_ext_v4d b3 = a[3] + a[8], b4 = a[4] + a[9];
        /* rows 0 and 2 are in b0, b1 and the low half of b2; rows 1 and 3 in the rest */
        totals[0] = b0[0] + b2[2]; totals[1] = b0[1] + b2[3];
        totals[2] = b0[2] + b3[0]; totals[3] = b0[3] + b3[1];
        totals[4] = b1[0] + b3[2]; totals[5] = b1[1] + b3[3];
        totals[6] = b1[2] + b4[0]; totals[7] = b1[3] + b4[1];
        totals[8] = b2[0] + b4[2]; totals[9] = b2[1] + b4[3];
        for (; k < L; k++)
            for (int n = 0; n < 10; n++)
                totals[n] += x[k] * weights[10 * k + n];
    }
    /* d_L_d_input (L,) = weights @ d_L_d_t with the weights before the update, then
       weights -= outer(x, learn_rate * d_L_d_t), each weight in one FMA (the same update
       as the tutorial's up to the rounding of one product). A row's dot product is (lanes 0+1 + lanes 2+3) of the sum of its
       two full vectors, plus its two leftover lanes; hadd and two permutes turn the four
       rows' sums into one vector without leaving the registers. */
    static inline void cnn_ext_dense10_backprop(const double* x, Py_ssize_t L, double* weights,
                                                const double* t, double learn_rate,
                                                double* d_L_d_input) {
        cnn_ext_v4d T[5] = {{t[0], t[1], t[2], t[3]}, {t[4], t[5], t[6], t[7]},
                            {t[8], t[9], t[0], t[1]}, {t[2], t[3], t[4], t[5]},
                            {t[6], t[7], t[8], t[9]}};
        cnn_ext_v4d lrT[5];
        for (int v = 0; v < 5; v++)
            lrT[v] = learn_rate * T[v];
        Py_ssize_t k = 0;
        for (; k + 4 <= L; k += 4) {
            double* w = weights + 10 * k;
            cnn_ext_v4d x0 = cnn_ext_bcast(x + k), x1 = cnn_ext_bcast(x + k + 1);
            cnn_ext_v4d x2 = cnn_ext_bcast(x + k + 2), x3 = cnn_ext_bcast(x + k + 3);
            cnn_ext_v4d W0, W1;
            /* Each pair of vectors is read, used for the input gradient, updated and stored
               before the next is read: short live ranges, no spills (16 registers). */
    #define CNN_EXT_PAIR(P, va, vb, Ta, Tb, Xa, Xb) \
            W0 = CNN_EXT_LOAD4(w + 4 * (va)); W1 = CNN_EXT_LOAD4(w + 4 * (vb)); \
            __m256d P = (__m256d)cnn_ext_fma(W1, T[Tb], W0 * T[Ta]); \
            *(cnn_ext_v4d*)(w + 4 * (va)) = cnn_ext_fnma(Xa, lrT[Ta], W0); \
            *(cnn_ext_v4d*)(w + 4 * (vb)) = cnn_ext_fnma(Xb, lrT[Tb], W1);
            CNN_EXT_PAIR(A, 0, 1, 0, 1, x0, x0)
            CNN_EXT_PAIR(B, 3, 4, 3, 4, x1, x1)
            CNN_EXT_PAIR(C, 5, 6, 0, 1, x2, x2)
            CNN_EXT_PAIR(D, 8, 9, 3, 4, x3, x3)
    #undef CNN_EXT_PAIR
            /* leftover lanes: W2 * T2 holds rows 0 and 1, W7 * T2 rows 2 and 3 */
            W0 = CNN_EXT_LOAD4(w + 8); W1 = CNN_EXT_LOAD4(w + 28);
            __m256d rest = _mm256_hadd_pd((__m256d)(W0 * T[2]), (__m256d)(W1 * T[2]));
            *(cnn_ext_v4d*)(w + 8) = cnn_ext_fnma(cnn_ext_pair(x0, x1), lrT[2], W0);
            *(cnn_ext_v4d*)(w + 28) = cnn_ext_fnma(cnn_ext_pair(x2, x3), lrT[2], W1);
            __m256d AB = _mm256_hadd_pd(A, B), CD = _mm256_hadd_pd(C, D);
            __m256d full = _mm256_add_pd(_mm256_permute2f128_pd(AB, CD, 0x20),
                                         _mm256_permute2f128_pd(AB, CD, 0x31));
            rest = _mm256_permute4x64_pd(rest, 0xD8);  /* rows 0, 2, 1, 3 -> 0, 1, 2, 3 */
            _mm256_storeu_pd(d_L_d_input + k, _mm256_add_pd(full, rest));
        }
        for (; k < L; k++) {
            double* w = weights + 10 * k;
            double acc = 0.0;
            for (int n = 0; n < 10; n++)
                acc += w[n] * t[n];
            d_L_d_input[k] = acc;
            for (int n = 0; n < 10; n++)
                w[n] = w[n] - learn_rate * (x[k] * t[n]);
        }
    }
    #else
    static inline void cnn_ext_dense10_forward(const double* x, Py_ssize_t L,
                                               const double* weights, double* totals) {}
    static inline void cnn_ext_dense10_backprop(const double* x, Py_ssize_t L, double* weights,
                                                const double* t, double learn_rate,
                                                double* d_L_d_input) {}
    #endif
    """
    void cnn_ext_dense10_forward(const double* x, Py_ssize_t L, const double* weights,
                                 double* totals) noexcept nogil
    void cnn_ext_dense10_backprop(const double* x, Py_ssize_t L, double* weights,
                                  const double* t, double learn_rate,
                                  double* d_L_d_input) noexcept nogil


cdef inline void _dense_forward(const double* x, Py_ssize_t L, const double* weights,
                                Py_ssize_t nodes, double* totals) noexcept nogil:
    # totals = x @ weights, four rows of weights per pass: the inner loop runs along
    # contiguous rows and each total is loaded and stored once per four rows.
    cdef Py_ssize_t k = 0, n
    cdef double x0, x1, x2, x3
    cdef const double* w0
    memset(totals, 0, nodes * sizeof(double))
    while k + 4 <= L:
        x0 = x[k]; x1 = x[k + 1]; x2 = x[k + 2]; x3 = x[k + 3]
        w0 = weights + k * nodes
        for n in range(nodes):
            totals[n] += (x0 * w0[n] + x1 * w0[nodes + n]) + (x2 * w0[2 * nodes + n] + x3 * w0[3 * nodes + n])
        k += 4
    while k < L:
        x0 = x[k]
        w0 = weights + k * nodes
        for n in range(nodes):
            totals[n] += x0 * w0[n]
        k += 1


cdef void softmax_forward_c(const double* x, Py_ssize_t L, const double* weights,
                            const double* biases, Py_ssize_t nodes,
                            double* totals, double* out) noexcept nogil:
    cdef Py_ssize_t n
    if nodes == 10 and CNN_EXT_V4D:
        cnn_ext_dense10_forward(x, L, weights, totals)
    elif nodes == 10:  # constant loop bounds: unrolled, vectorised
        _dense_forward(x, L, weights, 10, totals)
    else:
        _dense_forward(x, L, weights, nodes, totals)
    for n in range(nodes):
        totals[n] = totals[n] + biases[n]
    softmax_probs_c(totals, nodes, out)


cdef inline void _dense_backprop(const double* x, Py_ssize_t L, double* weights,
                                 Py_ssize_t nodes, const double* d_L_d_t, double learn_rate,
                                 double* d_L_d_input) noexcept nogil:
    cdef Py_ssize_t k = 0, n
    cdef double a0, a1, a2, a3, t, x0
    cdef double* w0
    # Input gradient with the weights from before the update, four rows at a time so
    # that four independent dot products hide the latency of the additions.
    while k + 4 <= L:
        w0 = weights + k * nodes
        a0 = a1 = a2 = a3 = 0.0
        for n in range(nodes):
            t = d_L_d_t[n]
            a0 += w0[n] * t
            a1 += w0[nodes + n] * t
            a2 += w0[2 * nodes + n] * t
            a3 += w0[3 * nodes + n] * t
        d_L_d_input[k] = a0
        d_L_d_input[k + 1] = a1
        d_L_d_input[k + 2] = a2
        d_L_d_input[k + 3] = a3
        k += 4
    while k < L:
        w0 = weights + k * nodes
        a0 = 0.0
        for n in range(nodes):
            a0 += w0[n] * d_L_d_t[n]
        d_L_d_input[k] = a0
        k += 1
    # The update, rounded as the tutorial's weights -= learn_rate * outer(x, d_L_d_t).
    for k in range(L):
        w0 = weights + k * nodes
        x0 = x[k]
        for n in range(nodes):
            w0[n] = w0[n] - learn_rate * (x0 * d_L_d_t[n])


cdef void softmax_backprop_c(const double* x, Py_ssize_t L, double* weights,
                             double* biases, Py_ssize_t nodes, const double* totals,
                             const double* d_L_d_out, double learn_rate,
                             double* d_L_d_input, double* scratch) noexcept nogil:
    # scratch holds 2 * nodes doubles: the probabilities, then d_L_d_t.
    cdef Py_ssize_t n
    cdef double* p = scratch
    cdef double* d_L_d_t = scratch + nodes
    cdef double s = 0.0
    cdef bint any_nonzero = False
    for n in range(nodes):
        if d_L_d_out[n] != 0:
            any_nonzero = True
    if not any_nonzero:
        # The tutorial's loop skips zero entries: nothing to learn, zero input gradient.
        memset(d_L_d_input, 0, L * sizeof(double))
        return
    softmax_probs_c(totals, nodes, p)
    for n in range(nodes):
        if d_L_d_out[n] != 0:
            s += d_L_d_out[n] * p[n]
    for n in range(nodes):
        d_L_d_t[n] = p[n] * (d_L_d_out[n] - s)
    if nodes == 10 and CNN_EXT_V4D:
        cnn_ext_dense10_backprop(x, L, weights, d_L_d_t, learn_rate, d_L_d_input)
    elif nodes == 10:  # constant loop bounds: unrolled, vectorised
        _dense_backprop(x, L, weights, 10, d_L_d_t, learn_rate, d_L_d_input)
    else:
        _dense_backprop(x, L, weights, nodes, d_L_d_t, learn_rate, d_L_d_input)
    for n in range(nodes):
        biases[n] = biases[n] - learn_rate * d_L_d_t[n]


cdef int _check_dense(Py_ssize_t L, Py_ssize_t nodes, Py_ssize_t n_biases) except -1:
    if nodes < 1 or L < 1:
        raise ValueError(f"weights must be (input_len>=1, nodes>=1), got {(L, nodes)}")
    if n_biases != nodes:
        raise ValueError(f"biases must have {nodes} entries, got {n_biases}")
    return 0


def softmax_forward(x, weights, biases, totals=None, out=None):
    """totals = x @ weights + biases; out = softmax(totals); returns (totals, out).

    x (L,), weights (L, nodes), biases, totals and out (nodes,); totals and out are
    allocated if None.
    """
    cdef Arr xa, wa, ba, ta, oa
    as_arr(x, 1, False, "x", &xa)
    as_arr(weights, 2, False, "weights", &wa)
    as_arr(biases, 1, False, "biases", &ba)
    cdef Py_ssize_t L = wa.shape[0], nodes = wa.shape[1]
    if totals is None:
        totals = new_f64(1, nodes)
    if out is None:
        out = new_f64(1, nodes)
    as_arr(totals, 1, True, "totals", &ta)
    as_arr(out, 1, True, "out", &oa)
    _check_dense(L, nodes, ba.shape[0])
    if xa.shape[0] != L:
        raise ValueError(f"x must have {L} entries, got {xa.shape[0]}")
    if ta.shape[0] != nodes or oa.shape[0] != nodes:
        raise ValueError(f"totals and out must have {nodes} entries, "
                         f"got {ta.shape[0]} and {oa.shape[0]}")
    with nogil:
        softmax_forward_c(xa.data, L, wa.data, ba.data, nodes, ta.data, oa.data)
    return totals, out


def softmax_backprop(x, weights, biases, totals, d_L_d_out, double learn_rate, d_L_d_input=None):
    """Update weights/biases in place and write the input gradient (L,) to d_L_d_input
    (allocated if None); returns d_L_d_input.

    x (L,) and totals (nodes,) are from the last forward; d_L_d_out (nodes,).
    """
    cdef Arr xa, wa, ba, ta, ga, da
    as_arr(x, 1, False, "x", &xa)
    as_arr(weights, 2, True, "weights", &wa)
    as_arr(biases, 1, True, "biases", &ba)
    as_arr(totals, 1, False, "totals", &ta)
    as_arr(d_L_d_out, 1, False, "d_L_d_out", &ga)
    if d_L_d_input is None:
        d_L_d_input = new_f64(1, wa.shape[0])
    as_arr(d_L_d_input, 1, True, "d_L_d_input", &da)
    cdef Py_ssize_t L = wa.shape[0], nodes = wa.shape[1]
    _check_dense(L, nodes, ba.shape[0])
    if xa.shape[0] != L or da.shape[0] != L:
        raise ValueError(f"x and d_L_d_input must have {L} entries, "
                         f"got {xa.shape[0]} and {da.shape[0]}")
    if ta.shape[0] != nodes or ga.shape[0] != nodes:
        raise ValueError(f"totals and d_L_d_out must have {nodes} entries, "
                         f"got {ta.shape[0]} and {ga.shape[0]}")
    cdef double small[2 * 64]  # the kernel's scratch; the heap only for more than 64 nodes
    cdef double* scratch = &small[0] if nodes <= 64 else <double*> malloc(2 * nodes * sizeof(double))
    if scratch == NULL:
        raise MemoryError()
    with nogil:
        softmax_backprop_c(xa.data, L, wa.data, ba.data, nodes, ta.data, ga.data, learn_rate,
                           da.data, scratch)
    if scratch != &small[0]:
        free(scratch)
    return d_L_d_input
