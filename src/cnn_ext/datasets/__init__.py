"""Datasets bundled with cnn_ext (currently MNIST, see :mod:`cnn_ext.datasets.mnist`)."""
from . import mnist

__all__ = ["mnist"]
