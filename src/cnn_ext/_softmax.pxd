# C-level kernels of the dense + softmax layer, for other Cython modules to cimport.
# Arrays are C-contiguous float64: x (L,), weights (L, nodes), biases/totals/out (nodes,).

cdef void softmax_probs_c(const double* totals, Py_ssize_t nodes, double* out) noexcept nogil

cdef void softmax_forward_c(const double* x, Py_ssize_t L, const double* weights,
                            const double* biases, Py_ssize_t nodes,
                            double* totals, double* out) noexcept nogil

cdef void softmax_backprop_c(const double* x, Py_ssize_t L, double* weights,
                             double* biases, Py_ssize_t nodes, const double* totals,
                             const double* d_L_d_out, double learn_rate,
                             double* d_L_d_input, double* scratch) noexcept nogil
