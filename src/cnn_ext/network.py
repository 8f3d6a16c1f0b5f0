"""The tutorial's whole network, Conv3x3(8) -> MaxPool2 -> Softmax(13*13*8, 10), as one object.

``Network`` runs the tutorial's per-sample SGD recipe over the layer objects it holds, so
``network.conv.filters`` and friends stay the tutorial's attributes (``ModelSaver`` saves
and loads them). Images are uint8 (28, 28) as MNIST ships them; each is normalised as the
tutorial does, ``(image / 255) - 0.5``, before the first layer.
"""
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._dispatch import kernels
from .conv import Conv3x3
from .maxpool import MaxPool2
from .softmax import Softmax
from ._validate import learn_rate, parameter, positive_int

NUM_CLASSES = 10
_UINT8 = np.dtype(np.uint8)


def _check_batch(images, labels=None):
    """uint8 C-contiguous images (n, h, w) and int64 labels (n,), or a clear error."""
    array = np.asarray(images)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"expected uint8 images of shape (n, h, w) or one (h, w) image, got shape {array.shape}")
    if array.dtype != np.uint8:
        # MNIST pixels are uint8; integer-valued arrays in 0..255 of other dtypes are fine.
        if array.dtype.kind not in "biuf" or (array.size and not (
                np.all(array == np.round(array)) and array.min() >= 0 and array.max() <= 255)):
            raise ValueError(f"expected uint8 images (pixel values 0..255, as MNIST ships them), "
                             f"got dtype {array.dtype}" + (f" with values {array.min()}..{array.max()}"
                                                           if array.size and array.dtype.kind in "biuf" else ""))
        array = array.astype(np.uint8)
    array = np.ascontiguousarray(array)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (array.shape[0],):
            raise ValueError(f"expected {array.shape[0]} labels, got shape {labels.shape}")
        if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES)):
            raise ValueError(f"labels must be integers in 0..{NUM_CLASSES - 1}, got dtype {labels.dtype}"
                             + (f" with values {labels.min()}..{labels.max()}" if labels.size else ""))
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    return array, labels


@dataclass
class StepLog:
    """Running loss and accuracy over the last ``count`` training steps."""

    step: int = 0
    count: int = 0
    loss: float = 0.0
    correct: int = 0

    def add(self, loss, correct):
        self.step += 1
        self.count += 1
        self.loss += loss
        self.correct += correct

    def line(self):
        """The tutorial's log line, averaged over the steps since the last line."""
        return "[Step %d] Past %d steps :Average Loss %.3f | Accuracy %d%%" % (
            self.step, self.count, self.loss / self.count, round(100 * self.correct / self.count))

    def reset(self):
        self.count, self.loss, self.correct = 0, 0.0, 0


@dataclass
class Evaluation:
    """Loss, accuracy and confusion matrix (rows: true label, columns: predicted)."""

    loss: float
    accuracy: float
    confusion: np.ndarray = field(repr=False)

    @property
    def per_class_accuracy(self):
        totals = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), totals, out=np.zeros(len(totals)), where=totals > 0)


