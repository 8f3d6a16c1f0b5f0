# Kernels of Conv3x3 (valid 3x3 convolution, stride 1), included by _kernels*.pyx.
# Arrays are C-contiguous float64: image (h, w), filters (nf, 3, 3), out (h-2, w-2, nf).


cdef inline void _conv3x3_forward_c_impl(const double* image, Py_ssize_t h, Py_ssize_t w,
                            const double* filters, Py_ssize_t nf,
                            double* out, double* work) noexcept nogil:
    # The filters are transposed into work as (9, nf), so that the inner loop runs over
    # filters along contiguous memory and vectorises; each output position runs the same
    # instructions, so identical 3x3 regions give identical sums (max-pool ties).
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
                # The order of NumPy's pairwise sum of 9 contiguous terms: without FMA
                # contraction this equals the tutorial's np.sum(region * filters, axis=(1, 2))
                # bit for bit.
                o[f] = ((((x0 * t[f] + x1 * t[nf + f])
                          + (x2 * t[2 * nf + f] + x3 * t[3 * nf + f]))
                         + ((x4 * t[4 * nf + f] + x5 * t[5 * nf + f])
                            + (x6 * t[6 * nf + f] + x7 * t[7 * nf + f])))
                        + x8 * t[8 * nf + f])


cdef void conv3x3_forward_c(const double* image, Py_ssize_t h, Py_ssize_t w,
                            const double* filters, Py_ssize_t nf,
                            double* out, double* work) noexcept nogil:
    # nf == 8 (the tutorial's network) gets a copy with constant loop bounds: unrolled, vectorised.
    if nf == 8:
        _conv3x3_forward_c_impl(image, h, w, filters, 8, out, work)
    else:
        _conv3x3_forward_c_impl(image, h, w, filters, nf, out, work)


cdef extern from *:
    """
    /* Gradient of filters f0..f0+3, one filter row a at a time: three 4-wide accumulators
       (one per filter column b) stay in registers while the loop streams over all output
       positions in row-major order, the tutorial's accumulation order. Written with GCC/
       Clang vector extensions because the auto-vectoriser turns this loop nest into a
       shuffle-heavy reduction over positions instead; plain C elsewhere. */
    static inline void cnn_ext_filter_grad_block4(const double* image, Py_ssize_t h, Py_ssize_t w,
                                                  const double* d_L_d_out, Py_ssize_t nf,
                                                  Py_ssize_t f0, double* d_L_d_filters) {
        Py_ssize_t ow = w - 2;
        for (Py_ssize_t a = 0; a < 3; a++) {
    #if CNN_EXT_V4D
            cnn_ext_v4d acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0}, acc2 = {0, 0, 0, 0};
            for (Py_ssize_t i = 0; i < h - 2; i++) {
                const double* x = image + (i + a) * w;
                const double* d = d_L_d_out + i * ow * nf + f0;
                for (Py_ssize_t j = 0; j < ow; j++, d += nf) {
                    cnn_ext_v4d dv = *(const cnn_ext_v4d*)d;
                    acc0 += x[j] * dv;
                    acc1 += x[j + 1] * dv;
                    acc2 += x[j + 2] * dv;
                }
            }
    #else
            double acc0[4] = {0}, acc1[4] = {0}, acc2[4] = {0};
            for (Py_ssize_t i = 0; i < h - 2; i++) {
                const double* x = image + (i + a) * w;
                const double* d = d_L_d_out + i * ow * nf + f0;
                for (Py_ssize_t j = 0; j < ow; j++, d += nf) {
                    for (int q = 0; q < 4; q++) {
                        acc0[q] += x[j] * d[q];
                        acc1[q] += x[j + 1] * d[q];
                        acc2[q] += x[j + 2] * d[q];
                    }
                }
            }
    #endif
            for (int q = 0; q < 4; q++) {
                d_L_d_filters[9 * (f0 + q) + 3 * a] = acc0[q];
                d_L_d_filters[9 * (f0 + q) + 3 * a + 1] = acc1[q];
                d_L_d_filters[9 * (f0 + q) + 3 * a + 2] = acc2[q];
            }
        }
    }
    """
    void cnn_ext_filter_grad_block4(const double* image, Py_ssize_t h, Py_ssize_t w,
                                    const double* d_L_d_out, Py_ssize_t nf, Py_ssize_t f0,
                                    double* d_L_d_filters) noexcept nogil


cdef void conv3x3_filter_grad_c(const double* image, Py_ssize_t h, Py_ssize_t w,
                                const double* d_L_d_out, Py_ssize_t nf,
                                double* d_L_d_filters) noexcept nogil:
    # d_L_d_filters[f, a, b] = sum over (i, j) in row-major order of
    # d_L_d_out[i, j, f] * image[i + a, j + b]: the tutorial's accumulation order.
    cdef Py_ssize_t i, j, f, a, b
    cdef Py_ssize_t ow = w - 2, f0 = 0
    cdef const double* x
    cdef const double* d
    cdef double acc
    while f0 + 4 <= nf:
        cnn_ext_filter_grad_block4(image, h, w, d_L_d_out, nf, f0, d_L_d_filters)
        f0 += 4
    for f in range(f0, nf):  # the filters left over from blocks of four
        for a in range(3):
            for b in range(3):
                acc = 0.0
                for i in range(h - 2):
                    x = image + (i + a) * w + b
                    d = d_L_d_out + i * ow * nf + f
                    for j in range(ow):
                        acc += x[j] * d[j * nf]
                d_L_d_filters[9 * f + 3 * a + b] = acc


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
                     double[:, :, ::1] filters, double learn_rate):
    """The filter gradient, applied in place: ``filters -= learn_rate * d_L_d_filters``.

    image (h, w) is the last forward input, d_L_d_out (h-2, w-2, nf); float64, C order.
    """
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], nf = filters.shape[0]
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3, got {h}x{w}")
    if filters.shape[1] != 3 or filters.shape[2] != 3 or nf < 1:
        raise ValueError(f"filters must be (nf>=1, 3, 3), got {(filters.shape[0], filters.shape[1], filters.shape[2])}")
    if d_L_d_out.shape[0] != h - 2 or d_L_d_out.shape[1] != w - 2 or d_L_d_out.shape[2] != nf:
        raise ValueError(f"d_L_d_out must be {(h - 2, w - 2, nf)}, got {(d_L_d_out.shape[0], d_L_d_out.shape[1], d_L_d_out.shape[2])}")
    cdef double* d_L_d_filters = <double*> malloc(9 * nf * sizeof(double))
    if d_L_d_filters == NULL:
        raise MemoryError()
    with nogil:
        conv3x3_filter_grad_c(&image[0, 0], h, w, &d_L_d_out[0, 0, 0], nf, d_L_d_filters)
        sgd_update_c(&filters[0, 0, 0], d_L_d_filters, nf * 9, learn_rate)
    free(d_L_d_filters)
