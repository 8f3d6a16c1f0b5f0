"""Fused kernels of :class:`cnn_ext.Network`. Arrays: C-contiguous, dtypes as annotated."""
import numpy as np
import numpy.typing as npt

OPENMP: bool
CFLAGS: str
COMPILER: str
SIMD: list[str]

def max_threads() -> int: ...
def train_steps(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    order: npt.NDArray[np.int64],
    filters: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    learn_rate: float,
    losses: npt.NDArray[np.float64],
    correct: npt.NDArray[np.uint8],
) -> None: ...
def predict_proba(
    images: npt.NDArray[np.uint8],
    filters: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    num_threads: int = 0,
) -> None: ...
