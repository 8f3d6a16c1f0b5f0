# C-level kernels of the 3x3 convolution, for other Cython modules to cimport.
# Arrays are C-contiguous float64: image (h, w), filters (nf, 3, 3), out (h-2, w-2, nf);
# work is scratch space of 9 * nf doubles.

cdef void conv3x3_forward_c(const double* image, Py_ssize_t h, Py_ssize_t w,
                            const double* filters, Py_ssize_t nf,
                            double* out, double* work) noexcept nogil

cdef void conv3x3_filter_grad_c(const double* image, Py_ssize_t h, Py_ssize_t w,
                                const double* d_L_d_out, Py_ssize_t nf,
                                double* d_L_d_filters, double* work) noexcept nogil

cdef void sgd_update_c(double* params, const double* grad, Py_ssize_t n,
                       double learn_rate) noexcept nogil
