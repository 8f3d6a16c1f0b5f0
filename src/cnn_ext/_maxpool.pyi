"""Compiled kernels of :class:`cnn_ext.MaxPool2`. Arrays: float64, C-contiguous."""
import numpy as np
import numpy.typing as npt

def _check(got: tuple[int, ...], expected: tuple[int, ...], name: str) -> None: ...
def maxpool2_forward(x: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...
def maxpool2_backprop(
    x: npt.NDArray[np.float64],
    d_L_d_out: npt.NDArray[np.float64],
    d_L_d_input: npt.NDArray[np.float64],
) -> None: ...
