# Fused kernels of Network, included by _kernels_common.pxi: whole training steps and
# batched inference. They chain the same C kernels as the layer façades, in the same order,
# so a fused step gives bit for bit the numbers of the six façade calls; what they save is
# the Python between them. Training runs a chunk of steps per call without the GIL;
# inference splits a batch across OpenMP threads. The vector builds' passes over Conv3x3 +
# MaxPool2 (and, in the x86 builds, the dense layer) are in kernels/network.h, and so is
# their whole training step for ten nodes (cnn_ext_train_step10).
from cnn_ext._kernel_headers cimport (CNN_EXT_OPENMP, CNN_EXT_ONE_LOOP_FORWARD,
                                      cnn_ext_conv_pool_v4, cnn_ext_filter_grad_v4,
                                      cnn_ext_forward10_v4,
                                      cnn_ext_normalise_v4, cnn_ext_step_buffers,
                                      cnn_ext_train_step10,
                                      cnn_ext_aligned_alloc, cnn_ext_aligned_copy,
                                      cnn_ext_prefetch_bytes,
                                      cnn_ext_dense10_block, cnn_ext_dense10_unblock,
                                      argmax, filters_bounded, omp_get_max_threads)
from libc.stdlib cimport abort
from libc.string cimport memcpy

cdef struct Shapes:
    Py_ssize_t h, w, nf, ch, cw, ph, pw, L, nodes


cdef struct Buffers:
    double* x        # normalised image (h, w)
    double* conv     # conv output (ch, cw, nf)
    double* pool     # pool output (ph, pw, nf) == softmax input (L,)
    double* totals   # (nodes,)
    double* probs    # (nodes,)
    double* grad     # (nodes,) upstream gradient of the softmax
    double* d_pool   # (L,)
    double* d_conv   # (ch, cw, nf)
    double* d_filt   # (nf, 9)
    double* work     # (9 * nf + 2 * nodes,) kernel scratch
    double* block    # the single allocation behind all of the above (to free)


cdef inline Py_ssize_t _lines(Py_ssize_t n) noexcept nogil:
    # n doubles rounded up to whole 64-byte cache lines
    return (n + 7) & ~(<Py_ssize_t> 7)


cdef int buffers_alloc(Buffers* b, Shapes* s) noexcept nogil:
    # One allocation; every buffer starts on a 64-byte boundary, so that the vector
    # builds' stores of the pool and the masks do not straddle cache lines (all of them,
    # when nf is a multiple of 8). With the buffers 16 bytes off, a C copy of the step was
    # about 2% slower on Zen 4 (through TrainState.step: 0.3%, within the noise).
    cdef Py_ssize_t nx = _lines(s.h * s.w), nconv = _lines(s.ch * s.cw * s.nf)
    cdef Py_ssize_t L = _lines(s.L), nodes = _lines(s.nodes), nfilt = _lines(9 * s.nf)
    cdef Py_ssize_t total = (nx + 2 * nconv + 2 * L + 3 * nodes + nfilt
                             + _lines(9 * s.nf + 2 * s.nodes))
    b.block = <double*> malloc((total + 8) * sizeof(double))
    if b.block == NULL:
        return -1
    b.x = <double*> ((<size_t> b.block + 63) & ~(<size_t> 63))
    b.conv = b.x + nx
    b.d_conv = b.conv + nconv
    b.pool = b.d_conv + nconv
    b.d_pool = b.pool + L
    b.totals = b.d_pool + L
    b.probs = b.totals + nodes
    b.grad = b.probs + nodes
    b.d_filt = b.grad + nodes
    b.work = b.d_filt + nfilt
    return 0


# The tutorial's normalisation, (pixel / 255) - 0.5, for each of the 256 pixel values: a
# table lookup gives the same doubles as the division, without 784 divisions per image.
cdef double NORMALISED[256]
cdef int _v
for _v in range(256):
    NORMALISED[_v] = _v / 255.0 - 0.5


cdef inline bint _one_loop_forward(Shapes* s) noexcept nogil:
    # The x86 vector builds' forward pass over the whole network in one loop (network.h):
    # filters four at a time, ten nodes. The NEON build runs two (not timed on arm64).
    return CNN_EXT_ONE_LOOP_FORWARD and _vector_conv(s.nf) and s.nodes == 10


