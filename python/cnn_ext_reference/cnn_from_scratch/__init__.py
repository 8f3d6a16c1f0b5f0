"""The English original (vzhou842/cnn-from-scratch) in pure NumPy: the oracle for
:mod:`cnn_ext.cnn_from_scratch`.

Written from the original's behaviour, loop for loop: ``Conv3x3(num_filters)`` and
``Softmax(input_len, nodes)`` take no learn rate, ``backprop(d_L_d_out, learn_rate)``
does; ``Softmax`` draws its weights divided by ``input_len``, and its ``backprop`` applies
the first non-zero entry of ``d_L_d_out`` only (and returns ``None`` when there is none).
``MaxPool2`` is the same in both tutorials.
"""
from .conv import Conv3x3
from .maxpool import MaxPool2
from .softmax import Softmax

__all__ = ["Conv3x3", "MaxPool2", "Softmax"]
