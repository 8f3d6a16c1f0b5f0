"""Instruction counts (valgrind callgrind) and output hashes of the compiled kernels.

    python bench/callgrind.py                    # both builds, prints a table and JSON
    python bench/callgrind.py --kernels baseline # one build
    python bench/callgrind.py --json counts.json # also save the numbers
    python bench/callgrind.py --hashes-only      # no valgrind: only the result hashes
    python bench/callgrind.py --hashes-only --kernels neon --check   # arm64: the AVX2 numbers?

For each kernel build (``CNN_EXT_KERNELS=baseline`` and ``avx2``; ``avx512`` gets hashes
only, valgrind does not run AVX-512 code) it counts the
instructions (callgrind's Ir, inclusive) spent inside the compiled functions of:

* ``train_step``: ``Network.train_step`` (``TrainState.step``), per step;
* ``predict_proba``: ``kernels.predict_proba`` on 1000 images, ``num_threads=1``, per call;
* ``facade``: each of the six layer-kernel calls of one layer-by-layer step
  (``Conv3x3.forward`` ... ``Conv3x3.backprop``), per call;
* ``boundary``: the cost of one argument check, ``as_arr`` against a typed memoryview
  (a scratch module built from the kernels' own ``_arrays.pxi``; needs Cython and a C compiler).

Only instructions executed while one of these compiled functions is on the stack count
(``--toggle-collect``), so the Python interpreter around them does not. Each function is
measured in two runs, with a few warm-up calls and with 200 more (4 for predict_proba);
the difference divided by that number is the steady-state cost of one call (no one-time
costs such as first-touch allocation). The functions are found by name, so the kernels must
keep their symbols: build with ``CNN_EXT_KEEP_SYMBOLS=1`` (the default build strips them).
The counts are exact and repeatable on one machine, compiler and library set; they do not
depend on the machine's load.

The hashes (sha256 of the parameters after 1000 ``train_step`` calls, of the layer-by-layer
parameters after 1000 steps, of ``fit`` on 2000 images and of ``predict_proba`` on 1000 test
images) prove that two versions of the kernels give bit-identical results. ``--check``
compares those of every "fma" build run (avx2, avx512, neon) with the AVX2 hashes stored in
bench/callgrind.json, and the portable build's with its own, and fails when one differs:
that is how an arm64 machine shows it computes the x86-64 builds' numbers. Uses the installed cnn_ext and the MNIST
copy embedded in the package.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src" / "cnn_ext"
WARMUP, MEASURED = 5, 200
CALLS = {"predict_proba": (1, 4)}  # (warm-up, measured) where one call is 1000 images

# scenario -> {label: callgrind function pattern}
SCENARIOS = {
    "train_step": {"TrainState.step": "__pyx_pw_*TrainState_*step"},
    "predict_proba": {"predict_proba": "__pyx_pw_*predict_proba"},
    "facade": {
        "conv3x3_forward": "__pyx_pw_*conv3x3_forward",
        "maxpool2_forward": "__pyx_pw_*maxpool2_forward",
        "softmax_forward": "__pyx_pw_*softmax_forward",
        "softmax_backprop": "__pyx_pw_*softmax_backprop",
        "maxpool2_backprop": "__pyx_pw_*maxpool2_backprop",
        "conv3x3_backprop": "__pyx_pw_*conv3x3_backprop",
    },
    "boundary": {
        "empty(a)": "__pyx_pw_*boundary_cost_*empty",
        "as_arr 1-D": "__pyx_pw_*boundary_cost_*arr1",
        "as_arr 3-D": "__pyx_pw_*boundary_cost_*arr3",
        "memoryview double[::1]": "__pyx_pw_*boundary_cost_*mv1",
        "memoryview double[:, :, ::1]": "__pyx_pw_*boundary_cost_*mv3",
    },
}

BOUNDARY_PYX = '''# cython: language_level=3, boundscheck=False, wraparound=False
cimport numpy as cnp
import numpy as _np
cnp.import_array()
include "_arrays.pxi"

def empty(a):
    pass

def arr1(a):
    cdef Arr x
    as_arr(a, 1, False, "a", &x)

def arr3(a):
    cdef Arr x
    as_arr(a, 3, False, "a", &x)

def mv1(double[::1] a):
    pass

def mv3(double[:, :, ::1] a):
    pass
'''


def data(path):
    """1000 MNIST training images/labels and 1000 test images, saved as .npz for the child."""
    from cnn_ext.datasets import mnist
    (x_train, y_train), (x_test, _) = mnist.load_data()
    import numpy as np
    np.savez(path, x=x_train[:1000], y=y_train[:1000].astype(np.int64), t=x_test[:1000])


def child(scenario, calls, data_path, module_dir):
    """Run one scenario with ``calls`` measured calls (under valgrind, from the parent)."""
    import numpy as np
    d = np.load(data_path)
    x, y, t = d["x"], [int(v) for v in d["y"]], d["t"]
    if scenario == "boundary":
        sys.path.insert(0, module_dir)
        import boundary_cost as m
        a1, a3 = np.zeros(10), np.zeros((2, 3, 4))
        for _ in range(calls):
            m.empty(a1)
            m.arr1(a1)
            m.arr3(a3)
            m.mv1(a1)
            m.mv3(a3)
        return
    import cnn_ext
    net = cnn_ext.Network(seed=0)
    if scenario == "train_step":
        for k in range(calls):
            net.train_step(x[k % 1000], y[k % 1000])
    elif scenario == "predict_proba":
        from cnn_ext._dispatch import kernels
        f, (w, b) = net.conv.filters, (net.softmax.weights, net.softmax.biases)
        out = np.empty((len(t), 10))
        for _ in range(calls):
            kernels.predict_proba(t, f, w, b, out, 1)
    elif scenario == "facade":
        for k in range(calls):
            facade_step(net, x[k % 1000], y[k % 1000])


def facade_step(net, image, label):
    """The tutorial's ``train``: six layer calls."""
    import numpy as np
    out = net.conv.forward((image / 255) - 0.5)
    out = net.pool.forward(out)
    out = net.softmax.forward(out)
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    gradient = net.softmax.backprop(gradient)
    gradient = net.pool.backprop(gradient)
    net.conv.backprop(gradient)


