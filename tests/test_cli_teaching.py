"""Teaching frictions of the command line (issue "Check my layer"): `train --filters`, and a
diverging `--lr` said in words. Run as a user runs it: the installed `cnn-ext` in a subprocess."""
import subprocess
import sys
import warnings

import numpy as np

from cnn_ext import Network
from cnn_ext.datasets import mnist
from cnn_ext.saver import load_params


def cnn_ext(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cnn_ext", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_train_filters_sizes_a_new_model(tmp_path):
    run = cnn_ext("train", "--filters", 3, "--train-size", 300, "--test-size", 50, "--epochs", 1,
                  "--model", "three", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    params = load_params(str(tmp_path / "three.pkl"))
    assert params["conv_filters"].shape == (3, 3, 3)
    assert params["softmax_weights"].shape == (13 * 13 * 3, 10)
    for args, message in ((["--filters", "0"], "expected an integer in 1..1024, got 0"),
                          (["--filters", "1025"], "expected an integer in 1..1024, got 1025"),
                          (["--filters", "4", "--resume", "--model", "three"], "--resume continues")):
        bad = cnn_ext("train", *args, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


def test_a_diverging_rate_is_said_in_words_with_its_step(tmp_path):
    (x, y), _ = mnist.load_data()
    network = Network(seed=0, learn_rate=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = network.fit(x[:2000], y[:2000], 1, seed=0, log_every=0)
    assert history.nan_step is not None and not np.isfinite(network.softmax.weights).all()

    previous = cnn_ext("train", "--train-size", 300, "--test-size", 50, "--epochs", 1, "--model", "m",
                       "--quiet", cwd=tmp_path)
    assert previous.returncode == 0, previous.stderr
    before = (tmp_path / "m.pkl").read_bytes()
    run = cnn_ext("train", "--lr", 0.5, "--train-size", 2000, "--test-size", 50, "--epochs", 1,
                  "--model", "m", "--quiet", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"cnn-ext: training diverged at step {history.nan_step:,}: the loss became NaN and the weights "
        "with it, so the learning rate 0.5 is too high (the tutorial's is 0.005); nothing was saved, "
        "m.pkl is unchanged"]
    assert (tmp_path / "m.pkl").read_bytes() == before
    assert "cannot save" not in run.stderr + run.stdout


def test_plot_of_a_short_run_chooses_log_every_and_draws_the_test_curve(tmp_path):
    from PIL import Image

    run = cnn_ext("train", "--train-size", 1000, "--test-size", 200, "--epochs", 2, "--model", "p",
                  "--plot", "curves.png", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "--plot: logging every 100 steps (20 points; --log-every N to choose)" in run.stdout
    assert run.stdout.count("[Step ") == 20
    with Image.open(tmp_path / "curves.png") as png:
        pixels = np.asarray(png.convert("RGB")).astype(int)
    red = (np.abs(pixels - [214, 39, 40]).sum(axis=2) < 30).sum()  # the test curve's colour
    assert red > 200, red
    chosen = cnn_ext("train", "--train-size", 1000, "--epochs", 1, "--plot", "c.png", "--log-every", "10000",
                     cwd=tmp_path)
    assert chosen.returncode == 2 and "use a smaller --log-every" in chosen.stderr


def test_evaluate_plot_gives_the_errors_their_own_colour_scale():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnn_ext.cli import _evaluation_figure

    _, (x_test, y_test) = mnist.load_data()
    network = Network(seed=0)
    (x_train, y_train), _ = mnist.load_data()
    network.fit(x_train[:3000], y_train[:3000], 1, seed=0, log_every=0)
    result = network.evaluate(x_test[:1000], y_test[:1000])
    predicted = network.predict(x_test[:1000])
    fig = _evaluation_figure(plt, result, x_test[:1000], y_test[:1000], predicted)
    ax = fig.axes[0]
    right, errors = ax.images[:2]
    off = result.confusion[~np.eye(10, dtype=bool)]
    assert errors.norm.vmax == off.max() and right.norm.vmax == result.confusion.max()
    t, p = np.unravel_index(np.argmax(np.where(np.eye(10, dtype=bool), -1, result.confusion)), (10, 10))
    colour = errors.cmap(errors.norm(result.confusion[t, p]))
    assert min(colour[:3]) < 0.3, colour  # the largest error is a strong red, not near white
    plt.close(fig)


def test_the_cli_reference_page_names_every_command_and_option():
    # docs/cli.rst is written by hand: this keeps it from missing a command or an option.
    import argparse
    from pathlib import Path

    import re

    from cnn_ext.cli import build_parser

    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.rst").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {command: [o for a in parser._actions for o in a.option_strings]
               for command, parser in sub.choices.items() if command != "bench"}
    # bench has its own parser, built as it parses: its --help lists the options
    bench_help = subprocess.run([sys.executable, "-m", "cnn_ext", "bench", "--help"],
                                capture_output=True, text=True).stdout
    options["bench"] = re.findall(r"^  (--[a-z-]+)", bench_help, flags=re.M)
    assert len(options["bench"]) > 5
    for command, names in options.items():
        section = page.split(f"\ncnn-ext {command}\n", 1)
        assert len(section) == 2, f"docs/cli.rst has no section for cnn-ext {command}"
        body = section[1].split("\ncnn-ext ", 1)[0]
        for option in names:
            if option.startswith("--") and option != "--help":
                assert f"``{option}" in body, f"docs/cli.rst: cnn-ext {command} {option} is missing"
