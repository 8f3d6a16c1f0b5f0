"""Compiled kernels of :class:`cnn_ext.Conv3x3`. Arrays: float64, C-contiguous."""
import numpy as np
import numpy.typing as npt

def conv3x3_forward(
    image: npt.NDArray[np.float64],
    filters: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None: ...
def conv3x3_backprop(
    image: npt.NDArray[np.float64],
    d_L_d_out: npt.NDArray[np.float64],
    filters: npt.NDArray[np.float64],
    learn_rate: float,
    d_L_d_filters: npt.NDArray[np.float64],
) -> None: ...
