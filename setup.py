"""Build the Cython kernels of cnn_ext.

Flags are portable on purpose: no -march=native and no -ffast-math. Floating-point
contraction is off in every build (-ffp-contract=off), so a sum is computed the same way
wherever it appears and the compiler fuses no multiply-add by itself; the vector builds
(AVX2, AVX-512, NEON) write their FMAs out (kernels/simd.h), so their numbers do not depend
on which compiler built them.
Identical 3x3 regions must give bit-identical convolution sums, because the tutorial's
max-pool tie rule depends on exact equality.

What the build can use is found by probing the *target* compiler, the one setuptools will
build the extensions with (``CC``, ``CFLAGS``, ``CPPFLAGS``, ``LDFLAGS``, and on macOS
``ARCHFLAGS``, all honoured), never from the machine running the build: a cross build
for arm64 on an x86-64 host gets no AVX2 variant.

Environment:
  CNN_EXT_NATIVE=1        add -march=native (a local build for this CPU only, never a wheel)
  CNN_EXT_NO_OPENMP=1     build without OpenMP (batch inference then runs on one thread)
  CNN_EXT_KEEP_SYMBOLS=1  do not strip the extension modules (for a debugger or profiler)
"""
import glob
import os
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
# After setuptools: its own copy of distutils, the one that builds the extensions.
from distutils.ccompiler import new_compiler
from distutils.errors import CompileError, DistutilsError, LinkError
from distutils.sysconfig import customize_compiler


def target_compiler():
    """The C compiler setuptools' build_ext will use, configured the same way."""
    compiler = new_compiler()
    customize_compiler(compiler)
    return compiler


COMPILER = target_compiler()
MSVC = COMPILER.compiler_type == "msvc"


