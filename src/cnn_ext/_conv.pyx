# cython: language_level=3
"""Compiled kernels of :class:`cnn_ext.Conv3x3` (valid 3x3 convolution, stride 1).

The Python wrappers check shapes (cheap integer compares) so that a wrong call raises
instead of reading out of bounds; the façade in :mod:`cnn_ext.conv` does the friendly
validation and dtype/layout conversion before it gets here.
"""
from libc.stdlib cimport free, malloc
from libc.string cimport memset


cdef void conv3x3_forward_c(const double* image, Py_ssize_t h, Py_ssize_t w,
                            const double* filters, Py_ssize_t nf,
                            double* out, double* work) noexcept nogil:
    # work: 9 * nf doubles, the filters transposed to (9, nf) so that the inner loop runs
    # over filters along contiguous memory and vectorises.
    cdef Py_ssize_t i, j, f, k
    cdef Py_ssize_t ow = w - 2
    cdef const double* x
    cdef double* o
    cdef double x0, x1, x2, x3, x4, x5, x6, x7, x8
    cdef double* t = work
    for f in range(nf):
        for k in range(9):
            t[k * nf + f] = filters[9 * f + k]
    for i in range(h - 2):
        for j in range(ow):
            x = image + i * w + j
            x0 = x[0]; x1 = x[1]; x2 = x[2]
            x3 = x[w]; x4 = x[w + 1]; x5 = x[w + 2]
            x6 = x[2 * w]; x7 = x[2 * w + 1]; x8 = x[2 * w + 2]
            o = out + (i * ow + j) * nf
            for f in range(nf):
                # Products summed in the order NumPy's pairwise sum uses for 9 contiguous
                # terms, so this equals the tutorial's np.sum(region * filters, axis=(1, 2))
                # bit for bit. Any fixed order makes identical regions give identical sums,
                # which the max-pool tie rule needs.
                o[f] = ((((x0 * t[f] + x1 * t[nf + f])
                          + (x2 * t[2 * nf + f] + x3 * t[3 * nf + f]))
                         + ((x4 * t[4 * nf + f] + x5 * t[5 * nf + f])
                            + (x6 * t[6 * nf + f] + x7 * t[7 * nf + f])))
                        + x8 * t[8 * nf + f])


cdef void conv3x3_filter_grad_c(const double* image, Py_ssize_t h, Py_ssize_t w,
                                const double* d_L_d_out, Py_ssize_t nf,
                                double* d_L_d_filters, double* work) noexcept nogil:
    # d_L_d_filters[f, a, b] = sum over (i, j) in row-major order of
    # d_L_d_out[i, j, f] * image[i + a, j + b]: the tutorial's accumulation order.
    # work: 9 * nf doubles, the gradient laid out (9, nf) so the inner loop vectorises.
    cdef Py_ssize_t i, j, f, k
    cdef Py_ssize_t ow = w - 2
    cdef const double* x
    cdef const double* d
    cdef double xk
    cdef double* g
    memset(work, 0, nf * 9 * sizeof(double))
    for i in range(h - 2):
        for j in range(ow):
            x = image + i * w + j
            d = d_L_d_out + (i * ow + j) * nf
            for k in range(9):
                xk = x[(k // 3) * w + k % 3]
                g = work + k * nf
                for f in range(nf):
                    g[f] += xk * d[f]
    for f in range(nf):
        for k in range(9):
            d_L_d_filters[9 * f + k] = work[k * nf + f]


cdef void sgd_update_c(double* params, const double* grad, Py_ssize_t n,
                       double learn_rate) noexcept nogil:
    # params -= learn_rate * grad, rounded as NumPy rounds it.
    cdef Py_ssize_t k
    for k in range(n):
        params[k] = params[k] - learn_rate * grad[k]


def conv3x3_forward(const double[:, ::1] image, const double[:, :, ::1] filters,
                    double[:, :, ::1] out):
    """out[i, j, f] = sum(image[i:i+3, j:j+3] * filters[f]).

    image (h, w), filters (nf, 3, 3), out (h-2, w-2, nf); all float64, C-contiguous.
    """
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], nf = filters.shape[0]
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3, got {h}x{w}")
    if filters.shape[1] != 3 or filters.shape[2] != 3 or nf < 1:
        raise ValueError(f"filters must be (nf>=1, 3, 3), got {(filters.shape[0], filters.shape[1], filters.shape[2])}")
    if out.shape[0] != h - 2 or out.shape[1] != w - 2 or out.shape[2] != nf:
        raise ValueError(f"out must be {(h - 2, w - 2, nf)}, got {(out.shape[0], out.shape[1], out.shape[2])}")
    cdef double* work = <double*> malloc(9 * nf * sizeof(double))
    if work == NULL:
        raise MemoryError()
    with nogil:
        conv3x3_forward_c(&image[0, 0], h, w, &filters[0, 0, 0], nf, &out[0, 0, 0], work)
    free(work)


def conv3x3_backprop(const double[:, ::1] image, const double[:, :, ::1] d_L_d_out,
                     double[:, :, ::1] filters, double learn_rate,
                     double[:, :, ::1] d_L_d_filters):
    """Filter gradient into ``d_L_d_filters`` (nf, 3, 3), then ``filters -= learn_rate * it``.

    image (h, w) is the last forward input, d_L_d_out (h-2, w-2, nf); float64, C order.
    """
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], nf = filters.shape[0]
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3, got {h}x{w}")
    if filters.shape[1] != 3 or filters.shape[2] != 3 or nf < 1:
        raise ValueError(f"filters must be (nf>=1, 3, 3), got {(filters.shape[0], filters.shape[1], filters.shape[2])}")
    if d_L_d_out.shape[0] != h - 2 or d_L_d_out.shape[1] != w - 2 or d_L_d_out.shape[2] != nf:
        raise ValueError(f"d_L_d_out must be {(h - 2, w - 2, nf)}, got {(d_L_d_out.shape[0], d_L_d_out.shape[1], d_L_d_out.shape[2])}")
    if (d_L_d_filters.shape[0], d_L_d_filters.shape[1], d_L_d_filters.shape[2]) != (nf, 3, 3):
        raise ValueError(f"d_L_d_filters must be {(nf, 3, 3)}, got {(d_L_d_filters.shape[0], d_L_d_filters.shape[1], d_L_d_filters.shape[2])}")
    cdef double* work = <double*> malloc(9 * nf * sizeof(double))
    if work == NULL:
        raise MemoryError()
    with nogil:
        conv3x3_filter_grad_c(&image[0, 0], h, w, &d_L_d_out[0, 0, 0], nf,
                              &d_L_d_filters[0, 0, 0], work)
        sgd_update_c(&filters[0, 0, 0], &d_L_d_filters[0, 0, 0], nf * 9, learn_rate)
    free(work)
