# cython: language_level=3
"""Compiled kernels of cnn_ext, built with AVX2 and FMA for x86-64 CPUs that have them.

Never import this module directly on an unknown CPU: :mod:`cnn_ext._dispatch` checks
``_kernels.cpu_has_avx2_fma()`` first (an older CPU would stop on an illegal instruction).
The sources, and the rule for the array boundary, are those of ``_kernels.pyx``.
"""
include "_kernels_common.pxi"
include "_peak.pxi"
