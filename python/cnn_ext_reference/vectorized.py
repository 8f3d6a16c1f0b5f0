"""The tutorial's three layers, vectorised with NumPy: the fastest pure-NumPy version we know.

Same classes, constructor signatures, attributes and ``forward``/``backprop`` semantics as
the tutorial's loops in :mod:`cnn_ext_reference` (including the max-pool rule that gives
the gradient to *every* position equal to its window's maximum, and the in-place SGD
updates), with every Python loop over pixels replaced by whole-array operations. The
results agree with the loops to rounding (about 1e-16 relative): sums are taken in a
different order. Parameters are drawn from NumPy's global random state exactly as the
tutorial does, so ``np.random.seed(k)`` before construction gives the same weights.

It exists to answer "how fast can plain NumPy do this?" next to :mod:`cnn_ext`'s compiled
kernels (see ``cnn_ext.bench``), and is tested for parity with the loops.

How each layer is vectorised:

* ``Conv3x3.forward``: the nine shifted (h-2, w-2) views of the image are copied into a
  (9, (h-2)*(w-2)) column matrix, and one matrix product with the (9, num_filters)
  filter matrix gives the output in the tutorial's (h-2, w-2, num_filters) layout.
  ``backprop``: the filter gradient is one more product, ``d_out.T @ columns``.
* ``MaxPool2``: the (cropped) input is viewed as (h//2, 2, w//2, 2*f), so each window's
  four values are two slices apart; the maximum is two ``np.maximum`` calls and the
  backward pass is one equality mask and one ``np.where``. A trailing odd row or column
  is ignored, as in the tutorial.
* ``Softmax``: ``exp`` of the totals shifted by their maximum (no overflow), and the
  backward pass uses the softmax Jacobian-vector product ``d_t = p * (g - g @ p)``, O(nodes)
  instead of the tutorial's loop over the non-zero entries of ``g``.

Each layer keeps what its forward pass computed that backprop needs again (the column
matrix, the window maxima, the probabilities) and reuses it while ``last_input`` (or
``last_totals``) is still the same object; the tutorial recomputes them. Replacing those
attributes is detected, modifying those arrays in place between the two calls is not.

Exact ties matter: the max-pool rule compares for equality, and a flat MNIST background
makes identical 3x3 regions, whose convolutions must then be bit-identical. This relies
on the BLAS computing identical rows of the product by the same sequence of operations,
which OpenBLAS does (checked against an elementwise, trivially position-independent
convolution on all 60,000 MNIST training images; the tests check the tie positions
against the loops on MNIST, where most windows tie).

:func:`predict_proba` is the batch forward pass of the whole network, for inference.
"""
import numpy as np

__all__ = ["Conv3x3", "MaxPool2", "Softmax", "predict_proba"]


def _columns(image):
    """(9, (h-2)*(w-2)) matrix: row 3*a + b holds the image shifted by (a, b)."""
    h, w = image.shape
    cols = np.empty((9, h - 2, w - 2))
    for a in range(3):
        for b in range(3):
            cols[3 * a + b] = image[a:a + h - 2, b:b + w - 2]
    return cols.reshape(9, (h - 2) * (w - 2))


class Conv3x3:
    """Convolution with ``num_filters`` 3x3 filters (valid padding, stride 1), vectorised.

    ``forward``: (h, w) -> (h-2, w-2, num_filters); ``backprop`` updates ``filters`` in
    place and returns ``None`` (it is the first layer).
    """

    def __init__(self, num_filters, learn_rate=0.01):
        self.num_filters = num_filters
        self.filters = np.random.randn(num_filters, 3, 3) / 9
        self.last_input = None
        self.learn_rate = learn_rate
        # The column matrix of the last forward input, reused by backprop when last_input
        # is still that same array (keyed by identity: an array that is modified in place
        # between forward and backprop is not detected).
        self._columns = None
        self._columns_of = None

    def iterate_regions(self, image):
        """Yield every 3x3 region of a 2-D image with its position (the tutorial's API)."""
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                yield image[i:(i + 3), j:(j + 3)], i, j

    def forward(self, input):
        self.last_input = input
        image = np.asarray(input, dtype=np.float64)
        h, w = image.shape
        cols = _columns(image)
        self._columns, self._columns_of = cols, input
        # (P, 9) @ (9, F): the transposed view avoids a copy, the result is (P, F) = (h-2, w-2, F).
        out = cols.T @ self.filters.reshape(self.num_filters, 9).T
        return out.reshape(h - 2, w - 2, self.num_filters)

    def backprop(self, d_L_d_out):
        if self._columns_of is self.last_input and self._columns is not None:
            cols = self._columns
        else:
            cols = _columns(np.asarray(self.last_input, dtype=np.float64))
        d_out = np.asarray(d_L_d_out, dtype=np.float64).reshape(-1, self.num_filters)
        d_L_d_filters = (d_out.T @ cols.T).reshape(self.filters.shape)
        self.filters -= self.learn_rate * d_L_d_filters
        return None


