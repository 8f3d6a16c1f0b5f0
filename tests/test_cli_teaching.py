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
