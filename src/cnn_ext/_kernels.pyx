# cython: language_level=3
"""Compiled kernels of cnn_ext, built for the platform's baseline instruction set.

The same sources are compiled a second time as ``_kernels_avx2`` for x86-64 CPUs with
AVX2 and FMA; :mod:`cnn_ext._dispatch` picks one at import time. The Cython sources are
``_kernels_common.pxi`` and the files it includes, one per layer (``_conv.pxi``,
``_maxpool.pxi``, ``_softmax.pxi``), the SGD update (``_sgd.pxi``) and the fused network
(``_network.pxi``); the hand-vectorised C is in ``kernels/*.h``.
"""
# The array boundary: one rule for every kernel.
#
# * Layer kernels (conv3x3_*, maxpool2_*, softmax_*) and TrainState.step, called once per
#   layer or step per image, take plain objects, check them with as_arr (_arrays.pxi:
#   ndarray, float64 in native byte order, C-contiguous, ndim, writable where written)
#   and pass raw pointers and shapes to the C kernels. A typed memoryview argument costs
#   about 1,600-1,700 instructions more than as_arr: a call taking one float64 array costs
#   ~1,670 (1-D) or ~1,810 (3-D) instructions with a memoryview, ~90 with as_arr, ~35
#   with no check at all (bench/callgrind.py, "boundary"; gcc 12, Cython 3). With memoryviews,
#   a layer call on an MNIST image in the AVX2 build would cost half (maxpool2_forward,
#   two arrays, ~5,600 instructions) or more (softmax_forward, five) again.
# * Batch and fused kernels (train_steps, predict_proba), called once per batch, take typed
#   memoryviews: the acquisition cost vanishes next to the work, and Cython's buffer checks
#   cover their uint8 and int64 arrays too.
include "_kernels_common.pxi"
include "_peak.pxi"
