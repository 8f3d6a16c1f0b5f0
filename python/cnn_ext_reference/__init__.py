"""The tutorial's original pure-NumPy network, kept as the oracle for cnn_ext.

These classes are the tutorial's code with its loop semantics unchanged (only
docstrings added): they are slow on purpose, so that users can compare them with the
compiled layers of :mod:`cnn_ext` and tests can check every fast path against them.
"""
from .conv import Conv3x3
from .maxpool import MaxPool2
from .softmax import Softmax
from .saver import ModelSaver

__all__ = ["Conv3x3", "MaxPool2", "Softmax", "ModelSaver"]