cdef inline bint _blocks_weights(Shapes* s) noexcept nogil:
    # Whether chunks and batches give the dense layer its weights quad-blocked (softmax.h):
    # in the x86 vector builds, for the shapes of their one-loop forward. Not in the NEON
    # build: under qemu its blocked dense forward ran 13% more instructions than the
    # row-major one (GCC 12 spills there), its whole step 0.8% fewer; no arm64 hardware
    # here to time either.
    return _one_loop_forward(s)


cdef struct Filters:
    # What the forward pass needs of the filters besides the filters themselves, worked out
    # once per set of weights: per step in training, once per batch in inference.
    const double* filters  # (nf, 3, 3)
    double* t              # the filters transposed, (9, nf), for the vector kernels
    bint nan_free          # filters_bounded(): no conv sum can be NaN


cdef inline void prepare_filters(const double* filters, Shapes* s, double* t,
                                 Filters* out) noexcept nogil:
    out.filters = filters
    out.t = t
    out.nan_free = False
    if _vector_conv(s.nf):
        transpose_filters(filters, s.nf, t)
        out.nan_free = filters_bounded(filters, 9 * s.nf)


cdef inline void forward_c(const unsigned char* image, Shapes* s, const Filters* fl,
                           const double* weights, const double* biases, Buffers* b,
                           bint training, bint blocked=False) noexcept nogil:
    # With training set, the vector path leaves in b.d_conv the masks of the window maxima
    # that the backward pass routes the gradient to; otherwise b.conv keeps the conv output.
    # blocked: the weights are in softmax.h's quad-blocked layout (only where
    # _blocks_weights(s) says so: the one-loop forward).
    cdef Py_ssize_t k
    # the tutorial's (image / 255) - 0.5: vectorised in the vector builds, the rest by table
    for k in range(cnn_ext_normalise_v4(image, s.h * s.w, b.x), s.h * s.w):
        b.x[k] = NORMALISED[image[k]]
    if _one_loop_forward(s):
        # Conv3x3, MaxPool2 and the dense layer in one loop over the pooling windows: the
        # same numbers as the layers, without storing the convolution.
        cnn_ext_forward10_v4(b.x, s.h, s.w, fl.t, s.nf, b.pool, b.d_conv if training else NULL,
                             weights, b.totals, fl.nan_free, blocked)
        for k in range(s.nodes):
            b.totals[k] = b.totals[k] + biases[k]
        softmax_probs_c(b.totals, s.nodes, b.probs)
        return
    if blocked:  # never: _blocks_weights(s) is _one_loop_forward(s); the paths below read rows
        abort()
    if _vector_conv(s.nf):
        # Conv3x3 and MaxPool2 in one pass over the pooling windows.
        cnn_ext_conv_pool_v4(b.x, s.h, s.w, fl.t, s.nf, b.pool, b.d_conv if training else NULL,
                             fl.nan_free)
    else:
        conv3x3_forward_c(b.x, s.h, s.w, fl.filters, s.nf, b.conv, b.work)
        maxpool2_forward_c(b.conv, s.ch, s.cw, s.nf, b.pool)
    softmax_forward_c(b.pool, s.L, weights, biases, s.nodes, b.totals, b.probs)


