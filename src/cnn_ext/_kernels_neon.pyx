# cython: language_level=3
"""Compiled kernels of cnn_ext, built for arm64 (aarch64) with NEON.

The AVX2 build's sources and numbers: the vector kernels (kernels/*.h) are written in the
4-wide helpers of kernels/simd.h, which this build (CNN_EXT_NEON) defines over pairs of
2-wide NEON registers, and the scalar code's multiply-adds are the same explicit FMAs
(CNN_EXT_MADD; every build is compiled with -ffp-contract=off), so every result is the
AVX2 build's bit for bit. NEON is part of
every aarch64 CPU; :mod:`cnn_ext._dispatch` picks this build on arm64.
"""
include "_kernels_common.pxi"
include "_peak.pxi"
