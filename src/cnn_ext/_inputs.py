"""The checks of a Network's inputs: images, labels, counts and its learn rate.

One home below both :class:`~cnn_ext.network.Network` and :class:`~cnn_ext.trace.Trace`,
so that the same mistake gets the same error from ``train_step``, ``fit``, ``evaluate``
and ``trace``.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import numpy as np

from ._validate import learn_rate

if TYPE_CHECKING:
    import numpy.typing as npt

    from .network import Network


def _check_images(images: npt.ArrayLike, network: Network, where: str) -> npt.NDArray[np.uint8]:
    """uint8 C-contiguous images (n, h, w) whose pooled maps fit ``network.softmax``.

    One (h, w) image becomes a batch of one. Anything else gets a ValueError naming the
    shape or values that came and what to pass instead.
    """
    network._parameters()  # inconsistent parameters are the first problem to name
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where} expects uint8 images (pixel values 0..255), got dtype {array.dtype}")
    if array.ndim == 2 and network._fits(array.shape):
        array = array[np.newaxis]
    elif array.ndim != 3 or not network._fits(array.shape[1:]):
        raise ValueError(f"{where} expects uint8 images of shape (n, {network._shape_hint()}) or one "
                         f"({network._shape_hint()}) image, got shape {array.shape}"
                         + network._reshape_hint(array.shape))
    if array.dtype != np.uint8:
        # MNIST pixels are uint8; integer-valued arrays in 0..255 of other dtypes are fine.
        if array.size and not (np.all(array == np.round(array)) and array.min() >= 0 and array.max() <= 255):
            lo, hi = array.min(), array.max()
            hint = (" The network normalises pixels itself, (image / 255) - 0.5 as in the tutorial: "
                    "pass the raw uint8 image (e.g. x_train[i]), not image / 255 or (image / 255) - 0.5."
                    if array.dtype.kind == "f" and lo >= -0.5 and hi <= 1.0 else "")
            raise ValueError(f"{where} expects uint8 images (pixel values 0..255, as MNIST ships them), "
                             f"got dtype {array.dtype} with values {lo:g}..{hi:g}.{hint}")
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def _check_labels(labels: npt.ArrayLike, count: int, nodes: int, where: str) -> npt.NDArray[np.int64]:
    """int64 C-contiguous labels (count,) in 0..nodes-1, or a clear error."""
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise ValueError(f"{where} expects {count} labels (one per image), got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{where} expects integer labels in 0..{nodes - 1}, got dtype {labels.dtype}"
                        + (" (convert with labels.astype(int))" if labels.dtype.kind in "fb" else ""))
    if labels.size and (labels.min() < 0 or labels.max() >= nodes):
        raise ValueError(f"{where} expects labels in 0..{nodes - 1} (the softmax has {nodes} nodes), "
                         f"got values {labels.min()}..{labels.max()}")
    # int64 whatever the platform's default int (int32 on Windows under NumPy 1.x): the
    # kernels take `long long` indices.
    return np.ascontiguousarray(labels, dtype=np.int64)


def _check_label(label: object, nodes: int, where: str) -> int:
    if isinstance(label, np.ndarray) and label.ndim == 0:
        label = label[()]
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, numbers.Integral):
        raise TypeError(f"{where} expects an integer label in 0..{nodes - 1}, got {label!r}")
    # numbers.Integral declares __lt__ and __le__, not the reflected int <= Integral
    if not 0 <= label < nodes:  # type: ignore[operator]
        raise ValueError(f"{where} expects a label in 0..{nodes - 1} (the softmax has {nodes} nodes), "
                         f"got {label!r}")
    return int(label)


def _check_int(value: object, where: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_learn_rate(value: object, where: str = "learn_rate") -> float:
    """``value`` as a float if it is a finite number > 0, else a clear TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} must be a positive number, got {value!r}")
    rate = float(value)
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{where} must be a finite number > 0, got {value!r}")
    return rate


def one_learn_rate(network: Network) -> float:
    """The rate both layers of ``network`` train with (the fused kernels take one)."""
    rate = check_learn_rate(learn_rate(network.conv), "Conv3x3.learn_rate")
    if learn_rate(network.softmax) != rate:
        raise ValueError(f"Network trains both layers with one learn rate, but Conv3x3.learn_rate is "
                         f"{network.conv.learn_rate!r} and Softmax.learn_rate {network.softmax.learn_rate!r}: "
                         f"set network.learn_rate instead")
    return rate
