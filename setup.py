"""Build the Cython kernels of cnn_ext.

Flags are portable on purpose: no -march=native and no -ffast-math, and floating-point
contraction (FMA) is off so that a sum is computed the same way wherever it appears.
Identical 3x3 regions must give bit-identical convolution sums, because the tutorial's
max-pool tie rule depends on exact equality.
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["_conv", "_maxpool", "_softmax"]

if sys.platform == "win32":
    compile_args = ["/O2", "/fp:precise"]
else:
    compile_args = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
    if os.environ.get("CNN_EXT_NATIVE") == "1":  # opt-in local build, never for wheels
        compile_args.append("-march=native")

extensions = [
    Extension(
        f"cnn_ext.{name}",
        [f"src/cnn_ext/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
    for name in KERNELS
]

setup(
    package_dir={"cnn_ext": "src/cnn_ext", "cnn_ext_reference": "python/cnn_ext_reference"},
    packages=["cnn_ext", "cnn_ext.datasets", "cnn_ext_reference"],
    package_data={"cnn_ext": ["py.typed"], "cnn_ext.datasets": ["data/*.gz"]},
    exclude_package_data={"cnn_ext": ["*.pyx", "*.pxd", "*.c"]},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    zip_safe=False,
)
