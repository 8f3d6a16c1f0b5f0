"""``Softmax`` as the English original has it: ``Softmax(input_len, nodes)`` with weights
``randn(input_len, nodes) / input_len``, and ``backprop(d_L_d_out, learn_rate)`` that
applies only the first non-zero entry of ``d_L_d_out``."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import softmax as _softmax
from .._aligned import aligned_float64
from .._validate import as_float64, positive_int

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Softmax"]


class Softmax(_softmax.Softmax):
    """Fully connected layer + softmax, the English original's API on cnn_ext's compiled
    layer: input of any shape with ``input_len`` entries -> ``nodes`` probabilities.

    ``weights`` (input_len, nodes) are ``np.random.randn(...) / input_len`` from NumPy's
    global random state and ``biases`` (nodes,) zeros, as in the original.
    ``backprop(d_L_d_out, learn_rate)`` updates both in place and returns the input
    gradient shaped like the last input.
    """

    def __init__(self, input_len: int, nodes: int) -> None:
        # Not the adaptation's constructor: one draw, divided as the original divides it.
        positive_int(input_len, "Softmax(input_len)")
        positive_int(nodes, "Softmax(nodes)")
        self.weights = aligned_float64(np.random.randn(input_len, nodes) / input_len)
        self.biases = np.zeros(nodes)
        self.last_input_shape = None
        self.last_input = None
        self.last_totals = None

    def backprop(self, d_L_d_out: npt.ArrayLike, learn_rate: float  # type: ignore[override]
                 ) -> npt.NDArray[np.float64]:
        """Update ``weights`` and ``biases`` by ``learn_rate`` (a finite number > 0) and
        return the gradient with respect to the last input (shaped like it), from
        ``d_L_d_out`` (nodes,).

        As in the original, only the first non-zero entry of ``d_L_d_out`` counts (its
        training loop sets just one, ``-1 / out[label]``). Where the original returns
        ``None`` for an all-zero gradient, this returns zeros and changes nothing.
        """
        if learn_rate is None:  # the parent's "use the layer's rate" must not slip through
            raise TypeError("Softmax.backprop(d_L_d_out, learn_rate) needs the learn rate, "
                            "a finite number > 0, got None")
        gradient = as_float64(d_L_d_out, "Softmax.backprop(d_L_d_out)", ndim=1)
        nonzero = np.flatnonzero(gradient)  # NaN is non-zero here, as in `gradient == 0`
        if len(nonzero) > 1:
            first = np.zeros_like(gradient)
            first[nonzero[0]] = gradient[nonzero[0]]
            gradient = first
        return super().backprop(gradient, learn_rate)
