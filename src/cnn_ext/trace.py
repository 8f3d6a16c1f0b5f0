"""One forward (and backward) pass of a :class:`~cnn_ext.Network`, every intermediate kept.

``Network.trace(image, label)`` returns a :class:`Trace`: the arrays the tutorial's layer
calls compute for one image, in the tutorial's names, bit for bit the numbers of
``Conv3x3.forward``, ``MaxPool2.forward``, ``Softmax.forward`` and their ``backprop``. The
calls run on copies of the layers, so the network is left as it was (unless ``update=True``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._inputs import _check_images, _check_label, one_learn_rate
from ._validate import learn_rate as _learn_rate, parameter

if TYPE_CHECKING:
    import numpy.typing as npt

    from .network import Network

__all__ = ["Trace", "trace_network"]


@dataclass(frozen=True, eq=False)
class Trace:
    """Every intermediate of one training step of the tutorial's network (float64 arrays).

    For an image (h, w) and ``nf`` filters, with ``ph, pw = (h - 2) // 2, (w - 2) // 2``
    (MaxPool2 drops an odd last row or column of the conv output, as the tutorial's does):

    - ``image`` (h, w) uint8: the image as given; ``input`` (h, w): ``(image / 255) - 0.5``.
    - ``conv`` (h-2, w-2, nf): ``Conv3x3.forward(input)``.
    - ``pool`` (ph, pw, nf): ``MaxPool2.forward(conv)``.
    - ``pool_mask`` (h-2, w-2, nf) bool: the positions equal to their 2x2 window's maximum,
      where ``MaxPool2.backprop`` routes the gradient (every tied maximum gets it; a NaN
      equals nothing; an odd last row or column is never routed to).
    - ``totals`` (nodes,): the softmax layer's pre-activations; ``probs`` (nodes,): its output.
    - ``prediction``: ``argmax(probs)``.

    With a label (else None):

    - ``label``, ``loss`` (``-log(probs[label])``), ``correct`` (1 or 0), ``learn_rate``.
    - ``d_L_d_out`` (nodes,): zeros but ``-1 / probs[label]`` at the label (the tutorial's).
    - ``d_L_d_pool`` (ph, pw, nf): ``Softmax.backprop(d_L_d_out)``.
    - ``d_L_d_conv`` (h-2, w-2, nf): ``MaxPool2.backprop(d_L_d_pool)``.
    - ``d_L_d_filters`` (nf, 3, 3): the gradient ``Conv3x3.backprop(d_L_d_conv)`` applies,
      ``filters - learn_rate * d_L_d_filters``.
    - ``d_L_d_totals`` (nodes,), ``d_L_d_biases`` (nodes,) (equal: ``d_L_d_t`` of the
      tutorial's Softmax.backprop) and ``d_L_d_weights`` (input_len, nodes), the outer product
      ``flat pool x d_L_d_t``.

    The gradients are exact: the numbers the kernels subtract. How the subtraction
    ``p - learn_rate * g`` rounds depends on the build: the portable kernels round the
    product, then the difference, as NumPy does (so ``filters - learn_rate * d_L_d_filters``
    is the updated filters, bit for bit); the vector builds (the "fma" family: AVX2,
    AVX-512, NEON) round once per parameter, in one FMA, and their 10-node softmax updates
    each weight as ``w - x * (learn_rate * d_L_d_t)``. ``Network.trace(..., update=True)``
    applies the layers' own update, whichever it is.
    """

    image: npt.NDArray[np.uint8]
    input: npt.NDArray[np.float64]
    conv: npt.NDArray[np.float64]
    pool: npt.NDArray[np.float64]
    pool_mask: npt.NDArray[np.bool_]
    totals: npt.NDArray[np.float64]
    probs: npt.NDArray[np.float64]
    label: int | None = None
    loss: float | None = None
    correct: int | None = None
    learn_rate: float | None = None
    d_L_d_out: npt.NDArray[np.float64] | None = None
    d_L_d_pool: npt.NDArray[np.float64] | None = None
    d_L_d_conv: npt.NDArray[np.float64] | None = None
    d_L_d_filters: npt.NDArray[np.float64] | None = None
    d_L_d_totals: npt.NDArray[np.float64] | None = None
    d_L_d_weights: npt.NDArray[np.float64] | None = None
    d_L_d_biases: npt.NDArray[np.float64] | None = None

    @property
    def num_filters(self) -> int:
        count: int = self.conv.shape[2]
        return count

    @property
    def prediction(self) -> int:
        """The predicted class, ``argmax(probs)`` (int)."""
        return int(np.argmax(self.probs))

    @property
    def has_gradients(self) -> bool:
        return self.label is not None

    def __repr__(self) -> str:
        h, w = self.input.shape
        text = f"Trace(input {h}x{w}, {self.num_filters} filters, prediction {self.prediction}"
        if self.label is not None:
            text += f", label {self.label}, loss {self.loss:.4g}"
        ties = self.tie_counts().sum(axis=0)
        return text + f", windows: {ties[3]} 4-way / {ties[2]} 3-way / {ties[1]} 2-way ties, {ties[0]} single)"

    def window_ties(self) -> npt.NDArray[np.int_]:
        """Per pooling window, how many of its 4 positions equal the maximum: int (ph, pw, nf).

        1 is a single maximum; 2, 3 and 4 are 2-, 3- and 4-way ties (all of which the
        tutorial's MaxPool2.backprop feeds); 0 only for a window holding a NaN.
        """
        ph, pw, nf = self.pool.shape
        m = self.pool_mask[:2 * ph, :2 * pw].reshape(ph, 2, pw, 2, nf)
        ties: npt.NDArray[np.int_] = m.sum(axis=(1, 3))
        return ties

    def tie_counts(self) -> npt.NDArray[np.int64]:
        """How many windows per filter have 1, 2, 3 and 4 maxima: int64 (nf, 4).

        Row f, column k - 1 counts the windows of filter f with k equal maxima.
        """
        ties = self.window_ties()
        counts: npt.NDArray[np.int64] = np.stack([(ties == k).sum(axis=(0, 1)) for k in (1, 2, 3, 4)], axis=1)
        return counts

    def tie_map(self) -> npt.NDArray[np.int_]:
        """``window_ties`` spread back onto the conv grid: int (h-2, w-2, nf), 0 where the
        position is not a maximum of its window."""
        ties = np.repeat(np.repeat(self.window_ties(), 2, axis=0), 2, axis=1)
        out = np.zeros(self.pool_mask.shape, dtype=ties.dtype)
        out[:ties.shape[0], :ties.shape[1]] = ties
        spread: npt.NDArray[np.int_] = np.where(self.pool_mask, out, 0)
        return spread


def _float64_copy(array: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.array(array, dtype=np.float64, order="C", copy=True)


def trace_network(network: Network, image: npt.ArrayLike, label: int | np.integer[Any] | None = None, *,
                  update: bool = False) -> Trace:
    """The :class:`Trace` of ``network`` on one uint8 image (h, w), optionally with a label.

    Runs the tutorial's six layer calls on copies of the network's layers, with the
    network's learn rate. ``update=True`` (needs a label) then stores the updated
    parameters back into the network's arrays, in place: the step ``train_step`` takes.
    """
    # The checks of train_step (cnn_ext._inputs): the same errors for the same mistakes.
    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"Network.trace(image) expects one uint8 image of shape (h, w), got shape {array.shape}"
                         + (": trace the images one at a time" if array.ndim == 3 else ""))
    pixels = _check_images(array, network, "Network.trace(image)")[0].copy()
    nodes = network.nodes
    if label is not None:
        label = _check_label(label, nodes, "Network.trace(label)")
    elif update:
        raise ValueError("Network.trace(update=True) needs a label: there is no step without one")
    # With a label the step's rate, checked as train_step checks it (one rate for both layers).
    rate = one_learn_rate(network) if label is not None else _learn_rate(network.conv)
    conv = copy.copy(network.conv)
    pool = copy.copy(network.pool)
    softmax = copy.copy(network.softmax)
    conv.filters = _float64_copy(network.conv.filters)
    softmax.weights = _float64_copy(network.softmax.weights)
    softmax.biases = _float64_copy(network.softmax.biases)
    conv.learn_rate = softmax.learn_rate = rate

    x = (pixels / 255) - 0.5
    conv_out = conv.forward(x)
    pool_out = pool.forward(conv_out)
    probs = softmax.forward(pool_out)
    totals = softmax.last_totals.copy()  # type: ignore[union-attr]  # set by the forward just above

    ch, cw, nf = conv_out.shape
    ph, pw = ch // 2, cw // 2
    pool_mask = np.zeros(conv_out.shape, dtype=bool)
    # NaN == NaN is False, as in MaxPool2.backprop's comparison.
    pool_mask[:2 * ph, :2 * pw] = conv_out[:2 * ph, :2 * pw] == np.repeat(np.repeat(pool_out, 2, axis=0), 2, axis=1)

    fields: dict[str, Any] = dict(image=pixels, input=x, conv=conv_out, pool=pool_out, pool_mask=pool_mask,
                  totals=totals, probs=probs)
    if label is None:
        return Trace(**fields)

    p = float(probs[label])
    loss = -math.log(p) if p > 0 else (p if math.isnan(p) else math.inf)
    d_L_d_out = np.zeros(nodes)
    d_L_d_out[label] = -1 / p if p != 0 else -math.inf

    # The gradients the updates are made of: the kernels compute and apply them in one go
    # (params -= rate * grad), so they are read off a second backprop on parameters of -0.0
    # with rate 1.0: -0.0 - 1.0 * g is exactly -g, signed zeros included. Neither gradient
    # depends on the parameters it updates (Softmax.backprop reads only the last input and
    # totals, Conv3x3.backprop only its input and d_L_d_out).
    probe = copy.copy(softmax)
    probe.weights = np.full_like(softmax.weights, -0.0)
    probe.biases = np.full_like(softmax.biases, -0.0)
    probe.learn_rate = 1.0
    probe.backprop(d_L_d_out)
    d_L_d_weights, d_L_d_t = -probe.weights, -probe.biases

    d_L_d_pool = softmax.backprop(d_L_d_out)  # updates the copy's weights and biases
    d_L_d_conv = pool.backprop(d_L_d_pool)

    filters_probe = copy.copy(conv)
    filters_probe.filters = np.full_like(conv.filters, -0.0)
    filters_probe.learn_rate = 1.0
    filters_probe.backprop(d_L_d_conv)
    d_L_d_filters = -filters_probe.filters
    conv.backprop(d_L_d_conv)  # updates the copy's filters

    if update:
        for layer, copied, name, shape in ((network.conv, conv, "filters", conv.filters.shape),
                                           (network.softmax, softmax, "weights", softmax.weights.shape),
                                           (network.softmax, softmax, "biases", softmax.biases.shape)):
            np.copyto(parameter(layer, name, shape), getattr(copied, name))

    fields.update(label=label, loss=loss, correct=int(np.argmax(probs) == label), learn_rate=rate,
                  d_L_d_out=d_L_d_out, d_L_d_pool=d_L_d_pool, d_L_d_conv=d_L_d_conv,
                  d_L_d_filters=d_L_d_filters, d_L_d_totals=d_L_d_t, d_L_d_weights=d_L_d_weights,
                  d_L_d_biases=d_L_d_t.copy())
    return Trace(**fields)