class Network:
    """Conv3x3 -> MaxPool2 -> Softmax, trained one image at a time as in the tutorial.

    Built from existing layers, or new ones: ``Network(seed=0)`` seeds NumPy's global
    random state and draws the conv filters, then the softmax weights, exactly as the
    tutorial's script does after ``np.random.seed(0)``.

    ``train_step``, ``fit``, ``predict_proba``, ``predict`` and ``evaluate`` run fused
    compiled kernels (:mod:`cnn_ext._network`) on the layers' own parameter arrays, which
    they update in place; they give bit for bit the numbers of the layer-by-layer calls
    (``forward`` and the layers' own methods), but do not set the layers' ``last_*``
    attributes. Images are uint8 (h, w) or (n, h, w), as MNIST ships them.
    """

    def __init__(self, conv=None, pool=None, softmax=None, *, num_filters=8, image_shape=(28, 28),
                 seed=None, learn_rate=0.005):
        if seed is not None:
            np.random.seed(seed)
        h, w = image_shape
        self.conv = conv if conv is not None else Conv3x3(num_filters)
        self.pool = pool if pool is not None else MaxPool2()
        self.softmax = softmax if softmax is not None else Softmax(
            ((h - 2) // 2) * ((w - 2) // 2) * self.conv.num_filters, NUM_CLASSES)
        self.learn_rate = learn_rate
        self._train_state = None  # kernels.TrainState of the last train_step, and its learn_rate
        self._train_rate = None

    def __getstate__(self):
        # The compiled TrainState (addresses, buffers) does not copy or pickle; a copy builds
        # its own at its first train_step.
        state = self.__dict__.copy()
        state["_train_state"] = state["_train_rate"] = None
        return state

    @property
    def learn_rate(self):
        """The SGD step size, shared by the conv and softmax layers."""
        return self.conv.learn_rate

    @learn_rate.setter
    def learn_rate(self, value):
        self.conv.learn_rate = value
        self.softmax.learn_rate = value

    def _parameters(self):
        filters = parameter(self.conv, "filters", (self.conv.num_filters, 3, 3))
        weights, biases = self.softmax._parameters()
        return filters, weights, biases

    def forward(self, image, label):
        """The tutorial's ``forward`` through the layer objects: ``(probabilities (10,), loss, 1 or 0)``."""
        out = self.conv.forward((image / 255) - 0.5)
        out = self.pool.forward(out)
        out = self.softmax.forward(out)
        p = float(out[label])
        loss = -math.log(p) if p > 0 else (p if math.isnan(p) else math.inf)
        return out, loss, 1 if np.argmax(out) == label else 0

    def train_step(self, image, label):
        """One SGD step on one uint8 image (h, w), the tutorial's ``train``: ``(loss, 1 or 0)``."""
        # The common case: the compiled state of the last call (parameter addresses, scratch
        # buffers) is reused while the layers hold the same arrays and learn rate; it checks
        # the image, the label and the arrays itself, in C. Anything else: the checked path.
        state = self._reusable_state()
        if state is not None and type(label) is int and 0 <= label < NUM_CLASSES:
            try:
                result = state.step(image, label)
            except ValueError:  # another image shape, dtype or layout
                result = None
            if result is not None:
                return result
        return self._checked_train_step(image, label)

    def _checked_train_step(self, image, label):
        if not (type(image) is np.ndarray and image.dtype is _UINT8 and image.ndim == 2
                and image.flags.c_contiguous):
            image = _check_batch(image)[0][0]
        if not (type(label) is int or isinstance(label, numbers.Integral) and not isinstance(label, bool)) \
                or not 0 <= label < NUM_CLASSES:
            raise ValueError(f"label must be an integer in 0..{NUM_CLASSES - 1}, got {label!r}")
        state = self._reusable_state()
        if state is not None and image.shape == (state.h, state.w):
            result = state.step(image, int(label))
            if result is not None:
                return result
        self._train_state = None
        filters, weights, biases = self._parameters()
        state = kernels.TrainState(filters, weights, biases, learn_rate(self.conv), *image.shape)
        self._train_state, self._train_rate = state, self.conv.learn_rate
        return state.step(image, int(label))

    def _reusable_state(self):
        # The TrainState of the last train_step while the layers still hold the arrays and
        # learn rate it was built on (it checks the arrays' shape and layout itself).
        state, conv, softmax = self._train_state, self.conv, self.softmax
        if (state is not None and state.filters is conv.filters and state.weights is softmax.weights
                and state.biases is softmax.biases and self._train_rate is conv.learn_rate):
            return state
        return None

    def fit(self, images, labels, epochs=1, *, seed=0, shuffle=True, log_every=0, callback=None,
            chunk=2000):
        """Per-sample SGD over uint8 ``images`` (n, h, w) and ``labels`` (n,) for ``epochs`` epochs.

        Each epoch visits the images in a permutation drawn from ``seed`` (the same seed
        gives the same order, hence the same weights, bit for bit). The steps run in
        compiled chunks of up to ``chunk`` images without the GIL; between chunks
        ``callback(kind, value)`` is called with ``("progress", StepLog)``, then
        ``("log", line)`` every ``log_every`` steps and ``("epoch", number)`` after each
        epoch. Returns the list of log lines.
        """
        images, labels = _check_batch(images, labels)
        if not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        order_rng = np.random.default_rng(seed)
        filters, weights, biases = self._parameters()
        rate = learn_rate(self.conv)
        losses, correct = np.empty(chunk), np.empty(chunk, dtype=np.uint8)
        log, lines = StepLog(), []
        for epoch in range(epochs):
            order = order_rng.permutation(len(images)) if shuffle else np.arange(len(images))
            start = 0
            while start < len(order):
                size = min(chunk, len(order) - start)
                if log_every:
                    size = min(size, log_every - log.count)
                kernels.train_steps(images, labels, order[start:start + size], filters, weights,
                                     biases, rate, losses, correct)
                start += size
                # Sequential sums, as the tutorial's `loss += l`, so log lines do not depend on chunking.
                for loss, hit in zip(losses[:size].tolist(), correct[:size].tolist()):
                    log.add(loss, hit)
                if callback is not None:
                    callback("progress", log)
                if log_every and log.count == log_every:
                    lines.append(log.line())
                    if callback is not None:
                        callback("log", lines[-1])
                    log.reset()
            if callback is not None:
                callback("epoch", epoch + 1)
        return lines

    def predict_proba(self, images, num_threads=None):
        """Class probabilities (n, 10) float64 for uint8 images (n, h, w) or one (h, w).

        The batch is split across ``num_threads`` OpenMP threads (default: all cores);
        the numbers do not depend on the thread count.
        """
        images, _ = _check_batch(images)
        filters, weights, biases = self._parameters()
        out = np.empty((len(images), weights.shape[1]))
        threads = 0 if num_threads is None else positive_int(num_threads, "num_threads")
        kernels.predict_proba(images, filters, weights, biases, out, threads)
        return out

    def predict(self, images, num_threads=None):
        """Predicted digits (n,) int64 for uint8 images (n, h, w) or one (h, w)."""
        return np.argmax(self.predict_proba(images, num_threads), axis=1)

    def evaluate(self, images, labels, num_threads=None):
        """Mean cross-entropy, accuracy and confusion matrix over a labelled set."""
        images, labels = _check_batch(images, labels)
        probs = self.predict_proba(images, num_threads)
        picked = probs[np.arange(len(labels)), labels]
        with np.errstate(divide="ignore"):
            loss = float(np.mean(-np.log(picked))) if len(labels) else math.nan
        predicted = np.argmax(probs, axis=1)
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        np.add.at(confusion, (labels, predicted), 1)
        accuracy = float(np.mean(predicted == labels)) if len(labels) else math.nan
        return Evaluation(loss, accuracy, confusion)

    def trace(self, image, label=None, *, update=False):
        """Every intermediate of one step on a uint8 image (h, w), as a :class:`~cnn_ext.trace.Trace`.

        The forward arrays (``input``, ``conv``, ``pool``, ``pool_mask``, ``totals``,
        ``probs``) and, given a ``label``, the loss and the ``d_L_d_*`` gradients, bit for bit
        the numbers of the tutorial's layer calls. The network is unchanged unless
        ``update=True``, which also applies the step, as ``train_step`` would.
        """
        from .trace import trace_network
        return trace_network(self, image, label, update=update)