cdef double train_step_c(const unsigned char* image, Py_ssize_t label, Shapes* s,
                         double* filters, double* weights, double* biases,
                         double learn_rate, Buffers* b, unsigned char* correct,
                         bint blocked=False) noexcept nogil:
    """The tutorial's ``train(im, label)``: returns the loss, sets ``correct``. blocked:
    the weights are quad-blocked (softmax.h), as only _blocks_weights(s) allows."""
    cdef Py_ssize_t n
    cdef double p
    cdef Filters fl
    cdef cnn_ext_step_buffers cb
    if _vector_conv(s.nf) and s.nodes == 10:
        # The vector builds' step for ten nodes, the sequence below in one C function
        # (kernels/network.h): the same numbers, 3% faster than this Cython.
        cb.x, cb.t, cb.pool, cb.mask = b.x, b.work, b.pool, b.d_conv
        cb.d_pool, cb.d_filt, cb.totals, cb.probs = b.d_pool, b.d_filt, b.totals, b.probs
        return cnn_ext_train_step10(image, label, s.h, s.w, filters, s.nf, weights, biases,
                                    learn_rate, &cb, correct, blocked)
    if blocked:  # never (see _blocks_weights): the layer kernels below read rows
        abort()
    prepare_filters(filters, s, b.work, &fl)
    forward_c(image, s, &fl, weights, biases, b, True)
    p = b.probs[label]
    correct[0] = argmax(b.probs, s.nodes) == label
    for n in range(s.nodes):
        b.grad[n] = 0.0
    b.grad[label] = -1 / p
    # Softmax's backprop, then, in the vector builds, MaxPool2's backprop and the filter
    # gradient in one loop through the forward's masks (two loops, not one with the dense
    # layer's: faster, see kernels/network.h).
    softmax_backprop_c(b.pool, s.L, weights, biases, s.nodes, b.totals, b.probs, b.grad,
                       learn_rate, b.d_pool, b.work)
    if _vector_conv(s.nf):
        cnn_ext_filter_grad_v4(b.x, s.h, s.w, b.d_pool, b.d_conv, s.nf, b.d_filt)
    else:
        maxpool2_backprop_c(b.conv, s.ch, s.cw, s.nf, b.d_pool, b.d_conv)
        conv3x3_filter_grad_c(b.x, s.h, s.w, b.d_conv, s.nf, b.d_filt)
    sgd_update_c(filters, b.d_filt, 9 * s.nf, learn_rate)
    return -log(p) if p > 0 else (p if p != p else INFINITY)  # NaN stays NaN, as -np.log(nan)


cdef Shapes shapes_of(Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf, Py_ssize_t L,
                      Py_ssize_t nodes) except *:
    cdef Shapes s
    s.h, s.w, s.nf, s.nodes, s.L = h, w, nf, nodes, L
    s.ch, s.cw = h - 2, w - 2
    s.ph, s.pw = s.ch // 2, s.cw // 2
    if h < 4 or w < 4 or nf < 1 or nodes < 1:
        raise ValueError(f"images must be at least 4x4 and layers non-empty, got image {h}x{w}, "
                         f"{nf} filters, {nodes} nodes")
    if s.ph * s.pw * nf != L:
        raise ValueError(f"softmax weights need {s.ph * s.pw * nf} input rows for {h}x{w} images and "
                         f"{nf} filters, got {L}")
    return s


cdef int _batch_apart(tuple written, tuple read) except -1:
    # The arrays a batch kernel writes must not overlap any other of its arguments (see
    # apart()): ``written`` and ``read`` hold (name, array) pairs. Once per batch, so
    # NumPy's test is cheap enough; for these C-contiguous arrays the address ranges it
    # compares are exact.
    cdef Py_ssize_t i
    for i in range(len(written)):
        name, a = written[i]
        for other_name, b in written[i + 1:] + read:
            if _np.may_share_memory(a, b):
                raise ValueError(f"{name} must not share memory with {other_name}: the kernel "
                                 f"writes {name} while it reads {other_name}; pass separate arrays")
    return 0


