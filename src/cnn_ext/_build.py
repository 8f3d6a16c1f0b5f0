"""What the compiled kernels were built with: ``cnn_ext.build_info()``."""
from __future__ import annotations

import importlib.util
from typing import Any
import platform

import numpy as np

# Why a build has no vector variant under MSVC (the reason of kernels/simd.h, in a sentence).
_NO_VECTOR_MSVC = ("not built: MSVC lacks the GCC/clang vector extensions the {kernels} kernels "
                   "are written with, so MSVC builds run the portable kernels")

# variant -> (its module, what it is called, the machines it is for, their name, why else)
_VARIANTS = {
    "avx2": ("_kernels_avx2", "AVX2 + FMA", ("x86_64", "amd64"), "x86-64", "AVX2",
             "the compiler was not asked for, or did not accept, -mavx2 -mfma"),
    "avx512": ("_kernels_avx512", "AVX-512", ("x86_64", "amd64"), "x86-64", "AVX2",
               "the compiler was not asked for, or did not accept, -mavx512f -mavx512vl -mavx512dq"),
    "neon": ("_kernels_neon", "NEON", ("aarch64", "arm64"), "arm64", "vector",
             "the compiler did not build NEON code for aarch64"),
}


def _variant(name: str, compiler: str) -> str:
    """"built", or why the variant ``name`` (avx2, avx512, neon) is not part of this installation."""
    module, what, machines, arch, kernels, otherwise = _VARIANTS[name]
    if importlib.util.find_spec(f"cnn_ext.{module}") is not None:  # found, not imported
        return "built"
    if platform.machine().lower() not in machines:
        return f"not built: the {what} variant is for {arch}, this is {platform.machine()}"
    if compiler == "msvc":
        return _NO_VECTOR_MSVC.format(kernels=kernels)
    return f"not built: {otherwise}"


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
        **{f"{name}_variant": _variant(name, baseline.COMPILER) for name in _VARIANTS},
        "compiler": kernels.COMPILER,
        "cflags": kernels.CFLAGS,
        "openmp": kernels.OPENMP,
        "max_threads": kernels.max_threads(),
        "simd": kernels.SIMD,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
