"""The benchmark suite (cnn_ext.bench): a quick run, its JSON and its table."""
import io
import json
import re
import sys

import numpy as np
import pytest

from cnn_ext import bench

SECTIONS = {"layer", "train step", "epoch", "inference"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``--quick --no-frameworks`` run (with a plot when matplotlib is there)."""
    tmp = tmp_path_factory.mktemp("bench")
    out_json = tmp / "bench.json"
    argv = ["--quick", "--no-frameworks", "--json", str(out_json)]
    try:
        import matplotlib  # noqa: F401

        out_png = tmp / "bench.png"
        argv += ["--plot", str(out_png), "--scaling", str(tmp / "scaling.png")]
    except ImportError:
        out_png = None
    capture = pytest.MonkeyPatch()
    buffer = io.StringIO()
    capture.setattr(sys, "stdout", buffer)
    try:
        code = bench.main(argv)
    finally:
        capture.undo()
    return code, buffer.getvalue(), json.loads(out_json.read_text(encoding="utf-8")), out_png


def test_exit_code_and_json_structure(quick_run):
    code, _, result, _ = quick_run
    assert code == 0
    assert result["schema"] == bench.SCHEMA
    for key in ("date", "machine", "build_info", "versions", "numpy", "settings", "notes", "rows"):
        assert key in result, key
    assert result["settings"]["quick"] is True
    assert result["settings"]["frameworks"] == []
    assert result["versions"]["numpy"] == np.__version__
    machine = result["machine"]
    assert machine["logical_cpus"] >= 1 and machine["python"]
    assert {row["section"] for row in result["rows"]} == SECTIONS
    # the embedded MNIST's load time is a bench figure (not a timed unit test)
    assert 0 < result["mnist_load_s"] < 600


def test_rows_have_times_and_agree_with_the_loops(quick_run):
    _, _, result, _ = quick_run
    rows = result["rows"]
    names = {(row["section"], row["implementation"]) for row in rows}
    for section in ("layer", "train step", "inference"):
        assert (section, bench.REF) in names and (section, bench.NUMPY) in names
    assert ("train step", bench.FUSED) in names and ("train step", bench.LAYERS) in names
    # both tutorials: the English original's loops and cnn_ext's façade of its API
    assert ("train step", bench.ORIGINAL_REF) in names and ("train step", bench.ORIGINAL) in names
    assert ("inference", "cnn_ext 1 thread") in names and ("inference", "cnn_ext 2 threads") in names
    cases = {row["case"] for row in rows if row["section"] == "layer"}
    assert cases == {f"{layer} {direction}" for layer in ("Conv3x3", "MaxPool2", "Softmax")
                     for direction in ("forward", "backward")}
    for row in rows:
        label = f"{row['section']} / {row['case']} / {row['implementation']}"
        assert row["median_s"] > 0, label
        assert row["rounds"] >= 1 and len(row["times_s"]) == row["rounds"], label
        assert all(t > 0 for t in row["times_s"]), label
        assert row["images_per_round"] >= 1, label
        assert row["rel_error"] is not None, label
        if row["implementation"].startswith("cnn_ext") or row["implementation"] == bench.NUMPY:
            assert row["rel_error"] < 1e-10, label
        if row["implementation"] == bench.REF:
            assert row["speedup_vs_loops"] == pytest.approx(1.0)
        if row["section"] != "epoch":
            assert row["speedup_vs_loops"] > 0 and row["speedup_vs_numpy"] > 0, label
    epoch = next(row for row in rows if row["section"] == "epoch")
    assert epoch["full_epoch"] is False and "extrapolated" in epoch["note"]
    assert epoch["epoch_s"] == pytest.approx(epoch["median_s"] * 60000)


def test_printed_table(quick_run):
    _, stdout, result, _ = quick_run
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("section"))
    assert header.split() == ["section", "case", "implementation", "median/img", "spread", "vs",
                              "loops", "vs", "NumPy", "rel_error", "timed", "floor/img", "of",
                              "peak"]
    start = lines.index(header)
    assert set(lines[start + 1]) <= {"-", " "}
    end = next(i for i, line in enumerate(lines) if line.startswith("median/img:"))
    body = [line for line in lines[start + 2:end] if line.strip()]
    table_rows = [line for line in body if line.split()[0] in {"layer", "train", "epoch", "inference"}]
    assert len(table_rows) == len(result["rows"])
    assert "wrote" in stdout and "inference throughput:" in stdout
    assert re.search(r"^embedded MNIST \(mnist.load_data\(\), 70,000 images\): loaded in [\d.]+ m?s$", stdout, re.M)
    for name in (bench.REF, bench.NUMPY, bench.FUSED):
        assert name in stdout


def test_peak_and_fraction_of_peak(quick_run):
    _, stdout, result, _ = quick_run
    peak = result["peak"]
    assert result["peak_gflops"] == peak["gflops"] > 0
    assert peak["kernels"] in ("_kernels", "_kernels_avx2", "_kernels_avx512") and peak["isa"]
    assert len(peak["measurements_gflops"]) == 2  # before and after the cases
    madds = result["multiply_adds_per_image"]
    assert madds["training"] == 137_904 and madds["inference"] == 62_192
    for row in result["rows"]:
        label = f"{row['section']} / {row['implementation']}"
        assert "fraction_of_peak" in row, label
        if row["section"] == "layer":
            assert row["fraction_of_peak"] is None, label
            continue
        kind = "inference" if row["section"] == "inference" else "training"
        threads = 2 if row["implementation"] == "cnn_ext 2 threads" else 1
        threads = min(threads, result["machine"]["usable_cpus"] or threads)
        floor = 2 * madds[kind] / (peak["gflops"] * 1e9 * threads)
        assert row["floor_s"] == pytest.approx(floor), label
        assert row["fraction_of_peak"] == pytest.approx(floor / row["median_s"]), label
        # Positive, and not bounded above here: on a loaded machine a disturbed probe can
        # under-measure the peak, and timings belong in the benchmark, not in a unit test.
        assert row["fraction_of_peak"] > 0, label
    assert "peak: " in stdout and "of peak" in stdout
    assert "train step: cnn_ext fused:" in stdout and "inference: cnn_ext 1 thread:" in stdout


def test_scaling_written(quick_run, tmp_path_factory):
    *_, result, png = quick_run
    if png is None:
        pytest.skip("matplotlib is not installed, so the scaling run (which draws a figure) was not made")
    scaling = json.loads((png.parent / "scaling.json").read_text(encoding="utf-8"))
    assert scaling["inference"] == result["scaling"]["inference"]
    threads = [row["threads"] for row in scaling["inference"]]
    assert threads == list(range(1, len(threads) + 1)) and len(threads) == result["machine"]["usable_cpus"]
    sizes = [row["train_images"] for row in scaling["epoch"]]
    assert sizes == sorted(sizes) and sizes[-1] == 60_000
    for row in scaling["inference"] + scaling["epoch"]:
        assert row["median_s"] > 0 and row["fraction_of_peak"] > 0
    data = (png.parent / "scaling.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_written(quick_run):
    *_, png = quick_run
    if png is None:
        pytest.skip("matplotlib is not installed, so the benchmark chart was not drawn (pip install 'cnn_ext[plot]')")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_without_matplotlib_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    rows = [{"section": "s", "case": "c", "implementation": "i", "median_s": 1e-3}]
    assert bench.plot(rows, tmp_path / "x.png") is False
    assert "needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_helpers():
    assert bench.rel_error([np.array([1.0, 2.0])], [np.array([1.0, 2.0])]) == 0.0
    assert bench.rel_error([np.array([1.0, 2.5])], [np.array([1.0, 2.0])]) == pytest.approx(0.25)
    assert bench.rel_error([np.zeros(2)], [np.zeros(2)]) == 0.0
    assert bench.format_time(28e-3) == "28.0 ms" and bench.format_time(4.2e-6) == "4.20 us"
    assert bench.format_ratio(1234.0) == "1,234x"
    images = bench.unique_max_images(3, seed=0)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8


def test_bad_arguments():
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])


def test_frameworks_absent_are_left_out(monkeypatch):
    """Without torch / tensorflow the factories return None and the suite lists no rows for them."""
    import argparse

    import cnn_ext
    from cnn_ext.bench import frameworks as _frameworks

    monkeypatch.setattr(_frameworks, "_import", lambda name: None)
    network = cnn_ext.Network(seed=0)
    assert _frameworks.torch_network(network) is None
    assert _frameworks.tensorflow_network(network) is None
    cfg = argparse.Namespace(no_frameworks=False, framework_threads=1)
    found, messages = bench.load_frameworks(cfg, {"torch": None, "tensorflow": None})
    assert found == []
    assert "PyTorch: not installed" in messages and "TensorFlow: not installed" in messages
    versions = _frameworks.framework_versions()
    assert set(versions) == {"torch", "tensorflow"}
