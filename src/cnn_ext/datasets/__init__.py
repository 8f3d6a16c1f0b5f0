"""Datasets bundled with cnn_ext (currently MNIST, see :mod:`cnn_ext.datasets.mnist`).

Each tutorial's data import becomes one line here:

* the English original: ``import mnist`` -> ``from cnn_ext.datasets import mnist``
  (``mnist.train_images()`` and the rest);
* the adaptation: ``import tensorflow as tf`` -> ``from cnn_ext.datasets import tf``, a
  stand-in that answers exactly ``tf.keras.datasets.mnist.load_data()`` from the embedded
  copy (and says so for anything else it is asked).
"""
from __future__ import annotations

from types import SimpleNamespace

from . import mnist


class _TensorFlowStandIn(SimpleNamespace):
    """``tf.keras.datasets.mnist.load_data()`` and nothing else of TensorFlow."""

    def __getattr__(self, name: str) -> object:
        raise AttributeError(
            f"cnn_ext.datasets.tf stands in for TensorFlow only as "
            f"tf.keras.datasets.mnist.load_data(), not .{name}: import tensorflow itself "
            f"for anything else")


tf = _TensorFlowStandIn(keras=_TensorFlowStandIn(datasets=_TensorFlowStandIn(mnist=mnist)))

__all__ = ["mnist", "tf"]
