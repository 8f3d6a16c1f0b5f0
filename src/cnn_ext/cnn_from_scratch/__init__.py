"""The English original's API: vzhou842/cnn-from-scratch, file for file, compiled.

Most public copies of the tutorial follow the English original rather than the adaptation
that :mod:`cnn_ext`'s own classes keep. Its layers differ in three ways, and this package
has them:

* no learn rate in the constructors: ``Conv3x3(8)``, ``Softmax(13 * 13 * 8, 10)``; each
  ``backprop`` takes it instead: ``backprop(d_L_d_out, learn_rate)``;
* ``Softmax`` draws its weights as ``np.random.randn(input_len, nodes) / input_len``;
* ``Softmax.backprop`` applies only the *first* non-zero entry of ``d_L_d_out`` (the
  original returns from inside its loop), where the adaptation applies all of them.

After the same ``np.random.seed`` they give the original's numbers (to rounding), on the
compiled kernels, with cnn_ext's input checks. The swap is one import per file::

    from conv import Conv3x3          ->  from cnn_ext.cnn_from_scratch.conv import Conv3x3
    from maxpool import MaxPool2      ->  from cnn_ext.cnn_from_scratch.maxpool import MaxPool2
    from softmax import Softmax       ->  from cnn_ext.cnn_from_scratch.softmax import Softmax
    import mnist                      ->  from cnn_ext.datasets import mnist

(or the three layers at once: ``from cnn_ext.cnn_from_scratch import Conv3x3, MaxPool2,
Softmax``). The pure-NumPy reference of the same API is
:mod:`cnn_ext_reference.cnn_from_scratch`.
"""
from .conv import Conv3x3
from .maxpool import MaxPool2
from .softmax import Softmax

__all__ = ["Conv3x3", "MaxPool2", "Softmax"]