def callgrind(scenario, pattern, calls, build, data_path, module_dir, tmp):
    """Inclusive Ir of the functions matching ``pattern`` in one valgrind run (one pattern
    per run: callgrind does not honour several wildcard --toggle-collect patterns at once)."""
    out = Path(tmp) / f"cg.{scenario}.{build}.{calls}"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           f"--toggle-collect={pattern}"]
    cmd += [sys.executable, __file__, "--child", scenario, str(calls), data_path, module_dir]
    env = dict(os.environ, CNN_EXT_KERNELS=build, LD_BIND_NOW="1", PYTHONHASHSEED="0",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    totals = [ln for ln in out.read_text().splitlines() if ln.startswith(("summary:", "totals:"))]
    return int(totals[-1].split()[1])


def build_boundary_module(tmp):
    """Compile the boundary-cost module from the kernels' own ``_arrays.pxi``."""
    import numpy as np
    mdir = Path(tmp) / "boundary"
    mdir.mkdir()
    (mdir / "boundary_cost.pyx").write_text(BOUNDARY_PYX)
    shutil.copy(SOURCE / "_arrays.pxi", mdir / "_arrays.pxi")
    setup = (f"from setuptools import setup, Extension\nfrom Cython.Build import cythonize\n"
             f"setup(ext_modules=cythonize([Extension('boundary_cost', ['boundary_cost.pyx'], "
             f"include_dirs=[{np.get_include()!r}], extra_compile_args=['-O3'])]))\n")
    (mdir / "setup.py").write_text(setup)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=mdir, check=True,
                   capture_output=True)
    return str(mdir)


STORED = HERE / "callgrind.json"
FMA = ("avx2", "avx512", "neon")  # the builds that must give the AVX2 build's numbers


def check_hashes(found):
    """The differences between the hashes in ``found`` and the stored ones: each fma
    build's against the AVX2 build's, the portable build's against the portable build's
    (the same on x86-64 and arm64). ValueError when ``found`` holds no build to check."""
    stored = json.loads(STORED.read_text())["hashes"]
    differ, checked = [], 0
    for build, got in found.items():
        reference = "avx2" if build in FMA else build if build in stored else None
        if reference is None:
            continue
        checked += 1
        for key, value in stored[reference].items():
            if key != "kernels" and got.get(key) != value:
                differ.append(f"{build} {key}: {got.get(key)} (stored for {reference}: {value})")
    if not checked:
        raise ValueError(f"none of {sorted(found)} has hashes stored in {STORED.name}")
    return differ


