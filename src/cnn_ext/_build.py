"""What the compiled kernels were built with: ``cnn_ext.build_info()``."""
import platform

import numpy as np


def build_info():
    """A dict describing the build: compiler flags, OpenMP, SIMD level, versions.

    ``simd`` lists the instruction sets the compiler was allowed to use for the kernels
    (the baseline of the wheel's platform unless built with ``CNN_EXT_NATIVE=1``).
    """
    from . import _network
    from ._version import __version__

    return {
        "version": __version__,
        "compiler": _network.COMPILER,
        "cflags": _network.CFLAGS,
        "openmp": _network.OPENMP,
        "max_threads": _network.max_threads(),
        "simd": _network.SIMD,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
