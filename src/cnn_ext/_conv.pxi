# Kernels of Conv3x3 (valid 3x3 convolution, stride 1), included by _kernels_common.pxi.
# Arrays are C-contiguous float64: image (h, w), filters (nf, 3, 3), out (h-2, w-2, nf).
# The vector builds' kernels are in kernels/conv.h.
from cnn_ext._kernel_headers cimport (CNN_EXT_MADD, CNN_EXT_V4D, cnn_ext_conv_forward_v4,
                                      cnn_ext_filter_grad_block4, cnn_ext_filter_grad_v4,
                                      transpose_filters)


cdef inline bint _vector_conv(Py_ssize_t nf) noexcept nogil:
    # The AVX2 build's vector kernels take the filters four at a time.
    return CNN_EXT_V4D and nf % 4 == 0


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
                if CNN_EXT_V4D:
                    # The vector builds' chain of FMAs in tap order (kernels/conv.h), for
                    # filter counts their vector kernels leave: an output's numbers do not
                    # depend on how many filters there are.
                    o[f] = CNN_EXT_MADD(x8, t[8 * nf + f], CNN_EXT_MADD(x7, t[7 * nf + f],
                           CNN_EXT_MADD(x6, t[6 * nf + f], CNN_EXT_MADD(x5, t[5 * nf + f],
                           CNN_EXT_MADD(x4, t[4 * nf + f], CNN_EXT_MADD(x3, t[3 * nf + f],
                           CNN_EXT_MADD(x2, t[2 * nf + f], CNN_EXT_MADD(x1, t[nf + f],
                           CNN_EXT_MADD(x0, t[f], 0.0)))))))))
                else:
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
    if _vector_conv(nf):
        transpose_filters(filters, nf, work)
        cnn_ext_conv_forward_v4(image, h, w, work, nf, out)
    # nf == 8 (the tutorial's network) gets a copy with constant loop bounds: unrolled, vectorised.
    elif nf == 8:
        _conv3x3_forward_c_impl(image, h, w, filters, 8, out, work)
    else:
        _conv3x3_forward_c_impl(image, h, w, filters, nf, out, work)


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
    if _vector_conv(nf):
        cnn_ext_filter_grad_v4(image, h, w, d_L_d_out, NULL, nf, d_L_d_filters)
        return
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
                        acc = CNN_EXT_MADD(x[j], d[j * nf], acc)
                d_L_d_filters[9 * f + 3 * a + b] = acc


def conv3x3_forward(image, filters, out=None):
    """out[i, j, f] = sum(image[i:i+3, j:j+3] * filters[f]); returns out.

    image (h, w), filters (nf, 3, 3), out (h-2, w-2, nf), allocated if None; all float64,
    C-contiguous.
    """
    cdef Arr im, fi, o
    as_arr(image, 2, False, "image", &im)
    as_arr(filters, 3, False, "filters", &fi)
    cdef Py_ssize_t h = im.shape[0], w = im.shape[1], nf = fi.shape[0]
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3, got {h}x{w}")
    if fi.shape[1] != 3 or fi.shape[2] != 3 or nf < 1:
        raise ValueError(f"filters must be (nf>=1, 3, 3), got {(fi.shape[0], fi.shape[1], fi.shape[2])}")
    if out is None:
        out = new_f64(3, h - 2, w - 2, nf)
    as_arr(out, 3, True, "out", &o)
    if o.shape[0] != h - 2 or o.shape[1] != w - 2 or o.shape[2] != nf:
        raise ValueError(f"out must be {(h - 2, w - 2, nf)}, got {(o.shape[0], o.shape[1], o.shape[2])}")
    arr_apart(&o, "out", &im, "image")
    arr_apart(&o, "out", &fi, "filters")
    cdef double small[9 * 32]  # the transposed filters; the heap only for more than 32
    cdef double* work = &small[0] if nf <= 32 else <double*> malloc(9 * nf * sizeof(double))
    if work == NULL:
        raise MemoryError()
    with nogil:
        conv3x3_forward_c(im.data, h, w, fi.data, nf, o.data, work)
    if work != &small[0]:
        free(work)
    return out


def conv3x3_backprop(image, d_L_d_out, filters, double learn_rate):
    """The filter gradient, applied in place: ``filters -= learn_rate * d_L_d_filters``.

    image (h, w) is the last forward input, d_L_d_out (h-2, w-2, nf); float64, C order.
    """
    cdef Arr im, d, fi
    as_arr(image, 2, False, "image", &im)
    as_arr(d_L_d_out, 3, False, "d_L_d_out", &d)
    as_arr(filters, 3, True, "filters", &fi)
    cdef Py_ssize_t h = im.shape[0], w = im.shape[1], nf = fi.shape[0]
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3, got {h}x{w}")
    if fi.shape[1] != 3 or fi.shape[2] != 3 or nf < 1:
        raise ValueError(f"filters must be (nf>=1, 3, 3), got {(fi.shape[0], fi.shape[1], fi.shape[2])}")
    if d.shape[0] != h - 2 or d.shape[1] != w - 2 or d.shape[2] != nf:
        raise ValueError(f"d_L_d_out must be {(h - 2, w - 2, nf)}, got {(d.shape[0], d.shape[1], d.shape[2])}")
    arr_apart(&fi, "filters", &im, "image")
    arr_apart(&fi, "filters", &d, "d_L_d_out")
    cdef double small[9 * 32]
    cdef double* d_L_d_filters = &small[0] if nf <= 32 else <double*> malloc(9 * nf * sizeof(double))
    if d_L_d_filters == NULL:
        raise MemoryError()
    with nogil:
        conv3x3_filter_grad_c(im.data, h, w, d.data, nf, d_L_d_filters)
        sgd_update_c(fi.data, d_L_d_filters, nf * 9, learn_rate)
    if d_L_d_filters != &small[0]:
        free(d_L_d_filters)