class MaxPool2:
    """2x2 max pooling, stride 2, vectorised: (h, w, f) -> (h//2, w//2, f).

    ``backprop`` gives the incoming gradient to *every* position of a window equal to the
    window's maximum (ties all receive it), as the tutorial does.
    """

    def __init__(self):
        self.last_input = None
        self._output = None  # the last forward output, reused while last_input is unchanged
        self._output_of = None

    def iterate_regions(self, image):
        """Yield every 2x2 window with its position (the tutorial's API)."""
        h, w, _ = image.shape
        for i in range(h // 2):
            for j in range(w // 2):
                yield image[i * 2:(i + 1) * 2, j * 2:(j + 1) * 2], i, j

    @staticmethod
    def _windows(x):
        """View of the cropped input as (h//2, 2, w//2, 2*f): window (i, j) holds
        ``v[i, a, j, b*f + k]`` for its four positions (a, b) and filter k."""
        h, w, f = x.shape
        nh, nw = h // 2, w // 2
        return x[:2 * nh, :2 * nw].reshape(nh, 2, nw, 2 * f)

    @staticmethod
    def _max(v, f):
        rows = np.maximum(v[:, 0], v[:, 1])  # (h//2, w//2, 2f)
        return np.maximum(rows[:, :, :f], rows[:, :, f:])

    def forward(self, input):
        self.last_input = input
        x = np.asarray(input, dtype=np.float64)
        out = self._max(self._windows(x), x.shape[2])
        self._output, self._output_of = out, input
        return out.copy()  # the caller may modify what it gets

    def backprop(self, d_L_d_out):
        x = np.asarray(self.last_input, dtype=np.float64)
        h, w, f = x.shape
        nh, nw = h // 2, w // 2
        v = self._windows(x)
        if self._output_of is self.last_input and self._output is not None:
            amax = self._output
        else:
            amax = self._max(v, f)
        # Both tiled to (h//2, 1, w//2, 2f) so they line up with the two columns of a window.
        amax2 = np.concatenate((amax, amax), axis=2)[:, np.newaxis]
        d_out = np.asarray(d_L_d_out, dtype=np.float64)
        grad2 = np.concatenate((d_out, d_out), axis=2)[:, np.newaxis]
        routed = np.where(v == amax2, grad2, 0.0).reshape(2 * nh, 2 * nw, f)
        if (2 * nh, 2 * nw) == (h, w):
            return routed
        d_L_d_input = np.zeros(x.shape)
        d_L_d_input[:2 * nh, :2 * nw] = routed
        return d_L_d_input


class Softmax:
    """Fully connected layer + softmax, vectorised: input of any shape -> (nodes,) probabilities.

    Unlike the tutorial, ``forward`` shifts the totals by their maximum before ``exp``, so
    large totals do not overflow (the probabilities are the same). ``backprop`` uses the
    weights from before the update for the input gradient, as the tutorial does.
    """

    def __init__(self, input_len, nodes, learn_rate=0.01):
        self.weights = np.random.randn(input_len, nodes) / nodes
        self.biases = np.zeros(nodes)
        self.learn_rate = learn_rate
        self.last_input_shape = None
        self.last_input = None
        self.last_totals = None
        self._probs = None  # the last forward output, reused while last_totals is unchanged
        self._probs_of = None

    @staticmethod
    def _softmax(totals):
        exp = np.exp(totals - totals.max())
        return exp / exp.sum()

    def forward(self, input):
        self.last_input_shape = input.shape
        input = input.flatten()
        self.last_input = input
        totals = input @ self.weights + self.biases
        self.last_totals = totals
        probs = self._softmax(totals)
        self._probs, self._probs_of = probs, totals
        return probs.copy()  # the caller may modify what it gets

    def backprop(self, d_L_d_out):
        if self._probs_of is self.last_totals and self._probs is not None:
            p = self._probs
        else:
            p = self._softmax(self.last_totals)
        g = np.asarray(d_L_d_out, dtype=np.float64)
        # Softmax Jacobian-vector product: J = diag(p) - p p^T is symmetric, J g = p * (g - g.p).
        d_L_d_t = p * (g - g @ p)
        d_L_d_input = self.weights @ d_L_d_t  # before the update, as the tutorial
        # einsum's outer product is faster than np.outer's broadcast loop over rows of 10.
        self.weights -= np.einsum("i,j->ij", self.last_input, self.learn_rate * d_L_d_t)
        self.biases -= self.learn_rate * d_L_d_t
        return d_L_d_input.reshape(self.last_input_shape)


def _matmul_small(a, b, out, rows):
    """``out[...] = a @ b`` in slices of ``rows`` rows.

    These products are thin (9 or 1352 terms, 8 or 10 columns): split this way each one
    stays under OpenBLAS's threading threshold (m*n*k <= 262144), so it runs on the
    calling thread. Handing such small products to a second thread costs more than it
    gains, and on a busy machine (another process on the other core) it made this batch
    forward four times slower.
    """
    for start in range(0, a.shape[0], rows):
        np.matmul(a[start:start + rows], b, out=out[start:start + rows])
    return out


def predict_proba(images, filters, weights, biases, chunk=16):
    """Batch forward pass: class probabilities (n, nodes) for uint8 images (n, h, w).

    The whole network at once on ``chunk`` images at a time (normalised as the tutorial
    does, ``(image / 255) - 0.5``), with the parameters of a trained model: ``filters``
    (f, 3, 3), ``weights`` (h'*w'*f, nodes) in the tutorial's (h, w, f) flatten order and
    ``biases`` (nodes,). Single-threaded (see ``_matmul_small``).
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[np.newaxis]
    n, h, w = images.shape
    filters = np.asarray(filters, dtype=np.float64)
    num_filters = filters.shape[0]
    f9 = np.ascontiguousarray(filters.reshape(num_filters, 9).T)
    weights = np.asarray(weights, dtype=np.float64)
    biases = np.asarray(biases, dtype=np.float64)
    input_len, nodes = weights.shape
    ch, cw = h - 2, w - 2
    nh, nw = ch // 2, cw // 2
    pixels = ch * cw
    conv_rows = max(1, 262144 // (9 * num_filters * pixels)) * pixels
    dense_rows = max(1, 262144 // (input_len * nodes))
    out = np.empty((n, nodes))
    for start in range(0, n, chunk):
        x = images[start:start + chunk] / 255 - 0.5
        m = len(x)
        cols = np.empty((9, m, ch, cw))
        for a in range(3):
            for b in range(3):
                cols[3 * a + b] = x[:, a:a + ch, b:b + cw]
        conv = _matmul_small(cols.reshape(9, -1).T, f9, np.empty((m * pixels, num_filters)), conv_rows)
        v = conv.reshape(m, ch, cw, num_filters)[:, :2 * nh, :2 * nw].reshape(m, nh, 2, nw, 2 * num_filters)
        rows = np.maximum(v[:, :, 0], v[:, :, 1])
        pooled = np.maximum(rows[..., :num_filters], rows[..., num_filters:])
        totals = _matmul_small(pooled.reshape(m, -1), weights, np.empty((m, nodes)), dense_rows)
        totals += biases
        exp = np.exp(totals - totals.max(axis=1, keepdims=True))
        out[start:start + m] = exp / exp.sum(axis=1, keepdims=True)
    return out
