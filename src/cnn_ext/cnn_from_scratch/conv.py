"""``Conv3x3`` as the English original has it: ``Conv3x3(num_filters)``, and
``backprop(d_L_d_out, learn_rate)`` with the rate passed to every call."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import conv as _conv

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Conv3x3"]


class Conv3x3(_conv.Conv3x3):
    """Convolution with ``num_filters`` 3x3 filters (valid padding, stride 1), the English
    original's API on cnn_ext's compiled layer.

    ``forward``: image (h, w) -> (h-2, w-2, num_filters) float64.
    ``backprop(d_L_d_out, learn_rate)``: updates ``filters`` in place, returns None.
    ``filters`` (num_filters, 3, 3) are ``np.random.randn(...) / 9``, as in the original.
    """

    def __init__(self, num_filters: int) -> None:
        super().__init__(num_filters)

    def backprop(self, d_L_d_out: npt.ArrayLike, learn_rate: float) -> None:  # type: ignore[override]
        """Update ``filters`` by ``learn_rate`` (a finite number > 0) times the loss
        gradient, from ``d_L_d_out`` (h-2, w-2, num_filters). Returns ``None``."""
        if learn_rate is None:  # the parent's "use my own rate" must not slip through
            raise TypeError("Conv3x3.backprop(d_L_d_out, learn_rate) needs the learn rate, "
                            "a finite number > 0, got None")
        return super().backprop(d_L_d_out, learn_rate)
