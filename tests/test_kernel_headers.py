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


DENSE_BLOCKED_CHECK = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "network.h"
static unsigned long long state = 88172645463325252ULL;
static double value(int finite) {  /* mostly plain, sometimes a value that tests a rule */
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    static const double special[] = {0.0, -0.0, 1e-310, 1.0, 1e300, -1e300, INFINITY, -INFINITY, NAN};
    if (state % 29 == 0)  /* with finite set, none that can overflow a sum either */
        return special[(state >> 8) % (finite ? 4 : 9)];
    return ((double)(state >> 11) / 9007199254740992.0 - 0.5) * ((state >> 3) % 3 ? 1.0 : 1e-3);
}
/* bit for bit, except a NaN's sign and payload (tests/test_kernel_builds.py's assert_bits):
   where two NaNs meet, x86 returns the first operand, and the compiler orders commutative
   operands as it likes */
static int differ(const double* a, const double* b, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++)
        if (!(a[k] != a[k] && b[k] != b[k]) && memcmp(&a[k], &b[k], sizeof(double)))
            return 1;
    return 0;
}
static double* doubles(size_t n) { return aligned_alloc(64, (n * sizeof(double) + 63) / 64 * 64); }
int main(void) {
    static const ptrdiff_t sizes[] = {0, 1, 3, 4, 5, 7, 8, 9, 12, 13, 40, 1352, 1355};
    int finite_totals = 0;  /* at L = 1352, 1355: the comparison compared numbers */
    int bad = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ptrdiff_t L = sizes[i];
        double *x = doubles(L + 1), *w = doubles(10 * L + 1), *rows = doubles(10 * L + 1);
        double *blocked = doubles(10 * L + 1), *d = doubles(L + 1), *d2 = doubles(L + 1);
        double t[10], tot[10], tot2[10];
        /* huge values, infinities and NaNs in the small sizes only: in a long sum one of
           them makes every total NaN, which would compare nothing */
        int finite = L > 40;
        for (ptrdiff_t k = 0; k < L; k++) x[k] = value(finite);
        for (ptrdiff_t k = 0; k < 10 * L; k++) w[k] = value(finite);
        for (int n = 0; n < 10; n++) t[n] = value(finite);
        /* the layout: a permutation, undone exactly */
        cnn_ext_dense10_block(w, L, blocked);
        cnn_ext_dense10_unblock(blocked, L, rows);
        if (memcmp(w, rows, 10 * L * sizeof(double))) { printf("L=%ld: unblock(block(w)) != w\n", (long)L); bad++; }
        for (ptrdiff_t q = 0; 4 * q + 4 <= L; q++)  /* element (4q + r, n) where softmax.h says */
            for (int r = 0; r < 4; r++)
                for (int n = 0; n < 10; n++) {
                    int s = r % 2 ? (n + 8) % 10 : n;
                    if (memcmp(&blocked[40 * q + 4 * s + r], &w[40 * q + 10 * r + n], sizeof(double))) {
                        printf("L=%ld: (%ld, %d) misplaced\n", (long)L, (long)(4 * q + r), n); bad++;
                    }
                }
#if CNN_EXT_V4D
        /* both passes on both layouts, three updates in a row: the same bits */
        for (int round = 0; round < 3; round++) {
            cnn_ext_dense10_forward(x, L, w, tot);
            cnn_ext_dense10_forward_blocked(x, L, blocked, tot2);
            if (L > 40)
                for (int n = 0; n < 10; n++)
                    finite_totals += isfinite(tot[n]);
            if (differ(tot, tot2, 10)) { printf("L=%ld: forward differs\n", (long)L); bad++; }
            cnn_ext_dense10_backprop(x, L, w, t, 0.37, d);
            cnn_ext_dense10_backprop_blocked(x, L, blocked, t, 0.37, d2);
            if (differ(d, d2, L)) { printf("L=%ld: d_L_d_input differs\n", (long)L); bad++; }
            cnn_ext_dense10_unblock(blocked, L, rows);
            if (differ(w, rows, 10 * L)) { printf("L=%ld: updated weights differ\n", (long)L); bad++; }
        }
#endif
        free(x); free(w); free(rows); free(blocked); free(d); free(d2);
    }
#if CNN_EXT_V4D
    if (finite_totals != 60) { printf("only %d of 60 large totals finite\n", finite_totals); bad++; }
#endif
    (void)finite_totals;
    printf("%s\n", CNN_EXT_V4D ? "vector kernels compared" : "layout only");
    return bad != 0;
}
"""


@pytest.mark.parametrize("target", ["portable", "avx2", "avx512"])
def test_blocked_dense_weights_give_the_row_major_numbers(target, tmp_path):
    # Network.fit's chunks and predict_proba's batches run the dense layer on quad-blocked
    # weights (softmax.h): the same sums, updates and input gradients as the row-major
    # kernels, bit for bit, on random values with zeros of both signs, huge, subnormal,
    # infinite and NaN entries, for every L % 4 (the rows after the last quad).
    import cnn_ext

    info = cnn_ext.build_info()
    flags = {"portable": [], "avx2": ["-mavx2", "-mfma"],
             "avx512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512dq"]}[target]
    if target != "portable":
        if not X86_64:
            pytest.skip(f"the {target} build exists on x86-64 only")
        if not info["cpu_has_avx2_fma" if target == "avx2" else "cpu_has_avx512"]:
            _skip_or_fail(f"this CPU cannot run {target} code: its blocked kernels not checked", False)
    if shutil.which("gcc") is None:
        _skip_or_fail("gcc is not installed: the blocked dense kernels not checked", True)
    source, program = tmp_path / "blocked.c", tmp_path / "blocked"
    source.write_text(DENSE_BLOCKED_CHECK)
    cmd = ["gcc", "-std=c11", "-O3", "-ffp-contract=off", *flags, "-I", str(HEADER_DIR), str(source),
           "-o", str(program), "-lm"]
    compiled = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, f"{' '.join(cmd)}\n{compiled.stderr}"
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout
    assert run.stdout.strip().endswith("compared" if target != "portable" else "layout only"), run.stdout
