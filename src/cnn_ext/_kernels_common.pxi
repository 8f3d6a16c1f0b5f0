# The body shared by _kernels.pyx and _kernels_avx2.pyx.
from cython.parallel cimport prange, threadid
from libc.math cimport exp, fabs, log, INFINITY
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

cimport cython
cimport numpy as cnp
import numpy as _np

cnp.import_array()

cdef extern from *:
    """
    /* The AVX2 build (and any build for a target with AVX2 and FMA) hand-vectorises the
       loops that the auto-vectoriser handles badly, with GCC/Clang 4-wide float64 vector
       extensions and a few intrinsics. Every output runs the same instructions, so equal
       inputs give bit-equal outputs. Elsewhere CNN_EXT_V4D is 0 and the plain loops run. */
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX2__) && defined(__FMA__)
    #define CNN_EXT_V4D 1
    #include <immintrin.h>
    /* may_alias, as __m256d: the kernels read the same buffers as doubles and as masks */
    typedef double cnn_ext_v4d __attribute__((vector_size(32), aligned(8), may_alias));
    typedef long long cnn_ext_v4i __attribute__((vector_size(32), aligned(8), may_alias));
    /* a * b + c with one rounding, spelled out so that no kernel depends on contraction */
    static inline cnn_ext_v4d cnn_ext_fma(cnn_ext_v4d a, cnn_ext_v4d b, cnn_ext_v4d c) {
        return (cnn_ext_v4d)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    }
    /* c - a * b with one rounding */
    static inline cnn_ext_v4d cnn_ext_fnma(cnn_ext_v4d a, cnn_ext_v4d b, cnn_ext_v4d c) {
        return (cnn_ext_v4d)_mm256_fnmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    }
    static inline cnn_ext_v4d cnn_ext_bcast(const double* p) {
        return (cnn_ext_v4d)_mm256_broadcast_sd(p);
    }
    /* mask ? a : b, lane by lane; mask lanes are all ones or all zeros */
    static inline cnn_ext_v4d cnn_ext_select(cnn_ext_v4i mask, cnn_ext_v4d a, cnn_ext_v4d b) {
        return (cnn_ext_v4d)(((cnn_ext_v4i)a & mask) | ((cnn_ext_v4i)b & ~mask));
    }
    /* the maximum of m and b, where a NaN in either wins (np.amax's rule) */
    static inline cnn_ext_v4d cnn_ext_max_nan(cnn_ext_v4d m, cnn_ext_v4d b) {
        return cnn_ext_select((cnn_ext_v4i)((b > m) | (b != b)), b, m);
    }
    #else
    #define CNN_EXT_V4D 0
    #endif

    static int cnn_ext_cpu_has_avx2_fma(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    int cnn_ext_cpu_has_avx2_fma()
    bint CNN_EXT_V4D


def cpu_has_avx2_fma():
    """True when this CPU (and OS) can run the AVX2 + FMA build of the kernels."""
    return bool(cnn_ext_cpu_has_avx2_fma())


cdef struct Arr:
    double* data
    Py_ssize_t shape[3]


cdef int as_arr(object a, int ndim, bint writable, str name, Arr* out) except -1:
    """Check that ``a`` is a float64 C-contiguous ndarray of ``ndim`` dimensions (writable if
    asked) and record its address and shape: the few C-level checks of a typed memoryview,
    without building one (that costs about a microsecond per argument)."""
    cdef cnp.ndarray arr
    cdef int k
    if not isinstance(a, _np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_DOUBLE or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise ValueError(f"{name} must be float64 in native byte order, got dtype {arr.dtype}")
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {cnp.PyArray_NDIM(arr)}-D")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writable")
    out.data = <double*>cnp.PyArray_DATA(arr)
    for k in range(ndim):
        out.shape[k] = cnp.PyArray_DIM(arr, k)
    return 0


cdef object new_f64(int ndim, Py_ssize_t d0, Py_ssize_t d1=0, Py_ssize_t d2=0):
    """A new uninitialised C-contiguous float64 array of shape (d0, d1, d2)[:ndim]."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return cnp.PyArray_EMPTY(ndim, dims, cnp.NPY_DOUBLE, 0)


include "_conv.pxi"
include "_maxpool.pxi"
include "_softmax.pxi"
include "_network.pxi"
