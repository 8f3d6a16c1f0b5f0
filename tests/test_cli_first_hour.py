"""The command line as a new or careless user meets it: every command works or says why
in one line, before any work; nothing trained is lost. Runs the installed `cnn-ext`."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

SMALL = ["--train-size", "600", "--test-size", "100", "--epochs", "1", "--log-every", "200"]


def cli(*args, cwd, env=None, timeout=300, check=None, python=None):
    run = subprocess.run([sys.executable, "-m", "cnn_ext", *map(str, args)], cwd=cwd, capture_output=True,
                         text=True, timeout=timeout, encoding="utf-8", errors="replace",
                         env=dict(os.environ, PYTHONIOENCODING="utf-8", **(env or {})))
    if check is not None:
        assert run.returncode == check, (run.returncode, run.stdout, run.stderr)
    return run


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("first-hour")
    cli("train", *SMALL, "--model", "m.pkl", cwd=folder, check=0)
    return folder


def one_line_usage_error(run, message):
    """argparse's own style: exit status 2 and 'cnn-ext CMD: error: ...' (after the usage
    lines for a malformed argument, alone for one that parsed but cannot work)."""
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    assert re.search(r"^cnn-ext \w+: error: .*" + message, run.stderr, re.M), run.stderr


# ----------------------------------------------------------------------- model names


def test_a_name_ending_in_pkl_is_taken_literally(model_dir):
    assert (model_dir / "m.pkl").is_file() and not (model_dir / "m.pkl.pkl").exists()
    run = cli("evaluate", "--model", "m.pkl", "--test-size", 50, cwd=model_dir, check=0)
    assert "test accuracy" in run.stdout
    missing = cli("evaluate", "--model", "other.pkl", cwd=model_dir, check=1)
    assert "no model other.pkl: train one first with `cnn-ext train --model other.pkl`" in missing.stderr


# ----------------------------------------------------------------------- no digit


def _save(folder, name, array):
    Image.fromarray(array).save(folder / name)
    return name


def test_predict_says_no_digit_found(model_dir, mnist):
    rng = np.random.default_rng(0)
    faint = np.full((200, 200), 255, np.uint8)
    faint[50:150, 95:105] = 248
    names = [_save(model_dir, "blank.png", np.full((200, 200), 255, np.uint8)),
             _save(model_dir, "noise.png", rng.integers(0, 256, (200, 200)).astype(np.uint8)),
             _save(model_dir, "faint.png", faint)]
    run = cli("predict", "--model", "m.pkl", *names, cwd=model_dir, check=1)  # no file held a digit
    lines = run.stdout.splitlines()
    assert len(lines) == 3
    for name, line in zip(names, lines):
        assert re.match(rf"{name}: no digit found \(.+\)$", line), line
    digit = _save(model_dir, "seven.png", mnist[1][0][0])
    run = cli("predict", "--model", "m.pkl", "blank.png", digit, cwd=model_dir, check=0)
    assert run.stdout.splitlines()[0].startswith("blank.png: no digit found (")
    assert re.match(r"seven.png: \d \(\d+\.\d%\)", run.stdout.splitlines()[1])


def test_predict_refuses_a_decompression_bomb_in_one_line(model_dir):
    Image.new("1", (30000, 30000)).save(model_dir / "bomb.png")
    run = cli("predict", "--model", "m.pkl", "bomb.png", cwd=model_dir, check=1)
    assert "Traceback" not in run.stderr and "DecompressionBomb" not in run.stderr.split(":")[0]
    assert re.fullmatch(r"bomb.png: error: .*too large to be a digit's picture.*\n", run.stderr), run.stderr


# ----------------------------------------------------------------------- arguments first


@pytest.mark.parametrize("seed", ["-1", str(2**32), "abc"])
def test_seed_is_checked_before_any_work(tmp_path, seed):
    run = cli("train", "--seed", seed, cwd=tmp_path)
    one_line_usage_error(run, r"argument --seed: expected an integer")
    # nothing started: training's first line ("cnn-ext 0.1.0: training ...") and any file
    assert run.stdout == "" and not list(tmp_path.iterdir())


def test_sizes_are_checked_before_loading(tmp_path):
    one_line_usage_error(cli("train", "--train-size", 70000, cwd=tmp_path), r"--train-size must be at most 60000")
    one_line_usage_error(cli("evaluate", "--test-size", 20000, cwd=tmp_path), r"--test-size must be at most 10000")


def test_plot_needs_step_logs_and_says_so_first(tmp_path):
    run = cli("train", "--train-size", 300, "--log-every", 0, "--plot", "c.png", cwd=tmp_path)
    one_line_usage_error(run, r"--plot draws the step log: it needs --log-every N with N > 0")
    run = cli("train", "--train-size", 300, "--epochs", 1, "--log-every", 200, "--plot", "c.png", cwd=tmp_path)
    one_line_usage_error(run, r"--plot needs at least two step logs")
    assert not list(tmp_path.iterdir())  # nothing trained, nothing saved


def test_plot_without_matplotlib_says_so_before_training(tmp_path):
    fake = tmp_path / "no-matplotlib" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    env = {"PYTHONPATH": str(fake.parent)}
    run = cli("train", *SMALL, "--plot", "c.png", "--model", "m", cwd=tmp_path, env=env)
    one_line_usage_error(run, r"--plot needs matplotlib: pip install 'cnn_ext\[plot\]'")
    assert not (tmp_path / "m.pkl").exists()
    run = cli("evaluate", "--model", "m", "--plot", "e.png", cwd=tmp_path, env=env)
    one_line_usage_error(run, r"--plot needs matplotlib")


# ----------------------------------------------------------------------- saving


def test_an_unwritable_model_path_is_refused_before_training(tmp_path):
    (tmp_path / "adir.pkl").mkdir()
    for name in ("missing/folder/m", "adir.pkl"):
        run = cli("train", "--model", name, cwd=tmp_path)
        one_line_usage_error(run, r"cannot save ")
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert run.stdout == "", run.stdout  # refused before training's first line
    assert not (tmp_path / "missing").exists()


def test_a_save_that_fails_after_training_keeps_the_work(tmp_path):
    """The disk fills or the folder goes away during training: the model is written to
    a fallback file, named on the output, and the exit status says something failed."""
    script = textwrap.dedent("""
        import sys
        from cnn_ext import cli, saver
        real = saver.save_params
        calls = []
        def save_params(filename, *arrays):
            calls.append(filename)
            if len(calls) == 1:
                raise saver.ModelWriteError("cannot save 'm.pkl': No space left on device", filename, 28)
            return real(filename, *arrays)
        saver.save_params = save_params
        sys.exit(cli.main(sys.argv[1:]))
    """)
    run = subprocess.run([sys.executable, "-c", script, "train", *SMALL, "--model", "m.pkl"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    fallback = re.search(r"cannot save the model to m.pkl \(.*No space left on device.*\); saved it to (.+) instead",
                         run.stderr).group(1)
    assert f"model saved to {fallback}" in run.stdout
    try:
        from cnn_ext.saver import load_params
        assert load_params(fallback)["conv_filters"].shape == (8, 3, 3)
    finally:
        os.remove(fallback)


def test_replacing_a_model_says_what_is_replaced(model_dir, tmp_path):
    (tmp_path / "m.pkl").write_bytes((model_dir / "m.pkl").read_bytes())
    before = cli("evaluate", "--model", "m.pkl", "--test-size", 100, cwd=tmp_path, check=0)
    accuracy = re.search(r"test accuracy (\d+\.\d+)%", before.stdout).group(1)
    run = cli("train", "--train-size", 300, "--test-size", 100, "--epochs", 1, "--quiet", "--model", "m.pkl",
              cwd=tmp_path, check=0)
    assert f"m.pkl exists (test accuracy {accuracy}% on 100 images): it will be replaced" in run.stdout
    assert re.search(rf"model saved to m.pkl \(replacing the previous one: test accuracy {accuracy}%", run.stdout)


def test_resume_continues_from_the_saved_model(model_dir, tmp_path):
    from cnn_ext.saver import load_params

    (tmp_path / "m.pkl").write_bytes((model_dir / "m.pkl").read_bytes())
    saved = load_params(tmp_path / "m.pkl")
    run = cli("train", *SMALL, "--resume", "--model", "m.pkl", cwd=tmp_path, check=0)
    assert re.search(r"from m.pkl \(test accuracy \d+\.\d+% on 100 images\)", run.stdout), run.stdout
    resumed = load_params(tmp_path / "m.pkl")
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    cli("train", *SMALL, "--model", "m.pkl", cwd=fresh_dir, check=0)
    fresh = load_params(fresh_dir / "m.pkl")
    # resuming is the same fit as in Python, starting from the file's weights
    from cnn_ext import Network
    from cnn_ext.datasets import mnist
    (x, y), _ = mnist.load_data()
    net = Network(seed=0)
    net.conv.filters, net.softmax.weights, net.softmax.biases = (
        saved["conv_filters"], saved["softmax_weights"], saved["softmax_biases"])
    net.fit(x[:600], y[:600], 1, seed=0)
    assert np.array_equal(net.softmax.weights, resumed["softmax_weights"])
    assert not np.array_equal(resumed["softmax_weights"], fresh["softmax_weights"])
    run = cli("train", "--resume", "--model", "nothing.pkl", cwd=tmp_path)
    one_line_usage_error(run, r"--resume: there is no model nothing.pkl to continue from")


# ----------------------------------------------------------------------- output


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    run = cli("train", *SMALL, "--model", "m", cwd=tmp_path, check=0)
    assert "\r" not in run.stderr and "\r" not in run.stdout
    assert run.stderr == ""
    assert [line for line in run.stdout.splitlines() if line.startswith("[Step")] == [
        line for line in run.stdout.splitlines() if re.match(r"\[Step \d+\] Past 200 steps :Average Loss", line)]


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_any_output_encoding_works(tmp_path, encoding):
    run = subprocess.run([sys.executable, "-m", "cnn_ext", "train", *SMALL, "--model", "m"], cwd=tmp_path,
                         capture_output=True, timeout=300, env=dict(os.environ, PYTHONIOENCODING=encoding))
    assert run.returncode == 0, run.stderr.decode(encoding, "replace")
    out = run.stdout.decode(encoding)
    assert "\\u4fdd\\u5b58\\u53c2\\u6570\\u5230m.pkl" in out  # 保存参数到m.pkl, escaped
    assert "model saved to m.pkl" in out


def test_every_option_has_help():
    from cnn_ext.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        if name == "bench":
            continue  # its own parser, with help on every option
        for action in sub._actions:
            assert action.help, f"cnn-ext {name} {action.option_strings or action.dest} has no help text"


def test_misclassified_titles_do_not_overlap(mnist):
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is not installed, so the --plot "
                                     "pictures were not drawn (pip install 'cnn_ext[plot]')")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnn_ext import Network
    from cnn_ext.cli import _evaluation_figure

    _, (x_test, y_test) = mnist
    network = Network(seed=0)  # untrained: most digits are wrong, so the grid is full
    result = network.evaluate(x_test[:300], y_test[:300])
    fig = _evaluation_figure(plt, result, x_test[:300], y_test[:300], network.predict(x_test[:300]))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    digits = [ax for ax in fig.axes[1:]]
    assert len(digits) == 36
    for k, ax in enumerate(digits[6:]):
        title = ax.title.get_window_extent(renderer)
        above = digits[k].get_window_extent(renderer)  # the digit in the row above
        assert title.y1 <= above.y0, f"title of digit {k + 6} hides the image above it"
        assert ax.title.get_text() and "\u2192" in ax.title.get_text()
    plt.close(fig)


def test_live_without_a_display_says_so_in_one_line(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed, so the --live window was not tried "
                        "(pip install 'cnn_ext[plot]')")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    run = subprocess.run([sys.executable, "-m", "cnn_ext", "train", *SMALL, "--live", "--model", "m"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=dict(env, PYTHONIOENCODING="utf-8"))
    one_line_usage_error(run, r"--live: the live training view needs a display: no DISPLAY is set")
    assert run.stderr.count("needs a display") == 1  # said once, not "needs a display: ... needs a display"
    assert not (tmp_path / "m.pkl").exists()
