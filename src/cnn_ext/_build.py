"""What the compiled kernels were built with: ``cnn_ext.build_info()``."""
from __future__ import annotations

import importlib.util
from typing import Any
import platform

import numpy as np

# Why a build has no AVX2 variant (the reason of kernels/simd.h, in a sentence).
_NO_AVX2_MSVC = ("not built: MSVC has neither the GCC/clang vector extensions the AVX2 kernels "
                 "are written with nor the contraction (-ffp-contract=fast) that their numbers "
                 "depend on, so MSVC builds run the portable kernels")


def _avx2_variant(compiler: str) -> str:
    """"built", or why the AVX2 + FMA variant is not part of this installation."""
    if importlib.util.find_spec("cnn_ext._kernels_avx2") is not None:  # found, not imported
        return "built"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"not built: the AVX2 + FMA variant is for x86-64, this is {platform.machine()}"
    if compiler == "msvc":
        return _NO_AVX2_MSVC
    return "not built: the compiler was not asked for, or did not accept, -mavx2 -mfma"


def build_info() -> dict[str, Any]:
    """A dict describing the build: compiler flags, OpenMP, SIMD level, versions.

    ``kernels`` names the build in use (``_kernels``: portable baseline; ``_kernels_avx2``:
    AVX2 + FMA, chosen at import on CPUs that have them), ``simd`` the instruction sets
    the compiler was allowed to use for it, and ``avx2_variant`` is ``"built"`` or says why
    this installation has no AVX2 variant.
    """
    from ._dispatch import NAME, baseline, kernels
    from ._version import __version__

    return {
        "version": __version__,
        "kernels": NAME,
        "cpu_has_avx2_fma": baseline.cpu_has_avx2_fma(),
        "avx2_variant": _avx2_variant(baseline.COMPILER),
        "compiler": kernels.COMPILER,
        "cflags": kernels.CFLAGS,
        "openmp": kernels.OPENMP,
        "max_threads": kernels.max_threads(),
        "simd": kernels.SIMD,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