def try_compile(source, cflags=(), ldflags=None, include_dirs=None):
    """Compile ``source`` with the target compiler and ``cflags`` (and, if ``ldflags`` is
    given, link it into a shared library with them). Returns None on success, else the
    error that setuptools reported (e.g. "command 'gcc' failed: No such file or directory")."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(2), os.dup(1)
        try:  # the compiler's complaints about a rejected probe are noise, not errors
            os.dup2(devnull, 2), os.dup2(devnull, 1)
            objects = COMPILER.compile([path], output_dir=tmp, include_dirs=include_dirs,
                                       extra_postargs=list(cflags))
            if ldflags is not None:
                COMPILER.link_shared_object(objects, os.path.join(tmp, "probe" + (".dll" if MSVC else ".so")),
                                            extra_postargs=ldflags)
            return None
        except (CompileError, LinkError, DistutilsError, OSError) as error:
            return str(error) or type(error).__name__
        finally:
            os.dup2(saved[0], 2), os.dup2(saved[1], 1)
            for fd in (*saved, devnull):
                os.close(fd)


def compiles(source, cflags, ldflags=None):
    """True when the target compiler compiles ``source`` with ``cflags`` (and links it with
    ``ldflags``, if given)."""
    return try_compile(source, cflags, ldflags) is None


# What to install when no C compiler works, per platform.
COMPILER_FIX = {
    "linux": "Install one: on Debian/Ubuntu `sudo apt install build-essential python3-dev`, "
             "on Fedora `sudo dnf install gcc python3-devel`",
    "darwin": "Install Apple's Xcode command-line tools: `xcode-select --install`",
    "win32": "Install Microsoft's Visual Studio Build Tools with the "
             "\"Desktop development with C++\" workload",
}

# Only commands that compile need a compiler: an sdist, or the metadata pip asks for
# before it builds, must still work without one.
COMPILING_COMMANDS = {"build", "build_ext", "bdist_wheel", "bdist", "install", "develop", "editable_wheel"}


def check_compiler():
    """Stop at once, with what is missing and how to get it, when the target compiler
    cannot compile a trivial C file or cannot find Python's headers. Without this the
    AVX2 and OpenMP probes below would fail too and blame the CPU features, and the real
    cause would come a hundred lines later."""
    if not COMPILING_COMMANDS & set(sys.argv[1:]):
        return
    where = os.environ.get("CC")
    name = f"the C compiler {where!r} (from CC)" if where else "a C compiler"
    error = try_compile("int cnn_ext_probe(void) { return 0; }\n")
    if error is not None:
        fix = COMPILER_FIX.get(sys.platform, "Install a C compiler for this platform")
        sys.exit(f"cnn_ext: no working C compiler: {name} could not compile a one-line C file "
                 f"({error}).\n"
                 f"cnn_ext compiles its kernels from C when no wheel fits. {fix}; then run the install again.\n"
                 "A prebuilt wheel needs no compiler: `pip install --only-binary=:all: cnn_ext`, "
                 "where one is published for your platform.")
    headers = sysconfig.get_paths()["include"]
    error = try_compile("#include <Python.h>\nint cnn_ext_probe(void) { return PY_MAJOR_VERSION; }\n",
                        include_dirs=[headers])
    if error is not None:
        sys.exit(f"cnn_ext: {name} works but cannot compile against Python's C headers "
                 f"(Python.h in {headers}): {error}.\n"
                 "Install them: on Debian/Ubuntu `sudo apt install python3-dev` "
                 "(or python3.X-dev for your version), on Fedora `sudo dnf install python3-devel`.")


check_compiler()

if MSVC:
    compile_args = ["/O2", "/fp:precise"]
else:
    compile_args = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
    if os.environ.get("CNN_EXT_NATIVE") == "1":
        compile_args.append("-march=native")

# The AVX2 variant is built when the target compiler accepts -mavx2 -mfma *and* then
# targets x86 with AVX2 and FMA (an arm64 compiler rejects the flags or lacks the header).
AVX2_PROBE = """
#include <immintrin.h>
#if !defined(__AVX2__) || !defined(__FMA__)
#error "not an x86 target with AVX2 and FMA"
#endif
__m256d cnn_ext_probe(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
"""
AVX2_FLAGS = ["-mavx2", "-mfma"]

# The kernels, built more than once: the portable baseline everywhere, and on x86-64 a
# variant for CPUs with AVX2 and FMA that cnn_ext._dispatch picks at run time. That variant
# multiplies and adds in FMAs (one rounding; the "fma" family's numbers): every output
# position still runs the same instructions, so identical regions still give identical
# sums, but its results can differ from the baseline's in the last bit.
ALL_KERNELS = ("_kernels", "_kernels_avx2", "_kernels_avx512", "_kernels_neon")
KERNELS = {"_kernels": []}
if not MSVC and compiles(AVX2_PROBE, AVX2_FLAGS):
    KERNELS["_kernels_avx2"] = AVX2_FLAGS
else:
    print("cnn_ext: the target compiler does not build AVX2 + FMA code; only the portable "
          "kernels are built", file=sys.stderr)

# A third build for CPUs with AVX-512 (F, VL, DQ): the AVX2 variant's sources and flags,
# plus 32 vector registers and 8-wide kernels that keep each output's operations in the
# AVX2 build's order, so its numbers are the AVX2 build's bit for bit.
AVX512_PROBE = """
#include <immintrin.h>
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__) || !defined(__FMA__)
#error "not an x86 target with AVX-512 F, VL, DQ and FMA"
#endif
__m512d cnn_ext_probe(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
__m256d cnn_ext_probe_vl(__m256d a, __m256d b) { return _mm256_range_pd(a, b, 1); }
"""
AVX512_FLAGS = AVX2_FLAGS + ["-mavx512f", "-mavx512vl", "-mavx512dq"]
if "_kernels_avx2" in KERNELS and compiles(AVX512_PROBE, AVX512_FLAGS):
    KERNELS["_kernels_avx512"] = AVX512_FLAGS
elif "_kernels_avx2" in KERNELS:
    print("cnn_ext: the target compiler does not build AVX-512 code; the AVX2 kernels serve "
          "CPUs with AVX-512 too", file=sys.stderr)

# The NEON variant for arm64 (aarch64) targets: the AVX2 build's kernels written over pairs
# of 2-wide NEON registers (kernels/simd.h, CNN_EXT_NEON), with the same explicit FMAs, so
# its numbers are the AVX2 build's bit for bit. NEON is part of every aarch64 CPU: no flag, and
# cnn_ext._dispatch picks it on any arm64 machine. The portable build stays beside it.
NEON_PROBE = """
#include <arm_neon.h>
#if !defined(__aarch64__)
#error "not an aarch64 target"
#endif
float64x2_t cnn_ext_probe(float64x2_t a, float64x2_t b, float64x2_t c) { return vfmaq_f64(c, a, b); }
"""
if not MSVC and "_kernels_avx2" not in KERNELS and compiles(NEON_PROBE, []):
    KERNELS["_kernels_neon"] = ["-DCNN_EXT_NEON=1"]

OPENMP_PROBE = """
#include <omp.h>
int cnn_ext_probe(void) { return omp_get_max_threads(); }
"""


def openmp_flags():
    """(compile, link) flags for OpenMP, or None when the compiler cannot build with it."""
    if os.environ.get("CNN_EXT_NO_OPENMP") == "1":
        return None
    if MSVC:
        candidates = [(["/openmp"], [])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
        if sys.platform == "darwin":  # Apple clang: libomp, e.g. Homebrew's via CPPFLAGS/LDFLAGS
            candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    for cflags, ldflags in candidates:
        if compiles(OPENMP_PROBE, cflags, ldflags):
            return cflags, ldflags
    print("cnn_ext: the C compiler has no OpenMP; batch inference will run on one thread",
          file=sys.stderr)
    return None


omp = openmp_flags()

# Strip the modules at link: without symbols and debug info they are about 6x smaller.
if os.environ.get("CNN_EXT_KEEP_SYMBOLS") == "1" or MSVC:
    strip_args = []
elif sys.platform == "darwin":
    strip_args = ["-Wl,-S,-x"]  # Mach-O: no debug symbols, no local symbols
else:
    strip_args = ["-Wl,--strip-all"]  # ELF: PyInit_* stays exported through .dynsym


# The C side of the kernels: header-only, included by the generated C (src/cnn_ext/kernels).
HEADERS = sorted(glob.glob("src/cnn_ext/kernels/*.h"))


def extension(name, isa_flags):
    cflags, ldflags = list(compile_args), []
    cflags += isa_flags
    if omp is not None:
        cflags += omp[0]
        ldflags += omp[1]
    ldflags += strip_args
    return Extension(
        f"cnn_ext.{name}",
        [f"src/cnn_ext/{name}.pyx"],
        include_dirs=[np.get_include(), "src"],
        depends=HEADERS,
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            # Run on NumPy >= 1.26, as the README promises, whatever NumPy builds: NumPy 2.x
            # otherwise targets its own default, which rises. 1.26 has 1.25's C-API version
            # and no macro of its own.
            ("NPY_TARGET_VERSION", "NPY_1_25_API_VERSION"),
            ("CNN_EXT_CFLAGS", '"' + " ".join(cflags) + '"'),
        ],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )


setup(
    package_dir={"cnn_ext": "src/cnn_ext", "cnn_ext_reference": "python/cnn_ext_reference"},
    # cnn_ext.kernels (the C headers, in the sdist only) and cnn_ext.datasets.data (MNIST)
    # are folders of data, declared as packages so setuptools does not warn that it would
    # ignore them.
    packages=["cnn_ext", "cnn_ext.bench", "cnn_ext.cnn_from_scratch", "cnn_ext.datasets",
              "cnn_ext.datasets.data", "cnn_ext.kernels", "cnn_ext_reference",
              "cnn_ext_reference.cnn_from_scratch"],
    # A compiled module's stub is installed only where that module is built.
    package_data={"cnn_ext": ["py.typed"] + [f"{name}.pyi" for name in KERNELS],
                  "cnn_ext.datasets.data": ["*.gz"]},
    exclude_package_data={"cnn_ext": ["*.pyx", "*.pxi", "*.pxd", "*.c"]
                          + [f"{name}.pyi" for name in ALL_KERNELS if name not in KERNELS],
                          "cnn_ext.kernels": ["*.h"]},
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
