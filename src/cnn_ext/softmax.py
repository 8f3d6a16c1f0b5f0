"""Softmax: the tutorial's dense + softmax layer.

Its loops are the compiled kernels :mod:`cnn_ext._kernels` (or ``_kernels_avx2``, which
:mod:`cnn_ext._dispatch` picks on CPUs with AVX2 and FMA),
built from ``_softmax.pxi`` and ``kernels/softmax.h``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._aligned import aligned_float64
from ._dispatch import kernels
from ._validate import _FLOAT64, as_float64, expect_shape, parameter, positive_int
from ._validate import learn_rate as _rate

if TYPE_CHECKING:
    import numpy.typing as npt


class Softmax:
    """Fully connected layer + softmax: input of any shape with ``input_len`` entries ->
    ``nodes`` probabilities (float64).

    ``weights`` (input_len, nodes) are ``np.random.randn(...) / nodes`` from NumPy's global
    random state and ``biases`` (nodes,) zeros, as in the adaptation (the English original
    divides by ``input_len``: :mod:`cnn_ext.cnn_from_scratch`). ``backprop(d_L_d_out,
    learn_rate=None)`` updates both in place and returns the input gradient shaped like the
    last input; the rate is the call's when given (the English original's API), else the
    layer's ``learn_rate`` (the adaptation's constructor argument, or the class default).
    The softmax is computed shifted by the maximum total, so large totals do not overflow.
    """

    #: The rate ``backprop`` uses when the call gives none (the adaptation's default).
    learn_rate: float = 0.01

    def __init__(self, input_len: int, nodes: int, learn_rate: float = 0.01) -> None:
        positive_int(input_len, "Softmax(input_len)")
        positive_int(nodes, "Softmax(nodes)")
        # the tutorial's draw, placed where the vector kernels read it fastest (_aligned)
        self.weights: npt.NDArray[np.float64] = aligned_float64(np.random.randn(input_len, nodes) / nodes)
        self.biases: npt.NDArray[np.float64] = np.zeros(nodes)
        self.learn_rate = learn_rate
        self.last_input_shape: tuple[int, ...] | None = None
        self.last_input: npt.NDArray[np.float64] | None = None
        self.last_totals: npt.NDArray[np.float64] | None = None

    def _parameters(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        weights, biases = self.weights, self.biases
        if type(weights) is np.ndarray and type(biases) is np.ndarray and weights.ndim == 2:
            # The common case in one go: float64, C-contiguous, writable, matching shapes.
            wf, bf = weights.flags, biases.flags
            if (weights.dtype is _FLOAT64 and biases.dtype is _FLOAT64 and wf.c_contiguous
                    and wf.writeable and bf.c_contiguous and bf.writeable
                    and biases.shape == weights.shape[1:]):
                return weights, biases
        if not isinstance(weights, np.ndarray) or weights.ndim != 2:
            weights = as_float64(weights, "Softmax.weights", ndim=2)
        input_len, nodes = weights.shape
        weights = parameter(self, "weights", (input_len, nodes))
        biases = parameter(self, "biases", (nodes,))
        return weights, biases

    def forward(self, input: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Probabilities (nodes,) float64 of ``input``, any shape with ``input_len`` real
        values: softmax of ``input.flatten() @ weights + biases``. Keeps
        ``last_input_shape``, ``last_input`` (flattened) and ``last_totals`` (nodes,)."""
        if type(input) is np.ndarray and input.dtype is _FLOAT64:
            # The common case goes straight to the kernel, which checks every array in C;
            # whatever it refuses takes the checked path, which converts or explains.
            flat = input.flatten()  # a copy, as in the tutorial
            try:
                totals, output = kernels.softmax_forward(flat, self.weights, self.biases)
            except (TypeError, ValueError):
                pass
            else:
                self.last_input_shape = input.shape
                self.last_input = flat
                self.last_totals = totals
                return output
        return self._checked_forward(input)

    def _checked_forward(self, input: npt.ArrayLike) -> npt.NDArray[np.float64]:
        x = as_float64(input, "Softmax.forward(input)")
        weights, biases = self._parameters()
        input_len, nodes = weights.shape
        if x.size != input_len:
            raise ValueError(
                f"Softmax.forward(input) expects {input_len} values (weights are {weights.shape}), "
                f"got shape {x.shape} with {x.size}"
            )
        flat = x.flatten()  # a copy, as in the tutorial
        totals, output = kernels.softmax_forward(flat, weights, biases)
        self.last_input_shape = x.shape
        self.last_input = flat
        self.last_totals = totals
        return output

    def backprop(self, d_L_d_out: npt.ArrayLike, learn_rate: float | None = None) -> npt.NDArray[np.float64]:
        """From ``d_L_d_out`` (nodes,), the loss gradient with respect to the last
        probabilities: updates ``weights`` and ``biases`` in place by the rate (``learn_rate``
        if given, the English tutorial's second argument, else the layer's) and returns the gradient with respect to the last input, a new float64 array of
        ``last_input_shape``."""
        rate, weights, biases = _rate(self, learn_rate), self.weights, self.biases
        # Exact ndarrays only: the checked path swaps a subclass (a memmap, say) for a plain
        # copy before updating it in place, and so must the fast one.
        if type(d_L_d_out) is np.ndarray and type(weights) is np.ndarray and type(biases) is np.ndarray \
                and self.last_totals is not None and self.last_input is not None \
                and self.last_input_shape is not None:
            try:
                d_L_d_input = kernels.softmax_backprop(self.last_input, weights, biases,
                                                       self.last_totals, d_L_d_out, rate)
            except (TypeError, ValueError):
                pass
            else:
                return d_L_d_input.reshape(self.last_input_shape)
        return self._checked_backprop(d_L_d_out, rate)

    def _checked_backprop(self, d_L_d_out: npt.ArrayLike, rate: float) -> npt.NDArray[np.float64]:
        if self.last_totals is None or self.last_input_shape is None:
            raise RuntimeError("Softmax.backprop() called before forward(): there are no totals to differentiate")
        weights, biases = self._parameters()
        input_len, nodes = weights.shape
        x = as_float64(self.last_input, "Softmax.last_input", ndim=1)
        totals = as_float64(self.last_totals, "Softmax.last_totals", ndim=1)
        if x.shape != (input_len,) or totals.shape != (nodes,):
            raise ValueError(
                f"Softmax weights are {weights.shape} but the last forward saw {x.shape[0]} inputs "
                f"and {totals.shape[0]} totals: run forward() again after changing weights"
            )
        d_L_d_out = as_float64(d_L_d_out, "Softmax.backprop(d_L_d_out)", ndim=1)
        expect_shape(d_L_d_out, (nodes,), "Softmax.backprop(d_L_d_out)", " (one value per node)")
        d_L_d_input = kernels.softmax_backprop(x, weights, biases, totals, d_L_d_out, rate)
        return d_L_d_input.reshape(self.last_input_shape)
