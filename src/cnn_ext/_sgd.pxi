# The SGD update of the conv filters, shared by Conv3x3's backprop and the fused steps.
# (The softmax layer updates its weights inside its backprop kernel, _softmax.pxi.)


from cnn_ext._kernel_headers cimport CNN_EXT_MADD


cdef void sgd_update_c(double* params, const double* grad, Py_ssize_t n,
                       double learn_rate) noexcept nogil:
    # params -= learn_rate * grad: rounded as NumPy rounds it in the portable build, in one
    # FMA in the vector builds (CNN_EXT_MADD, kernels/simd.h).
    cdef Py_ssize_t k
    for k in range(n):
        params[k] = CNN_EXT_MADD(-learn_rate, grad[k], params[k])
