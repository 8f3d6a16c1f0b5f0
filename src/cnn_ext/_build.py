"""What the compiled kernels were built with: ``cnn_ext.build_info()``."""
from __future__ import annotations

import importlib.util
from typing import Any
import platform

import numpy as np

# Why a build has no AVX2 variant (the reason of kernels/simd.h, in a sentence).
_NO_AVX2_MSVC = ("not built: MSVC lacks the GCC/clang vector extensions the AVX2 kernels are "
                 "written with, so MSVC builds run the portable kernels")


def _avx2_variant(compiler: str) -> str:
    """"built", or why the AVX2 + FMA variant is not part of this installation."""
    if importlib.util.find_spec("cnn_ext._kernels_avx2") is not None:  # found, not imported
        return "built"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"not built: the AVX2 + FMA variant is for x86-64, this is {platform.machine()}"
    if compiler == "msvc":
        return _NO_AVX2_MSVC
    return "not built: the compiler was not asked for, or did not accept, -mavx2 -mfma"


def _avx512_variant(compiler: str) -> str:
    """"built", or why the AVX-512 variant is not part of this installation."""
    if importlib.util.find_spec("cnn_ext._kernels_avx512") is not None:  # found, not imported
        return "built"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"not built: the AVX-512 variant is for x86-64, this is {platform.machine()}"
    if compiler == "msvc":
        return _NO_AVX2_MSVC
    return ("not built: the compiler was not asked for, or did not accept, "
            "-mavx512f -mavx512vl -mavx512dq")


def _neon_variant(compiler: str) -> str:
    """"built", or why the NEON variant is not part of this installation."""
    if importlib.util.find_spec("cnn_ext._kernels_neon") is not None:  # found, not imported
        return "built"
    if platform.machine().lower() not in ("aarch64", "arm64"):
        return f"not built: the NEON variant is for arm64, this is {platform.machine()}"
    if compiler == "msvc":
        return _NO_AVX2_MSVC.replace("AVX2 kernels", "vector kernels")
    return "not built: the compiler did not build NEON code for aarch64"


def build_info() -> dict[str, Any]:
    """A dict describing the build: compiler flags, OpenMP, SIMD level, versions.

    ``kernels`` names the build in use (``_kernels``: portable baseline; ``_kernels_avx2``:
    AVX2 + FMA; ``_kernels_avx512``: AVX-512; ``_kernels_neon``: arm64 NEON; the widest the
    CPU and OS support is chosen at import, ``CNN_EXT_KERNELS`` overrides), ``family`` its
    numbers (``"fma"``: the avx512, avx2 and neon builds, bit for bit the same;
    ``"tutorial"``: the portable build's, the tutorial's sums), ``simd`` the instruction
    sets the compiler was allowed to use for it, and ``avx2_variant`` / ``avx512_variant``
    / ``neon_variant`` are ``"built"`` or say why this installation lacks that variant.
    """
    from ._dispatch import FAMILY, NAME, baseline, kernels
    from ._version import __version__

    return {
        "version": __version__,
        "kernels": NAME,
        "family": FAMILY,
        "cpu_has_avx2_fma": baseline.cpu_has_avx2_fma(),
        "cpu_has_avx512": baseline.cpu_has_avx512(),
        "avx2_variant": _avx2_variant(baseline.COMPILER),
        "avx512_variant": _avx512_variant(baseline.COMPILER),
        "neon_variant": _neon_variant(baseline.COMPILER),
        "compiler": kernels.COMPILER,
        "cflags": kernels.CFLAGS,
        "openmp": kernels.OPENMP,
        "max_threads": kernels.max_threads(),
        "simd": kernels.SIMD,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
