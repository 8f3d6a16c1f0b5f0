# The C side of the kernels: header-only C in src/cnn_ext/kernels/, declared here once and
# cimported by the .pxi files. Each header compiles on its own (C standard headers and
# <immintrin.h> only; tests/test_kernel_headers.py checks it with gcc and clang), so a C
# error is reported at the header's own line.
#
# The vector kernels (*_v4, dense10_*) exist in the vector builds (CNN_EXT_V4D is 1);
# elsewhere they are empty stand-ins that the callers never reach, because every call is
# behind a test of CNN_EXT_V4D, a compile-time constant.
from libc.stddef cimport ptrdiff_t


cdef extern from "cnn_ext/kernels/simd.h" nogil:
    bint CNN_EXT_V4D
    int cnn_ext_cpu_has_avx2_fma()
    int cnn_ext_cpu_has_avx512()
    int cnn_ext_cpu_has_neon()
    # a * b + c: one rounding in the vector builds, two in the portable build (simd.h)
    double CNN_EXT_MADD(double a, double b, double c)


cdef extern from "cnn_ext/kernels/conv.h" nogil:
    void cnn_ext_conv_forward_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                 const double* t, ptrdiff_t nf, double* out)
    void cnn_ext_filter_grad_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                const double* g, const void* mask, ptrdiff_t nf,
                                double* d_L_d_filters)
    void cnn_ext_filter_grad_block4(const double* image, ptrdiff_t h, ptrdiff_t w,
                                    const double* d_L_d_out, ptrdiff_t nf, ptrdiff_t f0,
                                    double* d_L_d_filters)


cdef extern from "cnn_ext/kernels/network.h" nogil:
    # the scalar pieces shared with cnn_ext_train_step10, under the .pxi files' names
    void transpose_filters "cnn_ext_transpose_filters"(const double* filters, ptrdiff_t nf,
                                                       double* t)
    bint filters_bounded "cnn_ext_filters_bounded"(const double* filters, ptrdiff_t n)
    void softmax_probs_c "cnn_ext_softmax_probs"(const double* totals, ptrdiff_t n,
                                                  double* probs)
    ptrdiff_t argmax "cnn_ext_argmax"(const double* p, ptrdiff_t n)
    bint CNN_EXT_ONE_LOOP_FORWARD  # the x86 vector builds (AVX2, AVX-512)
    ptrdiff_t cnn_ext_normalise_v4(const unsigned char* image, ptrdiff_t n, double* x)
    void cnn_ext_prefetch_bytes(const void* p, ptrdiff_t n)
    double* cnn_ext_aligned_copy(const double* src, ptrdiff_t n, void** raw)
    double* cnn_ext_aligned_alloc(ptrdiff_t n, void** raw)
    void cnn_ext_conv_pool_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                              const double* t, ptrdiff_t nf, double* pool, void* mask,
                              int nan_free)
    void cnn_ext_forward10_v4(const double* image, ptrdiff_t h, ptrdiff_t w,
                              const double* t, ptrdiff_t nf, double* pool, void* mask,
                              const double* weights, double* totals, int nan_free,
                              int blocked)
    ctypedef struct cnn_ext_step_buffers:
        double* x
        double* t
        double* pool
        double* mask
        double* d_pool
        double* d_filt
        double* totals
        double* probs
    double cnn_ext_train_step10(const unsigned char* image, ptrdiff_t label, ptrdiff_t h,
                                ptrdiff_t w, double* filters, ptrdiff_t nf, double* weights,
                                double* biases, double learn_rate,
                                const cnn_ext_step_buffers* b, unsigned char* correct,
                                int blocked)


cdef extern from "cnn_ext/kernels/maxpool.h" nogil:
    void cnn_ext_pool_forward_v4(const double* x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t nf,
                                 ptrdiff_t nv, double* out)
    void cnn_ext_pool_backprop_v4(const double* x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t nf,
                                  ptrdiff_t nv, const double* g, double* q)


cdef extern from "cnn_ext/kernels/softmax.h" nogil:
    void cnn_ext_dense10_forward(const double* x, ptrdiff_t L, const double* weights,
                                 double* totals)
    void cnn_ext_dense10_backprop(const double* x, ptrdiff_t L, double* weights,
                                  const double* t, double learn_rate, double* d_L_d_input)
    void cnn_ext_dense10_block(const double* weights, ptrdiff_t L, double* blocked)
    void cnn_ext_dense10_unblock(const double* blocked, ptrdiff_t L, double* weights)


cdef extern from "cnn_ext/kernels/openmp.h" nogil:
    int CNN_EXT_OPENMP
    int omp_get_max_threads()


cdef extern from "cnn_ext/kernels/build_info.h":
    const char* CNN_EXT_CFLAGS
    const char* CNN_EXT_COMPILER
    const char* cnn_ext_simd()
