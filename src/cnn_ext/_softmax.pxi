# Kernels of Softmax (dense layer + softmax), included by _kernels_common.pxi.
# Arrays are C-contiguous float64: x (L,), weights (L, nodes), biases/totals/out (nodes,).
# The vector builds' kernels for ten nodes are in kernels/softmax.h.
from cnn_ext._kernel_headers cimport (CNN_EXT_MADD, CNN_EXT_V4D, cnn_ext_dense10_backprop,
                                      cnn_ext_dense10_forward, softmax_probs_c)
#
# Forward shifts the totals by their maximum before exp: no overflow for any finite
# totals, and equal to the tutorial's unshifted formula within rounding where that one
# does not overflow. Backprop is the Jacobian-vector product in O(nodes),
# d_L_d_t[k] = p[k] * (g[k] - sum_i g[i] p[i]), which is what the tutorial's loop over the
# non-zero entries of g adds up to; the input gradient uses the weights from before the
# update, as the tutorial does.


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
            # (x0 w0 + x1 w1) + (x2 w2 + x3 w3), each pair one FMA in the vector builds
            totals[n] = totals[n] + (CNN_EXT_MADD(x1, w0[nodes + n], x0 * w0[n])
                                     + CNN_EXT_MADD(x3, w0[3 * nodes + n], x2 * w0[2 * nodes + n]))
        k += 4
    while k < L:
        x0 = x[k]
        w0 = weights + k * nodes
        for n in range(nodes):
            totals[n] = CNN_EXT_MADD(x0, w0[n], totals[n])
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
            a0 = CNN_EXT_MADD(w0[n], t, a0)
            a1 = CNN_EXT_MADD(w0[nodes + n], t, a1)
            a2 = CNN_EXT_MADD(w0[2 * nodes + n], t, a2)
            a3 = CNN_EXT_MADD(w0[3 * nodes + n], t, a3)
        d_L_d_input[k] = a0
        d_L_d_input[k + 1] = a1
        d_L_d_input[k + 2] = a2
        d_L_d_input[k + 3] = a3
        k += 4
    while k < L:
        w0 = weights + k * nodes
        a0 = 0.0
        for n in range(nodes):
            a0 = CNN_EXT_MADD(w0[n], d_L_d_t[n], a0)
        d_L_d_input[k] = a0
        k += 1
    # The update, rounded as the tutorial's weights -= learn_rate * outer(x, d_L_d_t).
    for k in range(L):
        w0 = weights + k * nodes
        x0 = x[k]
        for n in range(nodes):
            w0[n] = CNN_EXT_MADD(-learn_rate, x0 * d_L_d_t[n], w0[n])


cdef bint softmax_d_totals_c(Py_ssize_t nodes, const double* totals, const double* probs,
                             const double* d_L_d_out, double* scratch) noexcept nogil:
    """d_L_d_t, the gradient with respect to the totals, into scratch[nodes:2 * nodes]; False,
    and nothing to learn, when d_L_d_out is all zeros. probs: softmax_probs_c of these totals
    if the caller has them (a fused step's forward pass: the same function of the same
    totals, so the same bits; it saves the step ten exp calls), or NULL, and then they are
    computed into scratch[:nodes]."""
    cdef Py_ssize_t n
    cdef const double* p = probs
    cdef double* d_L_d_t = scratch + nodes
    cdef double s = 0.0
    cdef bint any_nonzero = False
    for n in range(nodes):
        if d_L_d_out[n] != 0:
            any_nonzero = True
    if not any_nonzero:
        # The tutorial's loop skips zero entries: nothing to learn, zero input gradient.
        return False
    if p == NULL:
        softmax_probs_c(totals, nodes, scratch)
        p = scratch
    for n in range(nodes):
        if d_L_d_out[n] != 0:
            s = CNN_EXT_MADD(d_L_d_out[n], p[n], s)
    for n in range(nodes):
        d_L_d_t[n] = p[n] * (d_L_d_out[n] - s)
    return True


cdef inline void softmax_update_biases_c(double* biases, Py_ssize_t nodes, const double* d_L_d_t,
                                         double learn_rate) noexcept nogil:
    cdef Py_ssize_t n
    for n in range(nodes):
        biases[n] = CNN_EXT_MADD(-learn_rate, d_L_d_t[n], biases[n])


cdef void softmax_backprop_c(const double* x, Py_ssize_t L, double* weights,
                             double* biases, Py_ssize_t nodes, const double* totals,
                             const double* probs, const double* d_L_d_out, double learn_rate,
                             double* d_L_d_input, double* scratch) noexcept nogil:
    # scratch holds 2 * nodes doubles: the probabilities (unless probs, see
    # softmax_d_totals_c), then d_L_d_t.
    cdef double* d_L_d_t = scratch + nodes
    if not softmax_d_totals_c(nodes, totals, probs, d_L_d_out, scratch):
        memset(d_L_d_input, 0, L * sizeof(double))
        return
    if nodes == 10 and CNN_EXT_V4D:
        cnn_ext_dense10_backprop(x, L, weights, d_L_d_t, learn_rate, d_L_d_input)
    elif nodes == 10:  # constant loop bounds: unrolled, vectorised
        _dense_backprop(x, L, weights, 10, d_L_d_t, learn_rate, d_L_d_input)
    else:
        _dense_backprop(x, L, weights, nodes, d_L_d_t, learn_rate, d_L_d_input)
    softmax_update_biases_c(biases, nodes, d_L_d_t, learn_rate)


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
    arr_apart(&ta, "totals", &oa, "out")
    arr_apart(&ta, "totals", &xa, "x")
    arr_apart(&ta, "totals", &wa, "weights")
    arr_apart(&ta, "totals", &ba, "biases")
    arr_apart(&oa, "out", &xa, "x")
    arr_apart(&oa, "out", &wa, "weights")
    arr_apart(&oa, "out", &ba, "biases")
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
    # weights and biases are updated in place, d_L_d_input written: none may overlap
    # another argument (the update reads x and totals after d_L_d_input is written).
    arr_apart(&wa, "weights", &ba, "biases")
    arr_apart(&da, "d_L_d_input", &wa, "weights")
    arr_apart(&da, "d_L_d_input", &ba, "biases")
    arr_apart(&wa, "weights", &xa, "x")
    arr_apart(&wa, "weights", &ta, "totals")
    arr_apart(&wa, "weights", &ga, "d_L_d_out")
    arr_apart(&ba, "biases", &xa, "x")
    arr_apart(&ba, "biases", &ta, "totals")
    arr_apart(&ba, "biases", &ga, "d_L_d_out")
    arr_apart(&da, "d_L_d_input", &xa, "x")
    arr_apart(&da, "d_L_d_input", &ta, "totals")
    arr_apart(&da, "d_L_d_input", &ga, "d_L_d_out")
    cdef double small[2 * 64]  # the kernel's scratch; the heap only for more than 64 nodes
    cdef double* scratch = &small[0] if nodes <= 64 else <double*> malloc(2 * nodes * sizeof(double))
    if scratch == NULL:
        raise MemoryError()
    with nogil:
        softmax_backprop_c(xa.data, L, wa.data, ba.data, nodes, ta.data, NULL, ga.data, learn_rate,
                           da.data, scratch)
    if scratch != &small[0]:
        free(scratch)
    return d_L_d_input
