"""Build the Cython kernels of cnn_ext.

Flags are portable on purpose: no -march=native and no -ffast-math. Floating-point
contraction (FMA) is off in the portable build, so a sum is computed the same way wherever
it appears; the AVX2 variant turns it on (see KERNELS below).
Identical 3x3 regions must give bit-identical convolution sums, because the tutorial's
max-pool tie rule depends on exact equality.

Environment:
  CNN_EXT_NATIVE=1     add -march=native (a local build for this CPU only, never a wheel)
  CNN_EXT_NO_OPENMP=1  build without OpenMP (batch inference then runs on one thread)
"""
import glob
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

MSVC = sys.platform == "win32"
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
if MSVC:
    compile_args = ["/O2", "/fp:precise"]
else:
    compile_args = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
    if os.environ.get("CNN_EXT_NATIVE") == "1":
        compile_args.append("-march=native")

# The kernels, built twice on x86-64: the portable baseline, and a variant for CPUs with
# AVX2 and FMA that cnn_ext._dispatch picks at run time. In that variant the compiler
# may fuse a*b+c into one FMA: every output position still runs the same instructions, so
# identical regions still give identical sums, but its results can differ from the
# baseline's in the last bit.
KERNELS = {"_kernels": []}
if X86_64 and not MSVC:
    KERNELS["_kernels_avx2"] = ["-mavx2", "-mfma", "-ffp-contract=" + os.environ.get("CNN_EXT_AVX2_CONTRACT", "fast")]


def openmp_flags():
    """(compile, link) flags for OpenMP, or None when the compiler cannot build with it."""
    if os.environ.get("CNN_EXT_NO_OPENMP") == "1":
        return None
    if MSVC:
        return ["/openmp"], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":  # Apple clang: libomp from Homebrew, if present
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        for cflags, ldflags in candidates:
            cmd = cc + cflags + [src, "-o", os.path.join(tmp, "omp")] + ldflags
            if shutil.which(cc[0]) and subprocess.run(cmd, capture_output=True).returncode == 0:
                return cflags, ldflags
    print("cnn_ext: the C compiler has no OpenMP; batch inference will run on one thread",
          file=sys.stderr)
    return None


omp = openmp_flags()


# The C side of the kernels: header-only, included by the generated C (src/cnn_ext/kernels).
HEADERS = sorted(glob.glob("src/cnn_ext/kernels/*.h"))


def extension(name, isa_flags):
    cflags, ldflags = [f for f in compile_args if not f.startswith("-ffp-contract") or not isa_flags], []
    cflags += isa_flags
    if omp is not None:
        cflags += omp[0]
        ldflags += omp[1]
    return Extension(
        f"cnn_ext.{name}",
        [f"src/cnn_ext/{name}.pyx"],
        include_dirs=[np.get_include(), "src"],
        depends=HEADERS,
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ("CNN_EXT_CFLAGS", '"' + " ".join(cflags) + '"'),
        ],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )


setup(
    package_dir={"cnn_ext": "src/cnn_ext", "cnn_ext_reference": "python/cnn_ext_reference"},
    packages=["cnn_ext", "cnn_ext.datasets", "cnn_ext_reference"],
    package_data={"cnn_ext": ["py.typed", "*.pyi"], "cnn_ext.datasets": ["data/*.gz"]},
    exclude_package_data={"cnn_ext": ["*.pyx", "*.pxi", "*.pxd", "*.c", "kernels/*.h"]},
    ext_modules=cythonize(
        [extension(name, flags) for name, flags in KERNELS.items()],
        include_path=["src"],
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
