# cython: language_level=3
"""Compiled kernels of cnn_ext, built with AVX-512 (F, VL, DQ) and FMA for x86-64 CPUs that have them.

The AVX2 build's sources and numbers: the conv and filter-gradient kernels take eight
filters per block (kernels/conv.h, network.h), each lane with the AVX2 build's operations
in the same order, and the compiler has 32 vector registers. Never import this module
directly on an unknown CPU: :mod:`cnn_ext._dispatch` checks ``_kernels.cpu_has_avx512()``
first (CPUID and the OS's XCR0 state).
"""
include "_kernels_common.pxi"
include "_peak.pxi"
