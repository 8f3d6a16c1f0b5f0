"""Each C header of the kernels (src/cnn_ext/kernels/*.h) compiles on its own.

A translation unit holding only ``#include "<header>"`` is checked with ``-fsyntax-only``
and warnings as errors, by gcc and clang, for the portable build, the AVX2 and AVX-512
builds (x86-64), and the portable and NEON builds for aarch64 (the cross compiler and
clang's aarch64 target; the project's CI installs both). No Python or NumPy
include directory is given: a header may use only the C standard headers and the vector
intrinsics. These tests read the source checkout (the headers are not installed).
"""
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HEADER_DIR = Path(__file__).resolve().parents[1] / "src" / "cnn_ext" / "kernels"
HEADERS = sorted(p.name for p in HEADER_DIR.glob("*.h"))
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
# -Wundef: a header that tests CNN_EXT_V4D without including simd.h would silently
# compile its portable stand-ins, even in the AVX2 build.
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wundef", "-Wno-unused-parameter", "-Werror", "-fsyntax-only"]
# (compiler, target flags, required in the project's CI)
BUILDS = [("gcc", [], True), ("clang", [], True)]
if X86_64:
    BUILDS += [("gcc", ["-mavx2", "-mfma"], True), ("clang", ["-mavx2", "-mfma"], True)]
    AVX512 = ["-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512dq"]
    BUILDS += [("gcc", AVX512, True), ("clang", AVX512, True)]
# arm64: the portable build and the NEON build (CNN_EXT_NEON, as setup.py defines it), with
# the cross compiler the project's CI installs and with clang's aarch64 target
NEON = ["-DCNN_EXT_NEON=1"]
BUILDS += [("aarch64-linux-gnu-gcc", [], True), ("aarch64-linux-gnu-gcc", NEON, True),
           ("clang", ["--target=aarch64-linux-gnu"] + NEON, True)]


def _skip_or_fail(reason, required):
    if required and os.environ.get("CNN_EXT_CI"):
        pytest.fail(reason + " (the project's CI must have it)")
    print(reason)
    pytest.skip(reason)


def test_the_kernel_headers_are_there():
    if not HEADER_DIR.is_dir():
        _skip_or_fail(f"no source checkout: {HEADER_DIR} does not exist", True)
    assert {"simd.h", "conv.h", "network.h", "maxpool.h", "softmax.h"} <= set(HEADERS), HEADERS


@pytest.mark.parametrize("header", HEADERS)
def test_header_uses_no_python_types(header):
    text = (HEADER_DIR / header).read_text(encoding="utf-8")
    assert not re.search(r"\bPy_ssize_t\b|\bPy[A-Z]\w*|Python\.h", text), (
        f"{header} uses Python's C API; kernel headers take ptrdiff_t and plain C types")


@pytest.mark.parametrize("compiler,target", [(c, t) for c, t, _ in BUILDS],
                         ids=[f"{c}{'-' + '-'.join(f.lstrip('-') for f in t) if t else ''}"
                              for c, t, _ in BUILDS])
@pytest.mark.parametrize("header", HEADERS)
def test_header_compiles_alone(header, compiler, target, tmp_path):
    required = next(r for c, t, r in BUILDS if c == compiler and t == target)
    if shutil.which(compiler) is None:
        _skip_or_fail(f"{compiler} is not installed: {header} not compiled with it", required)
    source = tmp_path / f"only_{header}.c"
    source.write_text(f'#include "{header}"\n')
    cmd = [compiler, *FLAGS, *target, "-I", str(HEADER_DIR), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"


NORMALISE_CHECK = r"""
#include <stdio.h>
#include <string.h>
#include "network.h"
int main(void) {
    /* every pixel value at every lane of the 4-wide loop, and a tail the loop leaves */
    unsigned char image[1027];
    double x[1027];
    for (int k = 0; k < 1027; k++)
        image[k] = (unsigned char)(k % 256 + k / 256) ;
    memset(x, 0, sizeof x);
    ptrdiff_t done = cnn_ext_normalise_v4(image, 1027, x);
    if (done != 1024) { printf("did %ld of 1027\n", (long)done); return 1; }
    int bad = 0;
    for (int k = 0; k < 1024; k++) {
        double expected = image[k] / 255.0 - 0.5;
        if (memcmp(&x[k], &expected, sizeof expected)) {
            printf("pixel %d: %.17g, not %.17g\n", image[k], x[k], expected);
            bad++;
        }
    }
    return bad != 0;
}
"""


@pytest.mark.skipif(not X86_64, reason="the AVX2 build exists on x86-64 only")
def test_vector_normalisation_rounds_as_the_division(tmp_path):
    # The AVX2 network passes normalise with a multiply and one FMA correction instead of
    # a division; it must give the tutorial's doubles for all 256 pixel values.
    import cnn_ext

    if not cnn_ext.build_info()["cpu_has_avx2_fma"]:
        _skip_or_fail("this CPU has no AVX2 and FMA: the vector normalisation cannot run", False)
    if shutil.which("gcc") is None:
        _skip_or_fail("gcc is not installed: the vector normalisation not checked", True)
    source, program = tmp_path / "normalise.c", tmp_path / "normalise"
    source.write_text(NORMALISE_CHECK)
    cmd = ["gcc", "-std=c99", "-O2", "-mavx2", "-mfma", "-ffp-contract=fast", "-I", str(HEADER_DIR),
           str(source), "-o", str(program)]
    compiled = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, f"{' '.join(cmd)}\n{compiled.stderr}"
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout
