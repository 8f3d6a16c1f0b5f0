"""cnn_ext: the tutorial's from-scratch MNIST CNN, with its hot loops compiled.

``Conv3x3``, ``MaxPool2`` and ``Softmax`` keep the tutorial's classes, attributes and
results; their forward and backward loops run in Cython kernels. The original pure-NumPy
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

__all__ = ["Conv3x3", "MaxPool2", "Softmax", "Network", "ModelSaver", "build_info", "datasets",
           "TrainingInterrupted", "__version__"]
