"""Conv3x3: the tutorial's convolution layer.

Its loops are the compiled kernels :mod:`cnn_ext._kernels` (or ``_kernels_avx2``, which
:mod:`cnn_ext._dispatch` picks on CPUs with AVX2 and FMA),
built from ``_conv.pxi`` and ``kernels/conv.h``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ._dispatch import kernels
from ._validate import _FLOAT64, as_float64, expect_shape, parameter, positive_int
from ._validate import learn_rate as _rate

if TYPE_CHECKING:
    import numpy.typing as npt


class Conv3x3:
    """Convolution with ``num_filters`` 3x3 filters, valid padding, stride 1.

    ``forward``: image (h, w) -> (h-2, w-2, num_filters) float64.
    ``backprop(d_L_d_out, learn_rate=None)``: updates ``filters`` in place, returns None.
    ``filters`` (num_filters, 3, 3) are drawn as ``np.random.randn(...) / 9`` from NumPy's
    global random state, exactly as both tutorials do.

    The rate: the adaptation sets it in the constructor (``Conv3x3(8, learn_rate=0.005)``),
    the English original passes it to each call (``backprop(d_L_d_out, 0.005)``); both
    work. A layer built without one (an object unpickled from another program, say) learns
    with the class default, 0.01, the adaptation's.
    """

    #: The rate ``backprop`` uses when the call gives none (the adaptation's default).
    learn_rate: float = 0.01

    def __init__(self, num_filters: int, learn_rate: float = 0.01) -> None:
        self.num_filters: int = positive_int(num_filters, "Conv3x3(num_filters)")
        self.filters: npt.NDArray[np.float64] = np.random.randn(num_filters, 3, 3) / 9
        self.last_input: npt.NDArray[np.float64] | None = None
        self.learn_rate = learn_rate

    def iterate_regions(self, image: npt.NDArray[np.float64]
                        ) -> Iterator[tuple[npt.NDArray[np.float64], int, int]]:
        """Yield ``(region, i, j)`` for every 3x3 region of a 2-D image (for reading; the
        compiled forward does not use it)."""
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                yield image[i:(i + 3), j:(j + 3)], i, j

    def forward(self, input: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Convolve a 2-D image (h, w), any real dtype, with the filters: returns a new
        (h-2, w-2, num_filters) float64 array and keeps the image as ``last_input``.

        The image is taken as given: the tutorial feeds ``(image / 255) - 0.5``, and raw
        0..255 pixels are accepted too (as in the tutorial's own layer), though a network
        trained on normalised images gives meaningless outputs for them.
        """
        filters = self.filters
        if type(input) is np.ndarray and input.dtype is _FLOAT64 and type(filters) is np.ndarray \
                and filters.shape[:1] == (self.num_filters,):
            # The common case goes straight to the kernel, which checks every array in C;
            # whatever it refuses takes the checked path, which converts or explains.
            try:
                output = kernels.conv3x3_forward(input, filters)
            except (TypeError, ValueError):
                pass
            else:
                self.last_input = input
                return output
        return self._checked_forward(input)

    def _checked_forward(self, input: npt.ArrayLike) -> npt.NDArray[np.float64]:
        image = as_float64(input, "Conv3x3.forward(input)", ndim=2)
        h, w = image.shape
        if h < 3 or w < 3:
            raise ValueError(f"Conv3x3.forward(input) expects an image of at least 3x3 pixels, got {h}x{w}")
        filters = parameter(self, "filters", (self.num_filters, 3, 3))
        output = kernels.conv3x3_forward(image, filters)  # (h-2, w-2, num_filters), new
        self.last_input = image
        return output

    def backprop(self, d_L_d_out: npt.ArrayLike, learn_rate: float | None = None) -> None:
        """Update ``filters`` in place by the rate times the loss gradient, from
        ``d_L_d_out`` (h-2, w-2, num_filters), the gradient of the loss with respect to the
        last forward's output. ``learn_rate`` is this call's rate (the English tutorial's
        second argument); ``None`` uses the layer's ``learn_rate``. Returns ``None``, as the
        first layer of the tutorial does."""
        rate, filters = _rate(self, learn_rate), self.filters
        if type(d_L_d_out) is np.ndarray and type(filters) is np.ndarray \
                and filters.shape[:1] == (self.num_filters,) and self.last_input is not None:
            try:  # as in forward: the kernel checks, the checked path converts or explains
                kernels.conv3x3_backprop(self.last_input, d_L_d_out, filters, rate)
            except (TypeError, ValueError):
                pass
            else:
                return None
        return self._checked_backprop(d_L_d_out, rate)

    def _checked_backprop(self, d_L_d_out: npt.ArrayLike, rate: float) -> None:
        if self.last_input is None:
            raise RuntimeError("Conv3x3.backprop() called before forward(): there is no input to learn from")
        image = as_float64(self.last_input, "Conv3x3.last_input", ndim=2)
        h, w = image.shape
        d_L_d_out = as_float64(d_L_d_out, "Conv3x3.backprop(d_L_d_out)", ndim=3)
        expect_shape(d_L_d_out, (h - 2, w - 2, self.num_filters), "Conv3x3.backprop(d_L_d_out)",
                     " (the shape of the last forward output)")
        filters = parameter(self, "filters", (self.num_filters, 3, 3))
        kernels.conv3x3_backprop(image, d_L_d_out, filters, rate)
        return None
