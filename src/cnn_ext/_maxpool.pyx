# cython: language_level=3
"""Compiled kernels of :class:`cnn_ext.MaxPool2` (2x2 windows, stride 2).

Backprop keeps the tutorial's tie rule: every position of a window that equals the
window's maximum receives the gradient (on MNIST most windows are ties). A NaN in a
window makes its maximum NaN (as np.amax) and then no position receives the gradient.
"""
from libc.string cimport memset


cdef inline double _max4(double a, double b, double c, double d) noexcept nogil:
    # NaN-propagating like np.amax: once m is NaN no comparison replaces it.
    cdef double m = a
    if b > m or b != b:
        m = b
    if c > m or c != c:
        m = c
    if d > m or d != d:
        m = d
    return m


cdef void maxpool2_forward_c(const double* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf,
                             double* out) noexcept nogil:
    cdef Py_ssize_t i, j, f
    cdef Py_ssize_t oh = h // 2, ow = w // 2, rs = w * nf
    cdef const double* p
    cdef double* o
    for i in range(oh):
        for j in range(ow):
            p = x + (2 * i) * rs + (2 * j) * nf
            o = out + (i * ow + j) * nf
            for f in range(nf):
                o[f] = _max4(p[f], p[nf + f], p[rs + f], p[rs + nf + f])


cdef void maxpool2_backprop_c(const double* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf,
                              const double* d_L_d_out, double* d_L_d_input) noexcept nogil:
    cdef Py_ssize_t i, j, f
    cdef Py_ssize_t oh = h // 2, ow = w // 2, rs = w * nf
    cdef const double* p
    cdef double* q
    cdef double m, d
    # Odd trailing rows/columns belong to no window and keep a zero gradient.
    memset(d_L_d_input, 0, h * w * nf * sizeof(double))
    for i in range(oh):
        for j in range(ow):
            p = x + (2 * i) * rs + (2 * j) * nf
            q = d_L_d_input + (2 * i) * rs + (2 * j) * nf
            for f in range(nf):
                m = _max4(p[f], p[nf + f], p[rs + f], p[rs + nf + f])
                d = d_L_d_out[(i * ow + j) * nf + f]
                if p[f] == m:
                    q[f] = d
                if p[nf + f] == m:
                    q[nf + f] = d
                if p[rs + f] == m:
                    q[rs + f] = d
                if p[rs + nf + f] == m:
                    q[rs + nf + f] = d


def _check(tuple got, tuple expected, str name):
    if got != expected:
        raise ValueError(f"{name} must have shape {expected}, got {got}")


def maxpool2_forward(const double[:, :, ::1] x, double[:, :, ::1] out):
    """out[i, j, f] = max(x[2i:2i+2, 2j:2j+2, f]); x (h, w, nf), out (h//2, w//2, nf)."""
    cdef Py_ssize_t h = x.shape[0], w = x.shape[1], nf = x.shape[2]
    if h < 2 or w < 2 or nf < 1:
        raise ValueError(f"x must be at least (2, 2, 1), got {(h, w, nf)}")
    _check((out.shape[0], out.shape[1], out.shape[2]), (h // 2, w // 2, nf), "out")
    with nogil:
        maxpool2_forward_c(&x[0, 0, 0], h, w, nf, &out[0, 0, 0])


def maxpool2_backprop(const double[:, :, ::1] x, const double[:, :, ::1] d_L_d_out,
                      double[:, :, ::1] d_L_d_input):
    """Route d_L_d_out (h//2, w//2, nf) to every max of x (h, w, nf) into d_L_d_input (h, w, nf)."""
    cdef Py_ssize_t h = x.shape[0], w = x.shape[1], nf = x.shape[2]
    if h < 2 or w < 2 or nf < 1:
        raise ValueError(f"x must be at least (2, 2, 1), got {(h, w, nf)}")
    _check((d_L_d_out.shape[0], d_L_d_out.shape[1], d_L_d_out.shape[2]), (h // 2, w // 2, nf), "d_L_d_out")
    _check((d_L_d_input.shape[0], d_L_d_input.shape[1], d_L_d_input.shape[2]), (h, w, nf), "d_L_d_input")
    with nogil:
        maxpool2_backprop_c(&x[0, 0, 0], h, w, nf, &d_L_d_out[0, 0, 0], &d_L_d_input[0, 0, 0])