def hashes(build):
    """sha256 of the results, computed in a child with CNN_EXT_KERNELS=build."""
    code = r'''
import hashlib, json, sys
import numpy as np
import cnn_ext
from cnn_ext.datasets import mnist
sys.path.insert(0, sys.argv[1])
from callgrind import facade_step
(x, y), (t, _) = mnist.load_data()
def h(*arrays):
    s = hashlib.sha256()
    for a in arrays:
        s.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return s.hexdigest()
net = cnn_ext.Network(seed=0)
for k in range(1000):
    net.train_step(x[k], int(y[k]))
params = (net.conv.filters, net.softmax.weights, net.softmax.biases)
out = {"kernels": cnn_ext.build_info()["kernels"], "train_step_1000": h(*params),
       "predict_proba_1000": h(net.predict_proba(t[:1000], num_threads=1))}
fitted = cnn_ext.Network(seed=0)
fitted.fit(x[:2000], y[:2000], seed=3)
out["fit_2000"] = h(fitted.conv.filters, fitted.softmax.weights, fitted.softmax.biases)
ref = cnn_ext.Network(seed=0)
for k in range(1000):
    facade_step(ref, x[k], int(y[k]))
out["facade_1000"] = h(ref.conv.filters, ref.softmax.weights, ref.softmax.biases)
print(json.dumps(out))
'''
    env = dict(os.environ, CNN_EXT_KERNELS=build)
    res = subprocess.run([sys.executable, "-c", code, str(HERE)], check=True, env=env,
                         capture_output=True, text=True)
    return json.loads(res.stdout)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        scenario, calls, data_path, module_dir = sys.argv[2:6]
        child(scenario, int(calls), data_path, module_dir)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", choices=["baseline", "avx2", "avx512", "neon", "both", "all"],
                        default="both",
                        help="both: baseline and avx2 (x86-64) or neon (arm64); all: also avx512 "
                             "(hashes only: valgrind does not run AVX-512 code)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of " + ", ".join(SCENARIOS))
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--hashes-only", action="store_true", help="skip valgrind")
    parser.add_argument("--check", action="store_true",
                        help="fail unless every fma build's hashes are the AVX2 ones in " + STORED.name)
    args = parser.parse_args()
    arm64 = platform.machine().lower() in ("aarch64", "arm64")
    fma = ["neon"] if arm64 else ["avx2"]
    builds = {"both": ["baseline", *fma], "all": ["baseline", *fma] + ([] if arm64 else ["avx512"])}.get(
        args.kernels, [args.kernels])
    result = {"hashes": {b: hashes(b) for b in builds}, "instructions": {}}
    for b in builds:
        print(f"{b}: " + json.dumps(result["hashes"][b]))
    if args.check:
        differ = check_hashes(result["hashes"])
        if differ:
            sys.exit("not the stored numbers: " + "; ".join(differ))
        print(f"{', '.join(builds)}: the hashes stored in {STORED.name} (the fma builds the AVX2 "
              f"build's, the portable build its own)")
    if "avx512" in builds and not args.hashes_only:
        print("avx512: no instruction counts (valgrind does not run AVX-512 code)")
        builds.remove("avx512")
    if not args.hashes_only:
        if not shutil.which("valgrind"):
            parser.error("valgrind is not installed (apt-get install valgrind)")
        with tempfile.TemporaryDirectory() as tmp:
            data_path = str(Path(tmp) / "data.npz")
            data(data_path)
            scenarios = args.scenarios.split(",")
            module_dir = build_boundary_module(tmp) if "boundary" in scenarios else ""
            for build in builds:
                if "boundary" in scenarios and build != builds[0]:
                    scenarios = [s for s in scenarios if s != "boundary"]  # no kernels involved
                for scenario in scenarios:
                    warmup, measured = CALLS.get(scenario, (WARMUP, MEASURED))
                    key = "boundary" if scenario == "boundary" else f"{build}/{scenario}"
                    per_call = result["instructions"][key] = {}
                    for label, pattern in SCENARIOS[scenario].items():
                        run = (scenario, pattern)
                        few = callgrind(*run, warmup, build, data_path, module_dir, tmp)
                        many = callgrind(*run, warmup + measured, build, data_path, module_dir, tmp)
                        if many == 0:
                            sys.exit(f"callgrind saw no instruction inside {pattern} ({build} build): "
                                     f"the extension modules were stripped of their symbols; rebuild "
                                     f"with CNN_EXT_KEEP_SYMBOLS=1 (see setup.py)")
                        per_call[label] = n = round((many - few) / measured)
                        print(f"{key:24s} {label:30s} {n:>14,d} Ir per call", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