def train_steps(const unsigned char[:, :, ::1] images, const long long[::1] labels,
                const long long[::1] order, double[:, :, ::1] filters,
                double[:, ::1] weights, double[::1] biases, double learn_rate,
                double[::1] losses, unsigned char[::1] correct, double loss_start=0.0):
    """Per-sample SGD over ``images[order[k]]`` for k in range(len(order)), in place.

    images (n, h, w) uint8; labels (n,) int64 in [0, nodes); order (m,) int64 indices;
    filters (nf, 3, 3), weights (L, nodes), biases (nodes,) float64 are updated in place;
    losses (m,) and correct (m,) receive each step's loss and 1/0 hit. Returns
    ``loss_start`` plus the m losses added one at a time, in order (the tutorial's
    ``loss += l``: the same float as that Python loop).
    """
    cdef Shapes s = shapes_of(images.shape[1], images.shape[2], filters.shape[0],
                              weights.shape[0], weights.shape[1])
    cdef Py_ssize_t m = order.shape[0], n = images.shape[0], k, idx
    cdef double total = loss_start
    cdef Buffers b
    if filters.shape[1] != 3 or filters.shape[2] != 3 or biases.shape[0] != s.nodes:
        raise ValueError("filters must be (nf, 3, 3) and biases (nodes,)")
    if labels.shape[0] != n or losses.shape[0] < m or correct.shape[0] < m:
        raise ValueError(f"labels must have {n} entries and losses/correct at least {m}")
    _batch_apart((("filters", filters), ("weights", weights), ("biases", biases), ("losses", losses),
                  ("correct", correct)), (("images", images), ("labels", labels), ("order", order)))
    for k in range(m):
        idx = order[k]
        if idx < 0 or idx >= n:
            raise IndexError(f"order[{k}] = {idx} is out of range for {n} images")
        if labels[idx] < 0 or labels[idx] >= s.nodes:
            raise ValueError(f"labels[{idx}] = {labels[idx]} is not in 0..{s.nodes - 1}")
    cdef void* raw = NULL
    cdef bint blocked = False
    cdef double* w = _private_weights(weights, m >= ALIGNED_COPY_MIN, _blocks_weights(&s), &raw,
                                      (filters, biases, images, losses), &blocked)
    if buffers_alloc(&b, &s) != 0:
        free(raw)
        raise MemoryError()
    with nogil:
        for k in range(m):
            idx = order[k]
            if k + 1 < m:  # the next image, while this one trains
                cnn_ext_prefetch_bytes(&images[order[k + 1], 0, 0], s.h * s.w)
            losses[k] = train_step_c(&images[idx, 0, 0], labels[idx], &s, &filters[0, 0, 0],
                                     w, &biases[0], learn_rate, &b, &correct[k], blocked)
            total = total + losses[k]
        if raw != NULL:  # the private copy's weights back into the caller's array
            if blocked:
                cnn_ext_dense10_unblock(w, s.L, &weights[0, 0])
            else:
                memcpy(&weights[0, 0], w, weights.shape[0] * weights.shape[1] * sizeof(double))
    free(raw)
    free(b.block)
    return total


# Chunks of at least this many steps, and batches of at least 4 times as many images, work
# on a private copy of the weights: 64-byte aligned, and quad-blocked where the kernels
# take that layout (converting 108 KB there, and back after a chunk, costs about two
# images' time).
cdef Py_ssize_t ALIGNED_COPY_MIN = 64


cdef double* _private_weights(const double[:, ::1] weights, bint worth_it, bint block,
                              void** raw, tuple others, bint* blocked) except NULL:
    # The weights themselves, or, when worth_it, a private copy (in *raw, for the caller to
    # free and, if it writes, to copy back): quad-blocked (softmax.h) when block, and then
    # *blocked is set, for the dense passes without shuffles (the AVX2 build's backward
    # pass 1.25x faster, Zen 4); otherwise only when the weights are not 64-byte aligned.
    # Never when another argument's memory may overlap them: then the kernels must see
    # each other's writes, as they do on the caller's arrays.
    cdef const double* p = &weights[0, 0]
    cdef Py_ssize_t n = weights.shape[0] * weights.shape[1]
    raw[0] = NULL
    blocked[0] = False
    if not worth_it or (not block and (<size_t> p) % 64 == 0):
        return <double*> p
    base = weights.base
    for a in others:
        if _np.may_share_memory(_np.asarray(a), _np.asarray(base)):
            return <double*> p
    cdef double* copy = cnn_ext_aligned_alloc(n, raw) if block else cnn_ext_aligned_copy(p, n, raw)
    if copy == NULL:
        raise MemoryError()
    if block:
        cnn_ext_dense10_block(p, weights.shape[0], copy)
        blocked[0] = True
    return copy


