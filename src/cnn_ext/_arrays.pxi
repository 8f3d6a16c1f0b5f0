# The layer kernels' array check (the rule is in _kernels.pyx): as_arr takes an ndarray's
# address and shape after the few checks a typed memoryview would make, without building
# one.

cdef struct Arr:
    double* data
    Py_ssize_t shape[3]
    Py_ssize_t nbytes  # the extent in memory, for apart()


cdef int as_arr(object a, int ndim, bint writable, str name, Arr* out) except -1:
    """Check that ``a`` is a float64 C-contiguous ndarray of ``ndim`` dimensions (writable if
    asked) and record its address and shape: the few C-level checks of a typed memoryview,
    without building one (that costs about 1,600 instructions more per argument)."""
    cdef cnp.ndarray arr
    cdef int k
    # cnp.ndarray, not _np.ndarray: a C type check instead of two dictionary lookups
    # (about 310 of the ~400 instructions this check took).
    if not isinstance(a, cnp.ndarray):
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
    out.nbytes = cnp.PyArray_NBYTES(arr)
    for k in range(ndim):
        out.shape[k] = cnp.PyArray_DIM(arr, k)
    return 0


cdef object new_f64(int ndim, Py_ssize_t d0, Py_ssize_t d1=0, Py_ssize_t d2=0):
    """A new uninitialised C-contiguous float64 array of shape (d0, d1, d2)[:ndim]."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return cnp.PyArray_EMPTY(ndim, dims, cnp.NPY_DOUBLE, 0)


cdef int apart(const void* written, Py_ssize_t written_bytes, str written_name,
               const void* other, Py_ssize_t other_bytes, str other_name) except -1:
    """ValueError if the array a kernel writes (``written``, ``written_bytes`` from there)
    shares memory with another of its arguments: the C loops read inputs after writing
    outputs (softmax_forward(x, w, b, totals=b) would read biases it already overwrote),
    so an overlap gives wrong numbers or corrupts an input. Arrays are C-contiguous here,
    so their address ranges say it exactly; empty arrays overlap nothing."""
    cdef const char* a = <const char*>written
    cdef const char* b = <const char*>other
    if written_bytes > 0 and other_bytes > 0 and a < b + other_bytes and b < a + written_bytes:
        raise ValueError(f"{written_name} must not share memory with {other_name}: the kernel "
                         f"writes {written_name} while it reads {other_name}; pass separate arrays")
    return 0


cdef inline int arr_apart(const Arr* written, str written_name, const Arr* other, str other_name) except -1:
    return apart(written.data, written.nbytes, written_name, other.data, other.nbytes, other_name)
