# C-level kernels of 2x2 max pooling (stride 2), for other Cython modules to cimport.
# Arrays are C-contiguous float64: x (h, w, nf), out (h//2, w//2, nf).

cdef void maxpool2_forward_c(const double* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf,
                             double* out) noexcept nogil

cdef void maxpool2_backprop_c(const double* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf,
                              const double* d_L_d_out, double* d_L_d_input) noexcept nogil
