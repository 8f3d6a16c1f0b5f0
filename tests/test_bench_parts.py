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


@pytest.mark.parametrize("name", _runnable())
def test_each_part_runs_and_counts_the_bench_multiply_adds(name, tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        _skip_or_fail("no C compiler (cc) to build bench/parts.c")
    parts = _parts()
    module = pytest.importorskip(f"cnn_ext.{BUILDS[name][0]}")
    exe = parts.compile_parts(module, tmp_path, extra=("-Wall", "-Wextra", "-Werror"))
    (x, y), _ = mnist.load_data()
    digits, labels = tmp_path / "digits.u8", tmp_path / "labels.u8"
    digits.write_bytes(x[:40].tobytes())
    labels.write_bytes(y[:40].astype(np.uint8).tobytes())
    run = subprocess.run([str(exe), str(digits), str(labels), "40", "3"], capture_output=True,
                         text=True, check=True)
    assert run.stderr == "", run.stderr  # e.g. "the loss became NaN": NaN paths timed
    rows = {label: (float(seconds), float(madds))
            for label, seconds, madds in (line.split("\t") for line in run.stdout.splitlines())}
    terms = arithmetic(cnn_ext.Network())["terms"]
    assert list(rows) == ["normalise", "conv + pool + masks", "dense forward", "the step's forward",
                          "dense backward + update", "filter gradient via masks", "whole step"]
    assert all(math.isfinite(s) and s > 0 for s, _ in rows.values()), rows
    assert rows["conv + pool + masks"][1] == terms["conv forward"]
    assert rows["dense forward"][1] == terms["dense forward"]
    assert rows["dense backward + update"][1] == terms["dense backward"]
    assert rows["filter gradient via masks"][1] == terms["conv backward"]
    assert rows["whole step"][1] == arithmetic(cnn_ext.Network())["training"]


def test_bad_arguments_are_refused(tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        _skip_or_fail("no C compiler (cc) to build bench/parts.c")
    runnable = _runnable()
    if not runnable:
        pytest.skip("no vector build runs on this CPU")
    parts = _parts()
    exe = parts.compile_parts(pytest.importorskip(f"cnn_ext.{BUILDS[runnable[0]][0]}"), tmp_path)
    for args in ([], ["missing.u8", "missing.u8", "3", "1"], ["a", "b", "0", "1"]):
        run = subprocess.run([str(exe), *args], capture_output=True, text=True)
        assert run.returncode == 2 and run.stderr.startswith(("usage", "parts:")), (args, run.stderr)
