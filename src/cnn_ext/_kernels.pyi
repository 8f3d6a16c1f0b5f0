"""Compiled kernels of cnn_ext (portable build; ``_kernels_avx2``, ``_kernels_avx512`` and
``_kernels_neon`` have the same API).

Arrays are C-contiguous; float64 unless annotated otherwise. The Python wrappers check
shapes; the layer façades do the friendly validation and conversion first.
"""
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

def cpu_has_avx2_fma() -> bool: ...
def cpu_has_avx512() -> bool: ...
def cpu_has_neon() -> bool: ...

def conv3x3_forward(
    image: npt.NDArray[np.float64],
    filters: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
def conv3x3_backprop(
    image: npt.NDArray[np.float64],
    d_L_d_out: npt.NDArray[np.float64],
    filters: npt.NDArray[np.float64],
    learn_rate: float,
) -> None: ...
def _check(got: tuple[int, ...], expected: tuple[int, ...], name: str) -> None: ...
def maxpool2_forward(
    x: npt.NDArray[np.float64], out: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]: ...
def maxpool2_backprop(
    x: npt.NDArray[np.float64],
    d_L_d_out: npt.NDArray[np.float64],
    d_L_d_input: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
def softmax_forward(
    x: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    totals: npt.NDArray[np.float64] | None = None,
    out: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def softmax_backprop(
    x: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    totals: npt.NDArray[np.float64],
    d_L_d_out: npt.NDArray[np.float64],
    learn_rate: float,
    d_L_d_input: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
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
    loss_start: float = 0.0,
) -> float: ...
@disjoint_base
class TrainState:
    """Parameters and scratch buffers of one network, set up once for repeated steps."""

    @property
    def filters(self) -> npt.NDArray[np.float64]: ...
    @property
    def weights(self) -> npt.NDArray[np.float64]: ...
    @property
    def biases(self) -> npt.NDArray[np.float64]: ...
    @property
    def learn_rate(self) -> float: ...
    @property
    def h(self) -> int: ...
    @property
    def w(self) -> int: ...
    def __init__(
        self,
        filters: npt.NDArray[np.float64],
        weights: npt.NDArray[np.float64],
        biases: npt.NDArray[np.float64],
        learn_rate: float,
        h: int,
        w: int,
    ) -> None: ...
    def step(self, image: npt.NDArray[np.uint8], label: int) -> tuple[float, int] | None: ...

def predict_proba(
    images: npt.NDArray[np.uint8],
    filters: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    biases: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    num_threads: int = 0,
) -> None: ...
def dense_layout(h: int, w: int, nf: int, nodes: int) -> str: ...

def fma_peak(seconds: float = 0.2) -> dict[str, Any]: ...
