"""What the compiled kernels were built with: ``cnn_ext.build_info()``."""
import platform

import numpy as np


def build_info():
    """A dict describing the build: compiler flags, OpenMP, SIMD level, versions.

    ``kernels`` names the build in use (``_kernels``: portable baseline; ``_kernels_avx2``:
    AVX2 + FMA, chosen at import on CPUs that have them) and ``simd`` the instruction sets
    the compiler was allowed to use for it.
    """
    from ._dispatch import NAME, baseline, kernels
    from ._version import __version__

    return {
        "version": __version__,
        "kernels": NAME,
        "cpu_has_avx2_fma": baseline.cpu_has_avx2_fma(),
        "compiler": kernels.COMPILER,
        "cflags": kernels.CFLAGS,
        "openmp": kernels.OPENMP,
        "max_threads": kernels.max_threads(),
        "simd": kernels.SIMD,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