def dense_layout(Py_ssize_t h, Py_ssize_t w, Py_ssize_t nf, Py_ssize_t nodes):
    """How this build's ``train_steps`` chunks (64 steps or more) and ``predict_proba``
    batches (256 images or more) give the kernels the dense layer's weights for images
    (h, w), nf filters and ``nodes`` classes: ``"blocked"``, a private quad-blocked copy
    (kernels/softmax.h), or ``"row-major"``, the caller's layout. The numbers are the
    same either way."""
    cdef Shapes s = shapes_of(h, w, nf, ((h - 2) // 2) * ((w - 2) // 2) * nf, nodes)
    return "blocked" if _blocks_weights(&s) else "row-major"


cdef int _parameter_arrays(object filters, object weights, object biases, Arr* arrays) except -1:
    # The kernels' own array check (float64, native order, C-contiguous, writable), on exact
    # ndarrays: the state keeps them and writes to them in place.
    for a in (filters, weights, biases):
        if type(a) is not _np.ndarray:
            raise TypeError(f"parameters must be NumPy arrays, got {type(a).__name__}")
    as_arr(filters, 3, True, "filters", &arrays[0])
    as_arr(weights, 2, True, "weights", &arrays[1])
    as_arr(biases, 1, True, "biases", &arrays[2])
    arr_apart(&arrays[0], "filters", &arrays[1], "weights")
    arr_apart(&arrays[0], "filters", &arrays[2], "biases")
    arr_apart(&arrays[1], "weights", &arrays[2], "biases")
    return 0


cdef inline bint _same_arrays(const Arr* a, const Arr* b) noexcept:
    # Same addresses and shapes: filters (nf, 3, 3), weights (L, nodes), biases (nodes,).
    return (a[0].data == b[0].data and a[1].data == b[1].data and a[2].data == b[2].data
            and a[0].shape[0] == b[0].shape[0] and a[0].shape[1] == b[0].shape[1]
            and a[0].shape[2] == b[0].shape[2] and a[1].shape[0] == b[1].shape[0]
            and a[1].shape[1] == b[1].shape[1] and a[2].shape[0] == b[2].shape[0])


@cython.auto_pickle(False)  # it holds addresses and buffers: nothing to pickle
cdef class TrainState:
    """One network's parameters and scratch buffers, set up once for repeated ``step`` calls.

    ``Network.train_step`` keeps one per network, so a single SGD step costs the kernels and
    a few C-level checks, not a fresh allocation and six buffer acquisitions. It holds
    references to the parameter arrays and checks, at every step, that they are still the
    arrays it was built on (same address, shape, dtype, layout, writable); if not, ``step``
    returns None and the caller builds a new state.
    """
    cdef readonly object filters, weights, biases
    cdef readonly double learn_rate
    cdef readonly Py_ssize_t h, w
    cdef Shapes s
    cdef Buffers b
    cdef Arr arrays[3]  # the parameters' addresses and shapes when the state was built
    cdef bint busy

    def __cinit__(self):
        self.b.block = NULL

    def __init__(self, filters, weights, biases, double learn_rate, Py_ssize_t h, Py_ssize_t w):
        """filters (nf, 3, 3), weights (L, nodes), biases (nodes,): writable float64 arrays
        that the steps update in place; images will be uint8 (h, w)."""
        cdef Arr arrays[3]
        if self.busy:
            raise RuntimeError("TrainState.__init__ called while another thread is inside step()")
        _parameter_arrays(filters, weights, biases, arrays)
        cdef Shapes s = shapes_of(h, w, arrays[0].shape[0], arrays[1].shape[0], arrays[1].shape[1])
        if arrays[0].shape[1] != 3 or arrays[0].shape[2] != 3 or arrays[2].shape[0] != s.nodes:
            raise ValueError("filters must be (nf, 3, 3) and biases (nodes,)")
        if self.b.block != NULL:
            free(self.b.block)
            self.b.block = NULL
        if buffers_alloc(&self.b, &s) != 0:
            raise MemoryError()
        self.s = s
        self.h, self.w = h, w
        self.filters, self.weights, self.biases = filters, weights, biases
        self.arrays[0], self.arrays[1], self.arrays[2] = arrays[0], arrays[1], arrays[2]
        self.learn_rate = learn_rate

    def __dealloc__(self):
        free(self.b.block)

    def step(self, image, long long label):
        """One SGD step on a uint8 (h, w) C-contiguous image: returns ``(loss, 1 or 0)``, or
        None, without a step, if a parameter array changed shape, dtype, layout or
        writability since the state was built."""
        cdef cnp.ndarray im
        cdef double loss
        cdef unsigned char correct = 0
        cdef Buffers spare
        cdef Buffers* b = &self.b
        cdef Shapes* s = &self.s
        if self.b.block == NULL:
            raise RuntimeError("TrainState was not initialised")
        if not (type(image) is _np.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>image) == cnp.NPY_UINT8
                and cnp.PyArray_NDIM(<cnp.ndarray>image) == 2
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>image)
                and cnp.PyArray_DIM(<cnp.ndarray>image, 0) == s.h
                and cnp.PyArray_DIM(<cnp.ndarray>image, 1) == s.w):
            raise ValueError(f"expected a C-contiguous uint8 image of shape {(s.h, s.w)}")
        im = <cnp.ndarray>image
        if label < 0 or label >= s.nodes:
            raise ValueError(f"label {label} is not in 0..{s.nodes - 1}")
        cdef Arr now[3]
        try:
            _parameter_arrays(self.filters, self.weights, self.biases, now)
        except ValueError:  # no longer float64, native, C-contiguous or writable
            return None  # the caller builds a new state, which checks the arrays afresh
        if not _same_arrays(now, self.arrays):
            return None
        apart(now[0].data, now[0].nbytes, "filters", cnp.PyArray_DATA(im), s.h * s.w, "image")
        apart(now[1].data, now[1].nbytes, "weights", cnp.PyArray_DATA(im), s.h * s.w, "image")
        apart(now[2].data, now[2].nbytes, "biases", cnp.PyArray_DATA(im), s.h * s.w, "image")
        if self.busy:
            # Another thread is inside step() on this state (it released the GIL): use
            # buffers of this call's own rather than share the scratch space.
            if buffers_alloc(&spare, s) != 0:
                raise MemoryError()
            b = &spare
        else:
            self.busy = True
        try:
            with nogil:
                loss = train_step_c(<const unsigned char*>cnp.PyArray_DATA(im), label, s,
                                    now[0].data, now[1].data, now[2].data, self.learn_rate, b,
                                    &correct)
        finally:
            if b == &self.b:
                self.busy = False
            else:
                free(spare.block)
        return loss, correct


