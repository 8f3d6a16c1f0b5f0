"""cnn_ext: the tutorial's from-scratch MNIST CNN, with its hot loops compiled.

``Conv3x3``, ``MaxPool2`` and ``Softmax`` keep the tutorial's classes, attributes and
results; their forward and backward loops run in Cython kernels. They follow the Chinese
adaptation (learn rate in the constructors) and accept the English original's
``backprop(d_L_d_out, learn_rate)`` too; :mod:`cnn_ext.cnn_from_scratch` is the English
original's API exactly. The original pure-NumPy
classes ship beside them as :mod:`cnn_ext_reference` for comparison.
"""
from ._version import __version__
from .conv import Conv3x3
from .maxpool import MaxPool2
from .softmax import Softmax
from .network import Network
from ._interrupt import TrainingInterrupted
from .saver import ModelSaver
from ._build import build_info
from . import datasets

__all__ = ["Conv3x3", "MaxPool2", "Softmax", "Network", "ModelSaver", "DrawingBoard", "build_info",
           "datasets", "TrainingInterrupted", "__version__"]


def __getattr__(name: str) -> object:
    # DrawingBoard needs tkinter, which `import cnn_ext` must not import (nor need): the
    # drawing module is imported on first use of the name.
    if name == "DrawingBoard":
        from .drawing import DrawingBoard
        return DrawingBoard
    raise AttributeError(f"module 'cnn_ext' has no attribute {name!r}")
