# Kernels of MaxPool2 (2x2 windows, stride 2), included by _kernels_common.pxi.
# Arrays are C-contiguous float64: x (h, w, nf), out (h//2, w//2, nf). The AVX2 build's
# vector kernels are in kernels/maxpool.h.
from cnn_ext._kernel_headers cimport CNN_EXT_V4D, cnn_ext_pool_backprop_v4, cnn_ext_pool_forward_v4
#
# Backprop keeps the tutorial's tie rule: every position of a window that equals the
# window's maximum receives the gradient (on MNIST most windows are ties). A NaN in a
# window makes its maximum NaN (as np.amax) and then no position receives the gradient.


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


cdef inline Py_ssize_t _vector_filters(Py_ssize_t nf) noexcept nogil:
    # How many filters (a multiple of 4) the vector helpers handle; the rest run scalar.
    return (nf // 4) * 4 if CNN_EXT_V4D else 0


cdef void maxpool2_forward_c(const double* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf,
                             double* out) noexcept nogil:
    cdef Py_ssize_t i, j, f
    cdef Py_ssize_t oh = h // 2, ow = w // 2, rs = w * nf, nv = _vector_filters(nf)
    cdef const double* p
    cdef double* o
    if nv:
        cnn_ext_pool_forward_v4(x, h, w, nf, nv, out)
    if nv == nf:
        return
    for i in range(oh):
        for j in range(ow):
            p = x + (2 * i) * rs + (2 * j) * nf
            o = out + (i * ow + j) * nf
            for f in range(nv, nf):
                o[f] = _max4(p[f], p[nf + f], p[rs + f], p[rs + nf + f])


cdef void maxpool2_backprop_c(const double* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf,
                              const double* d_L_d_out, double* d_L_d_input) noexcept nogil:
    cdef Py_ssize_t i, j, f
    cdef Py_ssize_t oh = h // 2, ow = w // 2, rs = w * nf, nv = _vector_filters(nf)
    cdef const double* p
    cdef double* q
    cdef const double* g
    cdef double m, d
    if nv:
        cnn_ext_pool_backprop_v4(x, h, w, nf, nv, d_L_d_out, d_L_d_input)
    if nv < nf:
        for i in range(oh):
            for j in range(ow):
                p = x + (2 * i) * rs + (2 * j) * nf
                q = d_L_d_input + (2 * i) * rs + (2 * j) * nf
                g = d_L_d_out + (i * ow + j) * nf
                for f in range(nv, nf):
                    m = _max4(p[f], p[nf + f], p[rs + f], p[rs + nf + f])
                    d = g[f]
                    q[f] = d if p[f] == m else 0.0
                    q[nf + f] = d if p[nf + f] == m else 0.0
                    q[rs + f] = d if p[rs + f] == m else 0.0
                    q[rs + nf + f] = d if p[rs + nf + f] == m else 0.0
    # Odd trailing rows/columns belong to no window and get a zero gradient.
    if h % 2:
        memset(d_L_d_input + (h - 1) * rs, 0, rs * sizeof(double))
    if w % 2:
        for i in range(2 * oh):
            memset(d_L_d_input + i * rs + (w - 1) * nf, 0, nf * sizeof(double))


def _check(tuple got, tuple expected, str name):
    if got != expected:
        raise ValueError(f"{name} must have shape {expected}, got {got}")


def maxpool2_forward(x, out=None):
    """out[i, j, f] = max(x[2i:2i+2, 2j:2j+2, f]); x (h, w, nf), out (h//2, w//2, nf),
    allocated if None; returns out."""
    cdef Arr a, o
    as_arr(x, 3, False, "x", &a)
    cdef Py_ssize_t h = a.shape[0], w = a.shape[1], nf = a.shape[2]
    if h < 2 or w < 2 or nf < 1:
        raise ValueError(f"x must be at least (2, 2, 1), got {(h, w, nf)}")
    if out is None:
        out = new_f64(3, h // 2, w // 2, nf)
    as_arr(out, 3, True, "out", &o)
    if o.shape[0] != h // 2 or o.shape[1] != w // 2 or o.shape[2] != nf:
        _check((o.shape[0], o.shape[1], o.shape[2]), (h // 2, w // 2, nf), "out")
    arr_apart(&o, "out", &a, "x")
    with nogil:
        maxpool2_forward_c(a.data, h, w, nf, o.data)
    return out


def maxpool2_backprop(x, d_L_d_out, d_L_d_input=None):
    """Route d_L_d_out (h//2, w//2, nf) to every max of x (h, w, nf) into d_L_d_input
    (h, w, nf), allocated if None; returns d_L_d_input."""
    cdef Arr a, d, q
    as_arr(x, 3, False, "x", &a)
    as_arr(d_L_d_out, 3, False, "d_L_d_out", &d)
    if d_L_d_input is None:
        d_L_d_input = new_f64(3, a.shape[0], a.shape[1], a.shape[2])
    as_arr(d_L_d_input, 3, True, "d_L_d_input", &q)
    cdef Py_ssize_t h = a.shape[0], w = a.shape[1], nf = a.shape[2]
    if h < 2 or w < 2 or nf < 1:
        raise ValueError(f"x must be at least (2, 2, 1), got {(h, w, nf)}")
    if d.shape[0] != h // 2 or d.shape[1] != w // 2 or d.shape[2] != nf:
        _check((d.shape[0], d.shape[1], d.shape[2]), (h // 2, w // 2, nf), "d_L_d_out")
    if q.shape[0] != h or q.shape[1] != w or q.shape[2] != nf:
        _check((q.shape[0], q.shape[1], q.shape[2]), (h, w, nf), "d_L_d_input")
    arr_apart(&q, "d_L_d_input", &a, "x")
    arr_apart(&q, "d_L_d_input", &d, "d_L_d_out")
    with nogil:
        maxpool2_backprop_c(a.data, h, w, nf, d.data, q.data)
    return d_L_d_input
