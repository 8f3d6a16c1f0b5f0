"""``MaxPool2``: the same in both tutorials (2x2 windows, the gradient to every tied
maximum), so this is cnn_ext's own compiled layer."""
from ..maxpool import MaxPool2

__all__ = ["MaxPool2"]
