# cython: language_level=3
"""Compiled kernels of :class:`cnn_ext.Softmax` (dense layer + softmax).

Forward shifts the totals by their maximum before ``exp``: no overflow for any finite
totals, and equal to the tutorial's unshifted formula within rounding where that one does
not overflow. Backprop is the Jacobian-vector product in O(nodes),
``d_L_d_t[k] = p[k] * (g[k] - sum_i g[i] p[i])``, which is what the tutorial's loop over
the non-zero entries of ``g`` adds up to; the input gradient uses the weights from
before the update, as the tutorial does.
"""
from libc.math cimport exp
from libc.string cimport memset


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


cdef void softmax_forward_c(const double* x, Py_ssize_t L, const double* weights,
                            const double* biases, Py_ssize_t nodes,
                            double* totals, double* out) noexcept nogil:
    cdef Py_ssize_t k, n
    cdef double xk
    cdef const double* wk
    memset(totals, 0, nodes * sizeof(double))
    # Row by row: the inner loop runs along a contiguous row of weights.
    for k in range(L):
        xk = x[k]
        wk = weights + k * nodes
        for n in range(nodes):
            totals[n] += xk * wk[n]
    for n in range(nodes):
        totals[n] = totals[n] + biases[n]
    softmax_probs_c(totals, nodes, out)


cdef void softmax_backprop_c(const double* x, Py_ssize_t L, double* weights,
                             double* biases, Py_ssize_t nodes, const double* totals,
                             const double* d_L_d_out, double learn_rate,
                             double* d_L_d_input, double* scratch) noexcept nogil:
    # scratch holds 2 * nodes doubles: the probabilities, then d_L_d_t.
    cdef Py_ssize_t k, n
    cdef double* p = scratch
    cdef double* d_L_d_t = scratch + nodes
    cdef double s = 0.0, acc, xk
    cdef double* wk
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
    for k in range(L):
        wk = weights + k * nodes
        xk = x[k]
        acc = 0.0
        for n in range(nodes):
            acc += wk[n] * d_L_d_t[n]
        d_L_d_input[k] = acc
        for n in range(nodes):
            wk[n] = wk[n] - learn_rate * (xk * d_L_d_t[n])
    for n in range(nodes):
        biases[n] = biases[n] - learn_rate * d_L_d_t[n]


def _check_dense(Py_ssize_t L, Py_ssize_t nodes, Py_ssize_t n_biases):
    if nodes < 1 or L < 1:
        raise ValueError(f"weights must be (input_len>=1, nodes>=1), got {(L, nodes)}")
    if n_biases != nodes:
        raise ValueError(f"biases must have {nodes} entries, got {n_biases}")


def softmax_forward(const double[::1] x, const double[:, ::1] weights,
                    const double[::1] biases, double[::1] totals, double[::1] out):
    """totals = x @ weights + biases; out = softmax(totals). x (L,), weights (L, nodes)."""
    cdef Py_ssize_t L = weights.shape[0], nodes = weights.shape[1]
    _check_dense(L, nodes, biases.shape[0])
    if x.shape[0] != L:
        raise ValueError(f"x must have {L} entries, got {x.shape[0]}")
    if totals.shape[0] != nodes or out.shape[0] != nodes:
        raise ValueError(f"totals and out must have {nodes} entries, "
                         f"got {totals.shape[0]} and {out.shape[0]}")
    with nogil:
        softmax_forward_c(&x[0], L, &weights[0, 0], &biases[0], nodes, &totals[0], &out[0])


def softmax_backprop(const double[::1] x, double[:, ::1] weights, double[::1] biases,
                     const double[::1] totals, const double[::1] d_L_d_out,
                     double learn_rate, double[::1] d_L_d_input, double[::1] scratch):
    """Update weights/biases in place and write the input gradient (L,) to d_L_d_input.

    x (L,) and totals (nodes,) are from the last forward; d_L_d_out (nodes,);
    scratch is work space of 2 * nodes doubles.
    """
    cdef Py_ssize_t L = weights.shape[0], nodes = weights.shape[1]
    _check_dense(L, nodes, biases.shape[0])
    if x.shape[0] != L or d_L_d_input.shape[0] != L:
        raise ValueError(f"x and d_L_d_input must have {L} entries, "
                         f"got {x.shape[0]} and {d_L_d_input.shape[0]}")
    if totals.shape[0] != nodes or d_L_d_out.shape[0] != nodes:
        raise ValueError(f"totals and d_L_d_out must have {nodes} entries, "
                         f"got {totals.shape[0]} and {d_L_d_out.shape[0]}")
    if scratch.shape[0] < 2 * nodes:
        raise ValueError(f"scratch must have at least {2 * nodes} entries, got {scratch.shape[0]}")
    with nogil:
        softmax_backprop_c(&x[0], L, &weights[0, 0], &biases[0], nodes, &totals[0],
                           &d_L_d_out[0], learn_rate, &d_L_d_input[0], &scratch[0])
