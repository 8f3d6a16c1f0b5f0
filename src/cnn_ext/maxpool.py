"""MaxPool2: the tutorial's 2x2 max pooling.

Its loops are the compiled kernels :mod:`cnn_ext._kernels` (or ``_kernels_avx2``, which
:mod:`cnn_ext._dispatch` picks on CPUs with AVX2 and FMA),
built from ``_maxpool.pxi`` and ``kernels/maxpool.h``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ._dispatch import kernels
from ._validate import as_float64, expect_shape

if TYPE_CHECKING:
    import numpy.typing as npt


class MaxPool2:
    """2x2 max pooling, stride 2: (h, w, f) -> (h//2, w//2, f) float64.

    ``backprop`` returns an array shaped like the last input, with the incoming gradient at
    *every* position equal to its window's maximum (the tutorial's tie rule).
    """

    def __init__(self) -> None:
        self.last_input: npt.NDArray[np.float64] | None = None

    def iterate_regions(self, image: npt.NDArray[np.float64]
                        ) -> Iterator[tuple[npt.NDArray[np.float64], int, int]]:
        """Yield ``(region, i, j)`` for every 2x2 window of an (h, w, f) array."""
        h, w, _ = image.shape
        for i in range(h // 2):
            for j in range(w // 2):
                yield image[i * 2:(i + 1) * 2, j * 2:(j + 1) * 2], i, j

    def forward(self, input: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The maximum of each 2x2 window of ``input`` (h, w, f): a new (h//2, w//2, f)
        float64 array (an odd last row or column is dropped, as in the tutorial); keeps
        the input as ``last_input``."""
        if type(input) is np.ndarray:
            # The common case goes straight to the kernel, which checks the array in C;
            # whatever it refuses takes the checked path, which converts or explains.
            try:
                output = kernels.maxpool2_forward(input)
            except (TypeError, ValueError):
                pass
            else:
                self.last_input = input
                return output
        return self._checked_forward(input)

    def _checked_forward(self, input: npt.ArrayLike) -> npt.NDArray[np.float64]:
        x = as_float64(input, "MaxPool2.forward(input)", ndim=3)
        h, w, f = x.shape
        if h < 2 or w < 2 or f < 1:
            raise ValueError(f"MaxPool2.forward(input) expects at least (2, 2, 1), got {x.shape}")
        output = kernels.maxpool2_forward(x)  # (h//2, w//2, f), new
        self.last_input = x
        return output

    def backprop(self, d_L_d_out: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The loss gradient with respect to the last input: a new float64 array shaped
        like ``last_input`` (h, w, f), holding ``d_L_d_out`` (h//2, w//2, f) at every
        position equal to its window's maximum (all of them when several tie, as the
        tutorial's ``==`` test does) and 0 elsewhere."""
        if type(d_L_d_out) is np.ndarray and type(self.last_input) is np.ndarray:
            try:
                return kernels.maxpool2_backprop(self.last_input, d_L_d_out)
            except (TypeError, ValueError):
                pass
        return self._checked_backprop(d_L_d_out)

    def _checked_backprop(self, d_L_d_out: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if self.last_input is None:
            raise RuntimeError("MaxPool2.backprop() called before forward(): no window maxima to route to")
        x = as_float64(self.last_input, "MaxPool2.last_input", ndim=3)
        h, w, f = x.shape
        d_L_d_out = as_float64(d_L_d_out, "MaxPool2.backprop(d_L_d_out)", ndim=3)
        expect_shape(d_L_d_out, (h // 2, w // 2, f), "MaxPool2.backprop(d_L_d_out)",
                     " (the shape of the last forward output)")
        return kernels.maxpool2_backprop(x, d_L_d_out)  # shaped like x, new
