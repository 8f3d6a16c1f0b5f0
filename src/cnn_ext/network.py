"""The tutorial's whole network, Conv3x3(8) -> MaxPool2 -> Softmax(13*13*8, 10), as one object.

``Network`` runs the tutorial's per-sample SGD recipe over the layer objects it holds, so
``network.conv.filters`` and friends stay the tutorial's attributes (``ModelSaver`` saves
and loads them). Images are uint8 (28, 28) as MNIST ships them; each is normalised as the
tutorial does, ``(image / 255) - 0.5``, before the first layer.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._dispatch import kernels
from .conv import Conv3x3
from .maxpool import MaxPool2
from .softmax import Softmax
from ._validate import parameter, positive_int
from ._inputs import _check_images, _check_int, _check_label, _check_labels, check_learn_rate, one_learn_rate
from .history import EpochRecord, History, StepRecord
from ._interrupt import TrainingInterrupted, deferred_sigint

if TYPE_CHECKING:
    import numpy.typing as npt

    from .trace import Trace

NUM_CLASSES = 10
_UINT8 = np.dtype(np.uint8)


# predict_proba never starts more OpenMP threads than this many per CPU: libgomp ends the
# whole interpreter when it cannot create a thread, which no try/except catches.
THREADS_PER_CPU = 4


def _thread_count(num_threads: int | None, images: int) -> int:
    """The OpenMP thread count for a batch: 0 (OpenMP's default, one per core) for None,
    else at most one per image and at most THREADS_PER_CPU per CPU."""
    if num_threads is None:
        return 0
    threads = positive_int(num_threads, "num_threads")
    return max(1, min(threads, images, THREADS_PER_CPU * (os.cpu_count() or 1)))


class _StepLog:
    """Running loss and accuracy since the last log record (mutable; fit hands out
    immutable StepRecords of it)."""

    def __init__(self) -> None:
        self.step = 0
        self.count = 0
        self.loss = 0.0
        self.correct = 0

    def record(self, epoch: int) -> StepRecord:
        return StepRecord(self.step, epoch, self.count, self.loss / self.count if self.count else math.nan,
                          self.correct / self.count if self.count else math.nan)

    def reset(self) -> None:
        self.count, self.loss, self.correct = 0, 0.0, 0


@dataclass
class Evaluation:
    """Mean cross-entropy ``loss``, ``accuracy`` (0..1) and ``confusion`` (nodes, nodes)
    int64 (rows: true label, columns: predicted)."""

    loss: float
    accuracy: float
    confusion: npt.NDArray[np.int64] = field(repr=False)

    @property
    def per_class_accuracy(self) -> npt.NDArray[np.float64]:
        totals = self.confusion.sum(axis=1)
        accuracy: npt.NDArray[np.float64] = np.divide(np.diag(self.confusion), totals,
                                                      out=np.zeros(len(totals)), where=totals > 0)
        return accuracy


def _check_layers_fit(conv: Conv3x3, softmax: Softmax, image_shape: tuple[int, int] | None) -> None:
    """Refuse a Softmax whose input length the conv layer cannot give, naming the sizes.

    With ``image_shape`` the length must be exactly (h-2)//2 * (w-2)//2 * num_filters.
    Without it, any multiple of num_filters is accepted (the layers may be meant for
    images of another size, which ``fit`` checks); anything else fits no image at all.
    """
    nf = conv.num_filters
    weights = np.shape(softmax.weights)
    if len(weights) != 2:
        return  # the layer's own checks explain a malformed weights array when it is used
    input_len, nodes = weights
    if image_shape is not None:
        h, w = image_shape
        ph, pw = (h - 2) // 2, (w - 2) // 2
        if input_len == ph * pw * nf:
            return
        gives = f"on {h}x{w} images gives"
    else:
        if input_len % nf == 0:
            return
        ph = pw = 13
        gives = f"gives a multiple of {nf} (on MNIST's 28x28 images"
    fix = f"use Softmax({ph * pw * nf}, {nodes})"
    if input_len % (ph * pw) == 0:
        fix += f" or Conv3x3({input_len // (ph * pw)})"
    raise ValueError(
        f"Network: Softmax({input_len}, {nodes}) takes {input_len} inputs, but Conv3x3({nf}) {gives} "
        f"{ph}x{pw}x{nf} = {ph * pw * nf} after MaxPool2" + (")" if image_shape is None else "") + f": {fix}")


class Network:
    """Conv3x3 -> MaxPool2 -> Softmax, trained one image at a time as in the tutorial.

    Built from existing layers, or new ones: ``Network(seed=0)`` seeds NumPy's global
    random state and draws the conv filters, then the softmax weights, exactly as the
    tutorial's script does after ``np.random.seed(0)``. The number of classes is the
    softmax's ``nodes`` (10 for MNIST); labels are integers in ``0..nodes-1``.
    ``image_shape`` (h, w) sizes a new Softmax (default MNIST's 28x28); a given Softmax
    that the conv layer cannot feed (``Softmax(1352, 10)`` after ``Conv3x3(16)``) is
    refused here with the sizes, not at the first ``fit``.

    ``train_step``, ``fit``, ``predict_proba``, ``predict`` and ``evaluate`` run fused
    compiled kernels on the layers' own parameter arrays, which they update in place;
    they give bit for bit the numbers of the layer-by-layer calls (``forward`` and the
    layers' own methods), but do not set the layers' ``last_*`` attributes.

    Images are **raw uint8 pixels** (h, w) or (n, h, w), as MNIST ships them: the network
    normalises each one itself, ``(image / 255) - 0.5``, as the tutorial does before its
    first layer. (The layer classes, like the tutorial's, take whatever floats they are
    given, so feed them the normalised image.)
    """

    def __init__(self, conv: Conv3x3 | None = None, pool: MaxPool2 | None = None,
                 softmax: Softmax | None = None, *, num_filters: int = 8,
                 image_shape: tuple[int, int] | None = None, seed: int | None = None,
                 learn_rate: float = 0.005) -> None:
        rate = check_learn_rate(learn_rate, "Network(learn_rate)")
        if seed is not None:
            np.random.seed(seed)
        h, w = image_shape if image_shape is not None else (28, 28)
        self.conv = conv if conv is not None else Conv3x3(num_filters)
        self.pool = pool if pool is not None else MaxPool2()
        if softmax is not None:
            _check_layers_fit(self.conv, softmax, image_shape)
        self.softmax = softmax if softmax is not None else Softmax(
            ((h - 2) // 2) * ((w - 2) // 2) * self.conv.num_filters, NUM_CLASSES)
        self.learn_rate = rate
        # kernels.TrainState of the last train_step, and its learn_rate
        self._train_state: kernels.TrainState | None = None
        self._train_rate: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The compiled TrainState (addresses, buffers) does not copy or pickle; a copy builds
        # its own at its first train_step.
        state = self.__dict__.copy()
        state["_train_state"] = state["_train_rate"] = None
        return state

    def __repr__(self) -> str:
        weights = self.softmax.weights
        count = sum(int(np.size(a)) for a in (self.conv.filters, weights, self.softmax.biases))
        return (f"Network(Conv3x3({self.conv.num_filters}) -> MaxPool2 -> "
                f"Softmax({np.shape(weights)[0]}, {self.nodes}), learn_rate={self.conv.learn_rate!r}, "
                f"parameters={count:,})")

    @property
    def learn_rate(self) -> float:
        """The SGD step size, shared by the conv and softmax layers: a finite number > 0."""
        return self.conv.learn_rate

    @learn_rate.setter
    def learn_rate(self, value: float) -> None:
        rate = check_learn_rate(value)
        self.conv.learn_rate = rate
        self.softmax.learn_rate = rate

    @property
    def nodes(self) -> int:
        """The number of classes: the softmax layer's ``nodes``."""
        return int(np.shape(self.softmax.weights)[1])

    def _rate(self) -> float:
        # The fused kernels take one learn rate for both layers.
        return one_learn_rate(self)

    def _parameters(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        filters = parameter(self.conv, "filters", (self.conv.num_filters, 3, 3))
        weights, biases = self.softmax._parameters()
        return filters, weights, biases

    def _fits(self, shape: tuple[int, ...]) -> bool:
        """Whether uint8 images of ``shape`` (h, w) give the softmax its input length."""
        if len(shape) != 2 or shape[0] < 3 or shape[1] < 3:
            return False
        h, w = shape
        fits: bool = ((h - 2) // 2) * ((w - 2) // 2) * self.conv.num_filters == np.shape(self.softmax.weights)[0]
        return fits

    def _shape_hint(self) -> str:
        side = math.isqrt(np.shape(self.softmax.weights)[0] // max(self.conv.num_filters, 1))
        if self._fits((2 * side + 2, 2 * side + 2)):
            return f"{2 * side + 2}, {2 * side + 2}"
        return "h, w"

    def _reshape_hint(self, shape: tuple[int, ...]) -> str:
        side = self._shape_hint().split(",")[0]
        if side.isdigit() and len(shape) == 2 and shape[-1] == int(side) ** 2:
            return f": flat images must be reshaped first, images.reshape(-1, {side}, {side})"
        if side.isdigit() and len(shape) == 1 and shape[0] == int(side) ** 2:
            return f": a flat image must be reshaped first, image.reshape({side}, {side})"
        return ""

    def forward(self, image: npt.NDArray[np.uint8], label: int | np.integer[Any]
                ) -> tuple[npt.NDArray[np.float64], float, int]:
        """The tutorial's ``forward`` through the layer objects, for one uint8 image (h, w)
        and its label: ``(probabilities (nodes,) float64, loss, 1 or 0)``."""
        out = self.conv.forward((image / 255) - 0.5)
        out = self.pool.forward(out)
        out = self.softmax.forward(out)
        p = float(out[label])
        loss = -math.log(p) if p > 0 else (p if math.isnan(p) else math.inf)
        return out, loss, 1 if np.argmax(out) == label else 0

    def train_step(self, image: npt.ArrayLike, label: int | np.integer[Any]) -> tuple[float, int]:
        """One SGD step on one uint8 image (h, w) with an integer label in 0..nodes-1, the
        tutorial's ``train``: returns ``(loss, 1 or 0)`` (1 if the image was classified
        correctly before the update)."""
        # The common case: the compiled state of the last call (parameter addresses, scratch
        # buffers) is reused while the layers hold the same arrays and learn rate; it checks
        # the image, the label and the arrays itself, in C. Anything else: the checked path.
        state = self._reusable_state()
        if state is not None and type(label) is int and label >= 0:
            try:
                # the kernel checks the image itself: anything but a fitting uint8 image
                # raises ValueError here and takes the checked path
                result = state.step(image, label)  # type: ignore[arg-type]
            except (ValueError, OverflowError):  # another image shape, dtype or layout; a label too large
                result = None
            if result is not None:
                return result
        return self._checked_train_step(image, label)

    def _checked_train_step(self, image: npt.ArrayLike, label: object) -> tuple[float, int]:
        if type(image) is np.ndarray and image.dtype is _UINT8 and image.ndim == 2 \
                and image.flags.c_contiguous and self._fits(image.shape):
            pixels: npt.NDArray[np.uint8] = image
        else:
            array = np.asarray(image)
            if array.ndim != 2:
                raise ValueError(f"Network.train_step(image) expects one uint8 image of shape "
                                 f"({self._shape_hint()}), got shape {array.shape}"
                                 + (": train on a batch with Network.fit(images, labels)" if array.ndim == 3
                                    else self._reshape_hint(array.shape)))
            pixels = _check_images(array, self, "Network.train_step(image)")[0]
        checked_label = _check_label(label, self.nodes, "Network.train_step(label)")
        rate = self._rate()
        state = self._reusable_state()
        if state is not None and pixels.shape == (state.h, state.w):
            result = state.step(pixels, checked_label)
            if result is not None:
                return result
        self._train_state = None
        filters, weights, biases = self._parameters()
        state = kernels.TrainState(filters, weights, biases, rate, *pixels.shape)
        self._train_state, self._train_rate = state, self.conv.learn_rate
        # None only when the parameter arrays changed since the state was built: these were
        # checked just above
        return state.step(pixels, checked_label)  # type: ignore[return-value]

    def _reusable_state(self) -> kernels.TrainState | None:
        # The TrainState of the last train_step while the layers still hold the arrays and
        # learn rate it was built on (it checks the arrays' shape and layout itself).
        state, conv, softmax = self._train_state, self.conv, self.softmax
        if (state is not None and state.filters is conv.filters and state.weights is softmax.weights
                and state.biases is softmax.biases and self._train_rate is conv.learn_rate
                and softmax.learn_rate is conv.learn_rate):
            return state
        return None

    def _held(self) -> tuple[object, ...]:
        """What the kernels of ``fit`` work on: the parameter arrays and the learn rate."""
        return (self.conv.filters, self.softmax.weights, self.softmax.biases, self.conv.learn_rate,
                self.softmax.learn_rate)

    def _fit_state(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64],
                                  float, tuple[object, ...]]:
        """What fit's kernels train: the checked parameter arrays, the learn rate, and what
        the layers held when they were read (to notice a callback replacing them)."""
        filters, weights, biases = self._parameters()
        return filters, weights, biases, self._rate(), self._held()

    def _replaced(self, held: tuple[object, ...]) -> bool:
        return any(now is not then for now, then in zip(self._held(), held))

    def fit(self, images: npt.ArrayLike, labels: npt.ArrayLike, epochs: int = 1, *,
            seed: int | np.random.Generator | None = 0, shuffle: bool = True, log_every: int = 0,
            callback: Callable[[Literal["progress", "log", "epoch"], StepRecord | EpochRecord], object]
            | None = None,
            chunk: int = 2000,
            validation_data: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
            initial_epoch: int = 0, initial_step: int = 0) -> History:
        """Per-sample SGD over uint8 ``images`` (n, h, w) and integer ``labels`` (n,).

        Each of the ``epochs`` epochs visits the images in a permutation drawn from ``seed``
        (the same seed gives the same order, hence the same weights, bit for bit; with
        ``shuffle=False``, in order). The steps run in compiled chunks of up to ``chunk``
        images without the GIL. Between chunks, ``callback(kind, record)`` is called with

        - ``("progress", StepRecord)``: the running loss and accuracy since the last log;
        - ``("log", StepRecord)`` every ``log_every`` steps (``str(record)`` is the
          tutorial's "[Step N] Past 100 steps :Average Loss ..." line);
        - ``("epoch", EpochRecord)`` after each epoch.

        Every record is a new immutable object. If the callback replaces a layer's
        parameter array or the learn rate, the following steps train the new ones.
        ``validation_data=(x, y)`` is evaluated after every epoch. A loss that becomes NaN
        (a learn rate too large, say) gives one ``RuntimeWarning`` naming the step.

        Ctrl-C (SIGINT, in the main thread) stops at the next chunk boundary with
        :class:`~cnn_ext.TrainingInterrupted` (a ``KeyboardInterrupt``): the network holds
        the weights of whole steps, and the exception the position (``epoch``, ``step``) and
        the ``history`` so far; a second Ctrl-C raises ``KeyboardInterrupt`` at once.
        ``initial_epoch`` (epochs already trained) and ``initial_step`` (steps already trained
        of the next epoch's order) continue such a run: the orders of the epochs before are
        drawn from ``seed`` and skipped, and training goes on to the end of epoch ``epochs``,
        so that the weights end bit for bit as those of the run left alone.

        Returns a :class:`~cnn_ext.history.History`: per-epoch ``loss``, ``accuracy`` (and
        ``val_loss``, ``val_accuracy``) in ``history.history``, the log records in
        ``history.steps``.
        """
        images = _check_images(images, self, "Network.fit(images)")
        labels = _check_labels(labels, len(images), self.nodes, "Network.fit(labels)")
        epochs = _check_int(epochs, "Network.fit(epochs)", 0)
        log_every = _check_int(log_every, "Network.fit(log_every)", 0)
        chunk = _check_int(chunk, "Network.fit(chunk)", 1)
        initial_epoch = _check_int(initial_epoch, "Network.fit(initial_epoch)", 0)
        initial_step = _check_int(initial_step, "Network.fit(initial_step)", 0)
        if initial_epoch > epochs or (initial_step and initial_step >= len(images)) \
                or (initial_step and initial_epoch == epochs):
            raise ValueError(f"Network.fit(initial_epoch={initial_epoch}, initial_step={initial_step}) "
                             f"is not a position inside {epochs} epoch(s) of {len(images)} steps")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"Network.fit(shuffle) must be True or False, got {shuffle!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"Network.fit(callback) must be callable or None, got {callback!r}")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("Network.fit(validation_data) must be a pair (images, labels), got "
                                f"{type(validation_data).__name__}")
            val_images = _check_images(validation_data[0], self, "Network.fit(validation_data) images")
            val_labels = _check_labels(validation_data[1], len(val_images), self.nodes,
                                       "Network.fit(validation_data) labels")
        try:
            order_rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Network.fit(seed) must be None, a non-negative integer or a "
                             f"numpy Generator, got {seed!r}: {exc}") from None
        rate = self._rate()
        log = _StepLog()
        log.step = initial_epoch * len(images) + initial_step  # steps are counted across the run
        history = History(params={"epochs": epochs, "steps": len(images), "seed": seed, "shuffle": shuffle,
                                  "log_every": log_every, "learn_rate": rate})
        if initial_epoch or initial_step:
            history.params.update(initial_epoch=initial_epoch, initial_step=initial_step)
        if shuffle:
            for _ in range(initial_epoch):  # the orders of the epochs already trained
                order_rng.permutation(len(images))
        with deferred_sigint() as stop_requested:
            self._fit_epochs(images, labels, epochs, initial_epoch, initial_step, order_rng, shuffle,
                             log_every, callback, chunk, (val_images, val_labels) if validation_data is not None else None,
                             log, history, stop_requested)
        return history

    def _fit_epochs(self, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], epochs: int,
                    initial_epoch: int, initial_step: int, order_rng: np.random.Generator, shuffle: bool,
                    log_every: int, callback: Callable[[Literal["progress", "log", "epoch"],
                                                        StepRecord | EpochRecord], object] | None,
                    chunk: int, validation: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]] | None,
                    log: _StepLog, history: History, stop_requested: Callable[[], bool]) -> None:
        """fit's loop over the checked arguments (fit documents them)."""
        filters, weights, biases, rate, held = self._fit_state()
        losses, correct = np.empty(chunk), np.empty(chunk, dtype=np.uint8)
        epoch_losses, epoch_correct = np.empty(len(images)), np.empty(len(images), dtype=np.uint8)
        warned = False
        for epoch in range(initial_epoch + 1, epochs + 1):
            order = order_rng.permutation(len(images)) if shuffle else np.arange(len(images))
            order = order.astype(np.int64, copy=False)  # the kernel's `long long` indices
            first = start = initial_step if epoch == initial_epoch + 1 else 0
            while start < len(order):
                if stop_requested():  # Ctrl-C: stop between two chunks, where the position is known
                    raise TrainingInterrupted(history, epoch, start, len(order))
                size = min(chunk, len(order) - start)
                if log_every:
                    # log.step % log_every: the steps since the last log (a resumed run's first
                    # interval may be shorter)
                    size = min(size, log_every - log.step % log_every)
                # The kernel adds the losses to log.loss one at a time, as the tutorial's
                # `loss += l` (the same float as that loop in Python, 27 ns a step less), so
                # log lines do not depend on chunking.
                log.loss = kernels.train_steps(images, labels, order[start:start + size], filters,
                                               weights, biases, rate, losses, correct, log.loss)
                epoch_losses[start:start + size] = losses[:size]
                epoch_correct[start:start + size] = correct[:size]
                if not warned and np.isnan(losses[:size]).any():
                    warned = True
                    step = log.step + 1 + int(np.flatnonzero(np.isnan(losses[:size]))[0])
                    history.nan_step = step
                    warnings.warn(f"Network.fit: the loss became NaN at step {step} (epoch {epoch}) and "
                                  f"the weights with it; try a smaller learn rate than {rate!r}",
                                  RuntimeWarning, stacklevel=3)  # the caller of fit
                start += size
                log.correct += int(correct[:size].sum())
                log.count += size
                log.step += size
                if callback is not None:
                    callback("progress", log.record(epoch))
                if log_every and log.step % log_every == 0:
                    step_record = log.record(epoch)  # a name of its own: record is an EpochRecord
                    history.steps.append(step_record)
                    if callback is not None:
                        callback("log", step_record)
                    log.reset()
                if callback is not None and self._replaced(held):
                    # The callback replaced a parameter array or the learn rate: train those.
                    filters, weights, biases, rate, held = self._fit_state()
            done = len(images) - first  # a resumed epoch's record covers the steps trained here
            record = EpochRecord(epoch, math.fsum(epoch_losses[first:].tolist()) / done if done else math.nan,
                                 float(epoch_correct[first:].mean()) if done else math.nan)
            if validation is not None:
                result = self._evaluation(validation[0], validation[1], None)
                record = EpochRecord(record.epoch, record.loss, record.accuracy, result.loss, result.accuracy)
            history.add_epoch(record)
            if callback is not None:
                callback("epoch", record)
                if self._replaced(held):
                    filters, weights, biases, rate, held = self._fit_state()

    def predict_proba(self, images: npt.ArrayLike, num_threads: int | None = None) -> npt.NDArray[np.float64]:
        """Class probabilities (n, nodes) float64 for uint8 images (n, h, w) or one (h, w).

        The batch is split across ``num_threads`` OpenMP threads (default: one per core),
        never more than one per image nor more than ``THREADS_PER_CPU`` (4) per CPU; the
        numbers do not depend on the thread count.
        """
        return self._probabilities(_check_images(images, self, "Network.predict_proba(images)"), num_threads)

    def _probabilities(self, images: npt.NDArray[np.uint8], num_threads: int | None) -> npt.NDArray[np.float64]:
        # images: checked uint8 (n, h, w), as _check_images returns them
        filters, weights, biases = self._parameters()
        out = np.empty((len(images), weights.shape[1]))
        kernels.predict_proba(images, filters, weights, biases, out, _thread_count(num_threads, len(images)))
        return out

    def predict(self, images: npt.ArrayLike, num_threads: int | None = None) -> npt.NDArray[np.int64]:
        """Predicted classes (n,) int64 for uint8 images (n, h, w) or one (h, w)."""
        classes: npt.NDArray[np.int64] = np.argmax(self.predict_proba(images, num_threads), axis=1)
        return classes

    def evaluate(self, images: npt.ArrayLike, labels: npt.ArrayLike, num_threads: int | None = None) -> Evaluation:
        """Mean cross-entropy, accuracy and (nodes, nodes) confusion matrix over uint8
        ``images`` (n, h, w) and integer ``labels`` (n,)."""
        images = _check_images(images, self, "Network.evaluate(images)")
        labels = _check_labels(labels, len(images), self.nodes, "Network.evaluate(labels)")
        return self._evaluation(images, labels, num_threads)

    def _evaluation(self, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64],
                    num_threads: int | None) -> Evaluation:
        # images and labels: checked, as _check_images and _check_labels return them
        probs = self._probabilities(images, num_threads)
        picked = probs[np.arange(len(labels)), labels]
        with np.errstate(divide="ignore"):
            loss = float(np.mean(-np.log(picked))) if len(labels) else math.nan
        predicted = np.argmax(probs, axis=1)
        confusion = np.zeros((self.nodes, self.nodes), dtype=np.int64)
        np.add.at(confusion, (labels, predicted), 1)
        accuracy = float(np.mean(predicted == labels)) if len(labels) else math.nan
        return Evaluation(loss, accuracy, confusion)

    def trace(self, image: npt.ArrayLike, label: int | np.integer[Any] | None = None, *,
              update: bool = False) -> Trace:
        """Every intermediate of one step on a uint8 image (h, w), as a :class:`~cnn_ext.trace.Trace`.

        The forward arrays (``input``, ``conv``, ``pool``, ``pool_mask``, ``totals``,
        ``probs``) and, given a ``label``, the loss and the ``d_L_d_*`` gradients, bit for bit
        the numbers of the tutorial's layer calls. The network is unchanged unless
        ``update=True``, which also applies the step, as ``train_step`` would.
        """
        from .trace import trace_network
        return trace_network(self, image, label, update=update)
