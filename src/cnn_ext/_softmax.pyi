"""Compiled kernels of :class:`cnn_ext.Softmax`. Arrays: float64, C-contiguous."""
import numpy as np
import numpy.typing as npt

def _check_dense(L: int, nodes: int, n_biases: int) -> None: ...
def softmax_forward(
    x: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    totals: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None: ...
def softmax_backprop(
    x: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    totals: npt.NDArray[np.float64],
    d_L_d_out: npt.NDArray[np.float64],
    learn_rate: float,
    d_L_d_input: npt.NDArray[np.float64],
    scratch: npt.NDArray[np.float64],
) -> None: ...
