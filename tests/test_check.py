"""cnn_ext.check: every planted bug in learner-style layers of both tutorials is named, with
the right indices; correct layers (the package's own included) pass; the learner's own code
runs, imported once."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnn_ext
import cnn_ext_reference as ref
from cnn_ext import check as C


def _learners():
    # The suite runs with --import-mode=importlib: a sibling file is loaded by its path.
    spec = importlib.util.spec_from_file_location("check_learners", Path(__file__).with_name("check_learners.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_L = _learners()
BUGS, TRAINING_BUGS, source = _L.BUGS, _L.TRAINING_BUGS, _L.source

TUTORIALS = ("adaptation", "original")


def write(tmp_path, tutorial, bug=None, train=False, name=None):
    path = tmp_path / (name or f"{tutorial}_{bug or 'right'}.py")
    path.write_text(source(tutorial, bug, train))
    return path


def first_wrong(result, layer):
    return result.layers[layer].first_wrong


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_correct_learner_layers_pass_with_their_training_loop(tmp_path, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, train=True)), steps=15)
    assert result.ok, result.report()
    assert all(r.status == "right" for r in result.layers.values())
    assert result.training is not None and result.training.ok and result.training.steps == 15
    assert result.report().endswith("all right")
    assert {r.api for n, r in result.layers.items() if n != "MaxPool2"} == {tutorial}


def _package_layers(name):
    module = importlib.import_module(name)
    return module.Conv3x3, module.MaxPool2, module.Softmax


@pytest.mark.parametrize("name, api", [("cnn_ext_reference", C.ADAPTATION), ("cnn_ext", C.ADAPTATION),
                                       ("cnn_ext_reference.cnn_from_scratch", C.ORIGINAL),
                                       ("cnn_ext.cnn_from_scratch", C.ORIGINAL)])
def test_the_packages_own_layers_pass(name, api):
    result = C.check(*_package_layers(name), steps=10)
    assert result.ok, result.report()
    assert result.layers["Conv3x3"].api == result.layers["Softmax"].api == api


def test_rounding_is_close_and_close_counts_as_right(tmp_path):
    # The original learner sums with tensordot, in another order than the reference.
    result = C.check_file(str(write(tmp_path, "original")), steps=0)
    statuses = [t.status for t in result.layers["Conv3x3"].tensors]
    assert "close" in statuses and "wrong" not in statuses
    e = np.array([1.0, -2.0, 3.0])
    assert C.compare("L", "c", "t", e, e * (1 + 1e-13)).status == "close"
    assert C.compare("L", "c", "t", e, e + [0, 0, 3e-6]).status == "wrong"
    assert C.compare("L", "c", "t", e, e.copy()).status == "exact"


@pytest.mark.parametrize("bug,tutorial", [(b, t) for b, spec in BUGS.items() for t in TUTORIALS if t in spec])
def test_each_planted_bug_is_named(tmp_path, bug, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, bug)), steps=5)
    layer = BUGS[bug]["layer"]
    assert not result.ok
    assert not result.layers[layer].ok
    hints = result.layers[layer].hints
    assert any(BUGS[bug]["hint"] in h for h in hints), (hints, result.report())
    # No other layer is blamed: the bug is in this one only.
    for name, r in result.layers.items():
        if name != layer:
            assert r.ok and not r.hints, result.report()
    assert "likely cause: " in result.report()


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_first_maximum_only_names_a_tied_window(tmp_path, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, "pool_first_max_only")), steps=0)
    t = first_wrong(result, "MaxPool2")
    assert t.name == "d_L_d_input" and "MNIST training digit" in t.case
    # Computed independently: the conv maps of that digit with the seeded filters, through
    # the tutorial's own classes; the wrong elements are tied positions after the first.
    k = int(t.case.split("digit ")[1].split()[0])
    (x, _), _ = cnn_ext.datasets.mnist.load_data()
    conv = ref.Conv3x3(8)
    np.random.seed(0)
    conv.filters = np.random.randn(8, 3, 3) / 9
    maps = conv.forward(x[k] / 255 - 0.5)
    later_ties = np.zeros(maps.shape, bool)
    for i in range(13):
        for j in range(13):
            for f in range(8):
                win = maps[2 * i:2 * i + 2, 2 * j:2 * j + 2, f]
                tied = np.argwhere(win == win.max())
                for a, b in tied[1:]:
                    later_ties[2 * i + a, 2 * j + b, f] = True
    assert t.index == tuple(int(v) for v in np.argwhere(later_ties)[0])
    assert t.differing == int(later_ties.sum()) == 2081  # the count
    assert t.actual == 0 and t.expected != 0
    assert "tie" in t.where and "input[" in t.where
    assert "all 741 differing windows are tied" in result.layers["MaxPool2"].hints[0]


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_weights_updated_first_names_the_input_gradient(tmp_path, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, "softmax_weights_before_input_gradient")), steps=0)
    t = first_wrong(result, "Softmax")
    assert t.name == "d_L_d_input" and t.index == (0, 0, 0) and t.differing == t.size == 24
    # The updated parameters themselves are right: only the returned gradient is not.
    assert all(x.ok for x in result.layers["Softmax"].tensors if x.name != "d_L_d_input")


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_assignment_for_accumulation_names_the_filter_update(tmp_path, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, "conv_assign_not_accumulate")), steps=0)
    t = first_wrong(result, "Conv3x3")
    assert t.name == "filters (after backprop)" and t.index == (0, 0, 0)
    assert t.differing == t.size == 27  # 3 filters of the first case, every weight
    assert "d_L_d_out[i, j, 0] * image[i + 0, j + 0]" in t.where


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_missing_division_is_named_on_the_initial_filters(tmp_path, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, "conv_missing_div9")), steps=0)
    t = first_wrong(result, "Conv3x3")
    assert t.name == "filters (initial)" and t.index == (0, 0, 0)
    assert t.actual == pytest.approx(9 * t.expected)


@pytest.mark.parametrize("bug", sorted(TRAINING_BUGS))
def test_training_run_names_the_first_diverging_step_and_parameter(tmp_path, bug):
    tutorial, _, step, prefix = TRAINING_BUGS[bug]
    path = tmp_path / f"{bug}.py"
    path.write_text(source(tutorial, bug, train=True))
    result = C.check_file(str(path), steps=10)
    assert all(r.ok for r in result.layers.values()), result.report()  # each layer alone is right
    assert not result.ok and result.training.step == step
    assert result.training.parameter.startswith(prefix)
    assert f"diverges at step {step}: {result.training.parameter}" in result.report()


def test_softmax_overflow_is_a_note_not_a_failure(tmp_path):
    path = tmp_path / "shifted.py"
    text = source("adaptation").replace("        e = np.exp(totals)\n",
                                        "        e = np.exp(totals - totals.max())\n")
    path.write_text(text)
    plain = C.check_file(str(write(tmp_path, "adaptation")), steps=0)
    shifted = C.check_file(str(path), steps=0)
    assert plain.ok and shifted.ok
    assert any("overflow" in n for n in plain.layers["Softmax"].notes)
    assert not shifted.layers["Softmax"].notes


def test_not_implemented_yet_is_reported_without_error():
    class Conv3x3:
        def __init__(self, num_filters, learn_rate=0.01):
            self.filters = np.random.randn(num_filters, 3, 3) / 9

        def forward(self, input):
            raise NotImplementedError

        def backprop(self, d_L_d_out):
            raise NotImplementedError

    result = C.check(conv=Conv3x3)
    assert result.layers["Conv3x3"].status == "not implemented yet"
    assert result.layers["MaxPool2"].status == "missing"
    assert not result.ok and "not implemented yet" in result.report()
    assert "Traceback" not in result.report()


def test_the_learners_objects_run_never_the_reference():
    calls = []

    class Pool(ref.MaxPool2):
        def forward(self, input):
            calls.append("forward")
            return super().forward(input)

        def backprop(self, d_L_d_out):
            calls.append("backprop")
            return super().backprop(d_L_d_out) * 1.5  # wrong, and must be seen as wrong

    result = C.check(pool=Pool)
    assert calls.count("backprop") == len(C._pool_cases(0))
    assert not result.ok and result.layers["MaxPool2"].first_wrong.name == "d_L_d_input"


def test_the_learners_file_is_imported_once(tmp_path):
    log = tmp_path / "imports.log"
    path = tmp_path / "mine.py"
    path.write_text(f"open({str(log)!r}, 'a').write('imported\\n')\n" + source("original", train=True)
                    + "\nif __name__ == '__main__':\n    raise SystemExit('the script part must not run')\n")
    run = subprocess.run([sys.executable, "-m", "cnn_ext", "check", str(path), "--steps", "3"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert log.read_text() == "imported\n"


def test_cli_exit_status_report_and_no_traceback(tmp_path):
    right = write(tmp_path, "adaptation")
    wrong = write(tmp_path, "adaptation", "pool_first_max_only")
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\nraise ValueError('half written')\n")

    def cnn_ext_check(*args):
        return subprocess.run([sys.executable, "-m", "cnn_ext", "check", *map(str, args)],
                              capture_output=True, text=True, cwd=tmp_path)

    ok = cnn_ext_check(right, "--steps", "2")
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("all right"), ok.stdout + ok.stderr
    bad = cnn_ext_check(wrong, "--steps", "2")
    assert bad.returncode == 1
    assert "MaxPool2  wrong" in bad.stdout and "likely cause: gradient to one tied maximum only" in bad.stdout
    assert "d_L_d_input[0, 1, 0]" in bad.stdout
    err = cnn_ext_check(broken)
    assert err.returncode == 1 and "ValueError: half written" in err.stdout
    for run in (ok, bad, err):
        assert "Traceback" not in run.stdout + run.stderr
    missing = cnn_ext_check(tmp_path / "nope.py")
    assert missing.returncode == 2 and "no file" in missing.stderr


def test_api_is_detected_from_the_backprop_signature():
    class A:
        def backprop(self, d_L_d_out):
            pass

    class O:
        def backprop(self, d_L_d_out, learn_rate):
            pass

    class WithDefault:
        def backprop(self, d_L_d_out, learn_rate=None):
            pass

    assert C.detect_api(A) == C.ADAPTATION
    assert C.detect_api(O) == C.ORIGINAL
    assert C.detect_api(WithDefault) == C.ADAPTATION


def test_hostile_learner_code_ends_in_a_report(monkeypatch):
    # An endless loop is cut by the time limit; wrong constructors, shapes and types are findings.
    monkeypatch.setattr(C, "CALL_SECONDS", 1.0)

    class Conv3x3:
        def __init__(self, num_filters, lr):
            pass

    class MaxPool2:
        def forward(self, x):
            return [[1, 2]]

        def backprop(self, d):
            return None

    class Softmax:
        def __init__(self, input_len, nodes):
            self.weights = np.random.randn(input_len, nodes) / nodes
            self.biases = np.zeros(nodes)

        def forward(self, x):
            while True:
                pass

        def backprop(self, d):
            return d

    result = C.check(Conv3x3, MaxPool2, Softmax)
    conv, pool, softmax = (result.layers[n] for n in ("Conv3x3", "MaxPool2", "Softmax"))
    assert conv.status == "error" and "missing 1 required positional argument" in conv.error
    assert "the constructor's arguments" in conv.hints[0]
    assert pool.status == "wrong" and pool.first_wrong.problem == "got shape (1, 2), expected (3, 4, 3)"
    assert softmax.status == "error" and "did not return within 1 s" in softmax.error
    assert result.training is None and not result.ok


# Where each planted bug first shows: (tensor, first wrong index, elements that differ / size).
# In these cases the bug changes every element of the tensor, so the first is index 0 and the
# count is the whole tensor (the first-maximum and ordering cases are checked above).
FIRST_WRONG = {
    "conv_missing_div9": ("filters (initial)", (0, 0, 0), 72),
    "softmax_missing_div": ("weights (initial)", (0, 0), 13520),
    "update_sign": ("filters (after backprop)", (0, 0, 0), 27),
    "rate_applied_twice": ("filters (after backprop)", (0, 0, 0), 27),
    "rate_not_applied": ("weights (after backprop)", (0, 0), 240),
    "transposed_flatten": ("probabilities", (0,), 10),
    "softmax_first_entry_only": ("d_L_d_input", (0, 0, 0), 30),
    "softmax_assign_not_accumulate": ("d_L_d_input", (0, 0, 0), 30),
}


@pytest.mark.parametrize("bug,tutorial", [(b, t) for b in FIRST_WRONG for t in TUTORIALS if t in BUGS[b]])
def test_each_bug_is_located_in_the_tutorials_indices(tmp_path, bug, tutorial):
    result = C.check_file(str(write(tmp_path, tutorial, bug)), steps=0)
    t = first_wrong(result, BUGS[bug]["layer"])
    name, index, count = FIRST_WRONG[bug]
    assert (t.name, t.index, t.differing, t.size) == (name, index, count, count)
    assert t.expected != t.actual
    text = result.report()
    assert f"first wrong: {name}[{', '.join(map(str, index))}] expected {t.expected:.6g}, got {t.actual:.6g} " \
           f"({count} of {count} elements differ)" in text


def test_forward_only_checks_leave_backprop_alone():
    class Pool(ref.MaxPool2):
        def backprop(self, d_L_d_out):
            raise NotImplementedError("exercise 5")

    forward = C.check(pool=Pool, methods=["forward"])
    assert forward.ok and "forward only" in forward.report()
    assert forward.layers["MaxPool2"].status == "right"
    both = C.check(pool=Pool)
    assert both.layers["MaxPool2"].status == "not implemented yet" and not both.ok
    with pytest.raises(ValueError, match="forward.*backprop"):
        C.check(pool=Pool, methods=["backward"])


def test_an_import_that_does_not_end_is_stopped_with_advice(tmp_path):
    # A tutorial script trains at its top level, and importing it runs that first: after
    # --import-timeout the check stops, in one line that says how to avoid it.
    slow = tmp_path / "trains_forever.py"
    slow.write_text("import time\nwhile True:\n    time.sleep(0.01)\n")

    def cnn_ext_check(*args):
        return subprocess.run([sys.executable, "-m", "cnn_ext", "check", *map(str, args)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)

    run = cnn_ext_check(slow, "--import-timeout", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "importing" in run.stdout and "did not finish within 1 s" in run.stdout
    assert 'if __name__ == "__main__":' in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    for bad in ("0", "-3", "abc", "1e9", "nan"):
        refused = cnn_ext_check(slow, "--import-timeout", bad)
        assert refused.returncode == 2 and "--import-timeout" in refused.stderr, (bad, refused.stderr)
        assert "Traceback" not in refused.stderr


def test_a_slow_import_gets_a_notice_then_the_check(tmp_path, monkeypatch, capsys):
    import argparse

    monkeypatch.setattr(C, "IMPORT_NOTICE_SECONDS", 0.2)
    path = tmp_path / "slow_but_right.py"
    path.write_text("import time\ntime.sleep(1.0)\n" + source("adaptation"))
    parser = argparse.ArgumentParser()
    C.add_parser(parser.add_subparsers())
    args = parser.parse_args(["check", str(path), "--steps", "2"])
    assert args.import_timeout == C.IMPORT_SECONDS
    assert C.cmd_check(args) == 0
    out = capsys.readouterr().out
    assert f"still importing {path} after 0.2 s" in out and "Ctrl-C stops" in out
    assert out.rstrip().endswith("all right")
