"""bench/parts.py: the training step's kernels part by part, in C (bench/parts.c).

For every vector build this machine runs, bench/parts.c compiles with that build's flags and
warnings as errors, runs a few digits, and reports each part with the multiply-adds the
bench counts for it. These tests read the source checkout (bench/ is not installed) and
need a C compiler; the project's CI has both.
"""
import importlib.util
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cnn_ext
from cnn_ext._dispatch import BUILDS
from cnn_ext.bench.peak import arithmetic
from cnn_ext.datasets import mnist

PARTS_PY = Path(__file__).resolve().parents[1] / "bench" / "parts.py"


def _skip_or_fail(reason):
    if os.environ.get("CNN_EXT_CI"):
        pytest.fail(reason + " (the project's CI must have it)")
    print(reason)
    pytest.skip(reason)


def _parts():
    if not PARTS_PY.is_file():
        _skip_or_fail(f"no source checkout: {PARTS_PY} does not exist")
    spec = importlib.util.spec_from_file_location("bench_parts", PARTS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runnable():
    """The vector builds this CPU runs (none on a CPU with only the portable build)."""
    return [name for name, (_, cpu_has, _) in BUILDS.items() if cpu_has()]


def _built(name, tmp_path, extra=()):
    """(bench/parts.py as a module, the kernel build ``name``, parts.c compiled with its flags)."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        _skip_or_fail("no C compiler (cc) to build bench/parts.c")
    parts = _parts()
    module = pytest.importorskip(f"cnn_ext.{BUILDS[name][0]}")
    return parts, module, parts.compile_parts(module, tmp_path, extra)


@pytest.mark.parametrize("name", _runnable())
def test_each_part_runs_and_counts_the_bench_multiply_adds(name, tmp_path):
    # warnings as errors, the kernel headers' own set (tests/test_kernel_headers.py)
    parts, _, exe = _built(name, tmp_path, ("-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"))
    digits, labels = parts.digit_files(tmp_path, 40)
    run = subprocess.run([str(exe), str(digits), str(labels), "40", "3"], capture_output=True,
                         text=True, check=True)
    assert run.stderr == "", run.stderr  # e.g. "the loss became NaN": NaN paths timed
    rows = {label: (float(seconds), float(madds))
            for label, seconds, madds in (line.split("\t") for line in run.stdout.splitlines())}
    counts = arithmetic(cnn_ext.Network())
    terms = counts["terms"]
    assert list(rows) == ["normalise", "conv + pool + masks", "dense forward", "the step's forward",
                          "dense backward + update", "filter gradient via masks", "whole step",
                          "dense forward, row-major", "dense backward, row-major",
                          "whole step, row-major"]
    assert all(math.isfinite(s) and s >= 0 for s, _ in rows.values()), rows  # coarse clocks: 0
    assert rows["conv + pool + masks"][1] == terms["conv forward"]
    assert rows["dense forward"][1] == terms["dense forward"]
    assert rows["dense backward + update"][1] == terms["dense backward"]
    assert rows["filter gradient via masks"][1] == terms["conv backward"]
    assert rows["whole step"][1] == counts["training"]
    assert rows["dense forward, row-major"][1] == terms["dense forward"]
    assert rows["dense backward, row-major"][1] == terms["dense backward"]
    assert rows["whole step, row-major"][1] == counts["training"]


@pytest.mark.parametrize("name", _runnable())
def test_its_whole_step_is_the_packages_step(name, tmp_path):
    """bench/parts.c's whole step trains as the package's own TrainState.step does, bit for
    bit (parameters and losses, 60 real digits). Both call the same C function
    (cnn_ext_train_step10), the harness with the weights quad-blocked (as the x86 builds'
    Network.fit chunks), TrainState.step with them row-major; this checks what the harness hands it
    (shapes, buffers, learn rate, parameters, the layout), so that what it times is the
    package's step."""
    parts, module, exe = _built(name, tmp_path)
    n = 60
    digits, labels = parts.digit_files(tmp_path, n)
    (x, y), _ = mnist.load_data()
    filters, weights, biases = (np.array(a) for a in cnn_ext.Network(seed=3)._parameters())
    parameters = tmp_path / "parameters.f64"
    parameters.write_bytes(np.concatenate([filters.ravel(), weights.ravel(), biases]).tobytes())
    subprocess.run([str(exe), str(digits), str(labels), str(n), "train", str(parameters)],
                   check=True, capture_output=True)
    trained = np.frombuffer(parameters.read_bytes(), dtype=np.float64)
    state = module.TrainState(filters, weights, biases, 0.005, 28, 28)
    losses = [state.step(np.ascontiguousarray(x[i]), int(y[i]))[0] for i in range(n)]
    expected = np.concatenate([filters.ravel(), weights.ravel(), biases, losses])
    assert trained.shape == expected.shape
    assert np.array_equal(trained, expected), (
        f"{np.sum(trained != expected)} of {expected.size} values differ")


def test_bad_arguments_are_refused(tmp_path):
    runnable = _runnable()
    if not runnable:
        pytest.skip("no vector build runs on this CPU")
    parts, _, exe = _built(runnable[0], tmp_path)
    digits, labels = parts.digit_files(tmp_path, 3)
    bad_labels = tmp_path / "bad.u8"
    bad_labels.write_bytes(bytes([1, 10, 2]))
    d, l, b = str(digits), str(labels), str(bad_labels)
    for args in ([], ["missing.u8", "missing.u8", "3", "1"], [d, l, "0", "1"], [d, l, "3", "x"],
                 [d, l, "3", "1", "10"], [d, l, "3", "1", "-2"], [d, l, "3", "train"],
                 [d, l, "99999999999999", "1"], [d, b, "3", "1"],
                 [d, l, "3", "train", str(tmp_path / "missing.f64")]):
        run = subprocess.run([str(exe), *args], capture_output=True, text=True)
        assert run.returncode == 2 and run.stderr.startswith(("usage", "parts:")), (
            args, run.stderr)