def predict_proba(const unsigned char[:, :, ::1] images, const double[:, :, ::1] filters,
                  const double[:, ::1] weights, const double[::1] biases,
                  double[:, ::1] out, int num_threads=0):
    """Class probabilities of uint8 images (n, h, w) into out (n, nodes).

    The batch is split across ``num_threads`` OpenMP threads (0: OpenMP's default); each
    image's numbers do not depend on the thread count.
    """
    cdef Shapes s = shapes_of(images.shape[1], images.shape[2], filters.shape[0],
                              weights.shape[0], weights.shape[1])
    cdef Py_ssize_t n = images.shape[0], i, k
    cdef int t, threads
    cdef Buffers* per_thread
    cdef Filters fl
    cdef double* transposed
    if filters.shape[1] != 3 or filters.shape[2] != 3 or biases.shape[0] != s.nodes:
        raise ValueError("filters must be (nf, 3, 3) and biases (nodes,)")
    if out.shape[0] != n or out.shape[1] != s.nodes:
        raise ValueError(f"out must be {(n, s.nodes)}, got {(out.shape[0], out.shape[1])}")
    _batch_apart((("out", out),), (("images", images), ("filters", filters), ("weights", weights),
                                   ("biases", biases)))
    if n == 0:
        return
    threads = num_threads if num_threads > 0 else omp_get_max_threads()
    if not CNN_EXT_OPENMP:
        threads = 1
    # Each thread owns one set of buffers, allocated here once, not per image; the filters
    # are prepared once for the batch and only read by the threads.
    transposed = <double*> malloc(9 * s.nf * sizeof(double))
    per_thread = <Buffers*> calloc(threads, sizeof(Buffers))
    if per_thread == NULL or transposed == NULL:
        free(transposed)
        free(per_thread)
        raise MemoryError()
    prepare_filters(&filters[0, 0, 0], &s, transposed, &fl)
    cdef void* raw = NULL
    cdef const double* w
    cdef bint blocked = False
    try:
        w = _private_weights(weights, n >= 4 * ALIGNED_COPY_MIN, _blocks_weights(&s), &raw, (),
                             &blocked)
        for t in range(threads):
            if buffers_alloc(&per_thread[t], &s) != 0:
                raise MemoryError()
        with nogil:
            for i in prange(n, num_threads=threads, schedule="static"):
                t = threadid()
                forward_c(&images[i, 0, 0], &s, &fl, w, &biases[0], &per_thread[t], False, blocked)
                for k in range(s.nodes):
                    out[i, k] = per_thread[t].probs[k]
    finally:
        for t in range(threads):
            free(per_thread[t].block)
        free(per_thread)
        free(transposed)
        free(raw)
