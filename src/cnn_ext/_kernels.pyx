# cython: language_level=3
"""Compiled kernels of cnn_ext, built for the platform's baseline instruction set.

The same sources are compiled a second time as ``_kernels_avx2`` for x86-64 CPUs with
AVX2 and FMA; :mod:`cnn_ext._dispatch` picks one at import time. Each layer's kernels
live in their own include file: ``_conv.pxi``, ``_maxpool.pxi``, ``_softmax.pxi``, and
the fused network steps in ``_network.pxi``.
"""
include "_kernels_common.pxi"
