"""The `cnn-ext` command line, run as a user runs it: in a subprocess, from the installed package."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

STEP_LINE = re.compile(r"^\[Step (\d+)\] Past 100 steps :Average Loss \d+\.\d{3} \| Accuracy \d+%$")


def cnn_ext(*args, cwd, check=True):
    run = subprocess.run([sys.executable, "-m", "cnn_ext", *map(str, args)], cwd=cwd,
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    if check:
        assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained by the CLI: its folder and the train output."""
    folder = tmp_path_factory.mktemp("cli")
    run = cnn_ext("train", "--train-size", 5000, "--test-size", 500, "--epochs", 1, "--log-every", 100,
                  "--seed", 3, "--model", "small", cwd=folder)
    return folder, run


def test_console_script_is_installed():
    assert shutil.which("cnn-ext"), "the cnn-ext console script is not on PATH"
    run = subprocess.run(["cnn-ext", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("cnn-ext ")


def test_train_prints_the_tutorial_log_and_a_summary(trained):
    folder, run = trained
    lines = run.stdout.splitlines()
    steps = [int(m.group(1)) for m in map(STEP_LINE.match, lines) if m]
    assert steps == list(range(100, 5001, 100))
    summary = next(line for line in lines if line.startswith("test loss"))
    accuracy = float(re.search(r"test accuracy (\d+\.\d+)% on 500 images", summary).group(1))
    assert 80 < accuracy <= 100
    assert any(re.match(r"wall time \d+\.\d s \(training \d+\.\d s, [\d,]+ images/s\)", line) for line in lines)
    assert "保存参数到small.pkl" in lines and "model saved to small.pkl" in lines
    assert (folder / "small.pkl").is_file()
    assert run.stderr == ""  # no progress bar: stderr is a pipe here, not a terminal


def test_train_is_deterministic(trained, tmp_path):
    folder, first = trained
    again = cnn_ext("train", "--train-size", 5000, "--test-size", 500, "--epochs", 1, "--log-every", 100,
                    "--seed", 3, "--model", "small", cwd=tmp_path)
    strip = lambda out: [line for line in out.splitlines() if not line.startswith("wall time")]
    assert strip(again.stdout) == strip(first.stdout)
    assert (tmp_path / "small.pkl").read_bytes() == (folder / "small.pkl").read_bytes()
    other = cnn_ext("train", "--train-size", 500, "--test-size", 100, "--seed", 4, "--quiet", "--model", "other",
                    cwd=tmp_path)
    assert other.stdout.startswith("test loss") and "[Step" not in other.stdout and other.stderr == ""


def test_evaluate_reports_accuracy_per_class_and_confusion(trained):
    folder, train_run = trained
    train_accuracy = re.search(r"test accuracy (\d+\.\d+)%", train_run.stdout).group(1)
    run = cnn_ext("evaluate", "--model", "small", "--test-size", 500, cwd=folder)
    assert f"test accuracy {train_accuracy}% on 500 images" in run.stdout
    assert "per-class accuracy: 0: " in run.stdout
    table = run.stdout.split("confusion matrix (rows: true digit, columns: predicted):\n")[1].splitlines()
    assert table[0].split()[1:] == [str(d) for d in range(10)]
    counts = np.array([[int(n) for n in row.split()[1:]] for row in table[1:11]])
    assert counts.shape == (10, 10) and counts.sum() == 500
    assert np.trace(counts) / 500 == pytest.approx(float(train_accuracy) / 100)


def test_plots(trained, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed, so the --plot pictures were not drawn (pip install 'cnn_ext[plot]')")
    folder, _ = trained
    cnn_ext("evaluate", "--model", "small", "--test-size", 300, "--plot", tmp_path / "eval.png", cwd=folder)
    cnn_ext("train", "--train-size", 300, "--test-size", 50, "--log-every", 50, "--plot", tmp_path / "curves.png",
            "--model", tmp_path / "m", cwd=tmp_path)
    for name in ("eval.png", "curves.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 300 and image.size[1] > 200


def test_predict_png_and_jpeg(trained, mnist):
    folder, _ = trained
    _, (x_test, y_test) = mnist
    names = []
    for k in range(20):
        digit = x_test[k]
        if k % 2:  # as a user's scan would be: black on white, larger, JPEG
            image = Image.fromarray(255 - digit).resize((140, 140), Image.LANCZOS)
            name = f"digit{k}.jpg"
        else:
            image = Image.fromarray(digit)
            name = f"digit{k}.png"
        image.save(folder / name)
        names.append(name)
    run = cnn_ext("predict", "--model", "small", *names, cwd=folder)
    lines = run.stdout.splitlines()
    assert len(lines) == 20
    correct = 0
    for k, line in enumerate(lines):
        match = re.match(rf"{names[k]}: (\d) \((\d+\.\d)%\)  0:(\d\.\d{{3}})", line)
        assert match, line
        probs = [float(p.split(":")[1]) for p in line.split("  ", 1)[1].split()]
        assert len(probs) == 10 and abs(sum(probs) - 1) < 0.01
        correct += int(match.group(1)) == y_test[k]
    assert correct >= 16, run.stdout


def test_predict_errors(trained, tmp_path):
    folder, _ = trained
    (folder / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "blank.png")
    run = cnn_ext("predict", "--model", "small", "notes.png", "blank.png", "missing.png", cwd=folder, check=False)
    assert run.returncode == 1
    assert "notes.png: error:" in run.stderr and "missing.png: error:" in run.stderr
    assert run.stdout.startswith("blank.png: ")
    run = cnn_ext("predict", "--model", "nothing-here", "blank.png", cwd=folder, check=False)
    assert run.returncode == 1 and run.stdout == ""
    assert "no model nothing-here.pkl: train one first with `cnn-ext train --model nothing-here`" in run.stderr


def test_train_from_a_keras_npz(tmp_path, mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    np.savez(tmp_path / "mnist.npz", x_train=x_train[:300], y_train=y_train[:300],
             x_test=x_test[:50], y_test=y_test[:50])
    run = cnn_ext("train", "--data", tmp_path / "mnist.npz", "--quiet", "--model", "m", cwd=tmp_path)
    assert "on 50 images" in run.stdout


def test_bad_arguments_are_clear(tmp_path):
    for args, message in [(["train", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
                          (["train", "--lr", "-1"], "--lr: expected a positive number, got -1"),
                          (["train", "--train-size", "70000", "--quiet"], "--train-size must be at most 60000"),
                          (["train", "--data", "nowhere", "--quiet"], "nowhere")]:
        run = cnn_ext(*args, cwd=tmp_path, check=False)
        assert run.returncode != 0 and message in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stderr
