# The SGD update of the conv filters, shared by Conv3x3's backprop and the fused steps.
# (The softmax layer updates its weights inside its backprop kernel, _softmax.pxi.)


cdef void sgd_update_c(double* params, const double* grad, Py_ssize_t n,
                       double learn_rate) noexcept nogil:
    # params -= learn_rate * grad, rounded as NumPy rounds it in the portable build (the
    # AVX2 build may fuse it into one FMA: setup.py).
    cdef Py_ssize_t k
    for k in range(n):
        params[k] = params[k] - learn_rate * grad[k]
