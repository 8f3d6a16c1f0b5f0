"""Nothing lost, nothing hangs: foreign models, FIFOs, huge pictures, output paths, overlapping
kernel outputs, non-finite pictures, permission errors and import circles (issue 19)."""
import ast
import errno
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import cnn_ext
from cnn_ext import ModelSaver, Network, Softmax, Conv3x3, MaxPool2
from cnn_ext import _kernels
from cnn_ext.imaging import digit_problem, load_image, to_mnist
from cnn_ext.saver import ModelFileError, ModelWriteError, _write_error

try:
    from cnn_ext import _kernels_avx2
except ImportError:  # not built on this platform
    _kernels_avx2 = None
try:
    from cnn_ext import _kernels_avx512
except ImportError:  # not built on this platform
    _kernels_avx512 = None


def cli(*args, cwd, timeout=120, preexec_fn=None):
    return subprocess.run([sys.executable, "-m", "cnn_ext", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONIOENCODING="utf-8"),
                          preexec_fn=preexec_fn)


def one_line_error(run):
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


# ------------------------------------------------------------------ 2: fewer classes than MNIST

@pytest.fixture
def seven_class(tmp_path):
    np.random.seed(0)
    conv, softmax = Conv3x3(8), Softmax(13 * 13 * 8, 7)
    ModelSaver(str(tmp_path / "MNIST_CNN")).save(conv, MaxPool2(), softmax)
    return tmp_path


def test_train_describes_a_seven_class_model_and_replaces_it(seven_class):
    run = cli("train", "--epochs", "1", "--train-size", "500", "--test-size", "100", "--quiet", cwd=seven_class)
    assert run.returncode == 0, run.stderr
    assert "MNIST_CNN.pkl exists (a 7-class model, not comparable on MNIST's 10 classes)" in run.stdout


@pytest.mark.parametrize("args", [("evaluate",), ("train", "--resume", "--train-size", "500", "--quiet")])
def test_evaluate_and_resume_refuse_a_seven_class_model_in_one_line(seven_class, args):
    run = cli(*args, cwd=seven_class)
    assert run.returncode == 2
    line = one_line_error(run)
    assert "7-class model (labels 0..6), but MNIST has labels 0..9" in line, line


# ------------------------------------------------------------------ 3: FIFOs never block

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX only")
def test_predict_load_image_and_to_mnist_refuse_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    # In a subprocess with a timeout: opening a FIFO for reading blocked until a writer came.
    code = textwrap.dedent("""
        import sys
        from cnn_ext.imaging import load_image, to_mnist
        for call in (load_image, to_mnist):
            try:
                call(sys.argv[1])
            except ValueError as exc:
                print(exc)
    """)
    run = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=20)
    assert run.stdout.splitlines() == [f"{fifo}: is a FIFO (named pipe), not an image file (a regular file)"] * 2, \
        run.stderr
    assert cli("train", "--epochs", "1", "--train-size", "300", "--test-size", "100", "--quiet",
               cwd=tmp_path).returncode == 0
    run = cli("predict", "digit.png", cwd=tmp_path, timeout=30)  # blocked forever before
    assert run.returncode == 1
    assert one_line_error(run) == ("digit.png: error: digit.png: is a FIFO (named pipe), not an image "
                                   "file (a regular file)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX only")
def test_mnist_loader_reads_through_the_same_helper(tmp_path):
    os.mkfifo(tmp_path / "mnist.npz")
    os.mkfifo(tmp_path / "train-images-idx3-ubyte.gz")
    # In a subprocess with a timeout: opening a FIFO for reading blocked until a writer came.
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from cnn_ext.datasets import mnist
        for call, name in ((mnist._load_npz, "mnist.npz"), (mnist._open, "train-images-idx3-ubyte.gz")):
            try:
                call(Path(sys.argv[1]) / name)
            except ValueError as exc:
                print(exc)
    """)
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=20)
    assert run.stdout.splitlines() == [
        f"{tmp_path / 'mnist.npz'}: is a FIFO (named pipe), not an MNIST file (a regular file)",
        f"{tmp_path / 'train-images-idx3-ubyte.gz'}: is a FIFO (named pipe), not an MNIST file (a regular file)"], \
        run.stderr


# ------------------------------------------------------------------ 4: huge pictures

def _bar_picture(path, side):
    picture = Image.new("1", (side, side), 1)
    ImageDraw.Draw(picture).rectangle([side * 46 // 100, side // 7, side * 52 // 100, side * 6 // 7], fill=0)
    picture.save(path)


def _limit_memory(megabytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))
    return apply


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="RLIMIT_AS is not available here")
def test_a_small_png_of_169_megapixels_is_refused_in_one_line_under_a_memory_limit(tmp_path):
    _bar_picture(tmp_path / "bar.png", 13000)
    assert (tmp_path / "bar.png").stat().st_size < 100_000
    assert cli("train", "--epochs", "1", "--train-size", "300", "--test-size", "100", "--quiet",
               cwd=tmp_path).returncode == 0
    run = cli("predict", "bar.png", cwd=tmp_path, timeout=20, preexec_fn=_limit_memory(1500))
    assert run.returncode == 1
    assert "is too large to be a digit's picture" in one_line_error(run)


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="RLIMIT_AS is not available here")
def test_large_pictures_are_reduced_first_so_memory_is_bounded_by_the_output(tmp_path):
    """81 megapixels (under Pillow's limit) at one bit: a "1" read in bounded memory and time."""
    _bar_picture(tmp_path / "one.png", 9000)
    code = textwrap.dedent("""
        import sys, time
        from cnn_ext.imaging import digit_problem, to_mnist
        start = time.perf_counter()
        image = to_mnist(sys.argv[1])
        print(digit_problem(image), int(image.max()), round(time.perf_counter() - start, 1))
    """)
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "one.png")], capture_output=True, text=True,
                         timeout=60, preexec_fn=_limit_memory(1000))
    assert run.returncode == 0, run.stderr
    problem, peak, seconds = run.stdout.split()
    assert problem == "None" and peak == "255" and float(seconds) < 10


# ------------------------------------------------------------------ 6: outputs checked first

@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("plot, why", [("no/dir/c.png", "does not exist"), ("c.xyz", "must end in"),
                                       (".", "is a folder")])
def test_plot_paths_are_checked_before_any_work(tmp_path, command, plot, why):
    if command == "evaluate":
        assert cli("train", "--epochs", "1", "--train-size", "300", "--test-size", "100", "--quiet",
                   cwd=tmp_path).returncode == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    run = cli(command, "--plot", plot, "--test-size", "100", *(("--train-size", "300") if command == "train" else ()),
              cwd=tmp_path)
    assert run.returncode == 2
    line = one_line_error(run)
    assert line.startswith(f"cnn-ext {command}: error: --plot: ") and why in line, line
    assert "test accuracy" not in run.stdout  # nothing was trained or evaluated
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("args, why", [(("--json", "no/dir/b.json"), "does not exist"),
                                       (("--plot", "no/dir/b.png"), "does not exist"),
                                       (("--scaling", "no/dir/s.png"), "does not exist"),
                                       (("--seed", "-1"), "expected an integer")])
def test_bench_checks_its_arguments_before_the_benchmark(tmp_path, args, why):
    run = cli("bench", "--quick", "--no-frameworks", *args, cwd=tmp_path, timeout=60)
    assert run.returncode == 2
    line = run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr and line.startswith("cnn-ext bench: error: ") and why in line, run.stderr
    assert run.stdout == ""  # no benchmark ran


# ------------------------------------------------------------------ 7: kernel outputs apart

BUILDS = [pytest.param(_kernels, id="baseline"),
          pytest.param(_kernels_avx2, id="avx2", marks=pytest.mark.skipif(
              _kernels_avx2 is None, reason="the AVX2 build is not built on this platform")),
          pytest.param(_kernels_avx512, id="avx512", marks=pytest.mark.skipif(
              _kernels_avx512 is None, reason="the AVX-512 build is not built on this platform"))]


@pytest.mark.parametrize("k", BUILDS)
def test_kernel_outputs_overlapping_inputs_are_refused(k):
    if k is _kernels_avx2 and not _kernels.cpu_has_avx2_fma():
        pytest.skip("this CPU has no AVX2/FMA: the AVX2 build cannot run here")
    if k is _kernels_avx512 and not _kernels.cpu_has_avx512():
        pytest.skip("this CPU has no AVX-512 (F, VL, DQ): the AVX-512 build cannot run here")
    x, w, b = np.array([1.0, 2.0]), np.ones((2, 3)), np.array([4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="totals must not share memory with biases"):
        k.softmax_forward(x, w, b, totals=b)
    assert b.tolist() == [4.0, 5.0, 6.0]
    totals, probs = k.softmax_forward(x, w, b)
    assert totals.tolist() == [7.0, 8.0, 9.0]
    with pytest.raises(ValueError, match="d_L_d_input must not share memory with x"):
        k.softmax_backprop(x, w, b, totals, np.array([0.0, -2.0, 0.0]), 0.1, d_L_d_input=x)
    assert x.tolist() == [1.0, 2.0]
    big = np.zeros(6)
    with pytest.raises(ValueError, match="weights must not share memory with biases"):
        k.softmax_backprop(x, big[:6].reshape(2, 3), big[3:], totals, np.zeros(3), 0.1)
    image = np.random.default_rng(0).random((6, 6))
    with pytest.raises(ValueError, match="out must not share memory with image"):
        k.conv3x3_forward(image, np.ones((1, 3, 3)), out=image.reshape(-1)[:16].reshape(4, 4, 1))
    with pytest.raises(ValueError, match="filters must not share memory with image"):
        k.conv3x3_backprop(image, np.ones((4, 4, 1)), image.reshape(-1)[:9].reshape(1, 3, 3), 0.1)
    maps = np.random.default_rng(1).random((4, 4, 2))
    with pytest.raises(ValueError, match="out must not share memory with x"):
        k.maxpool2_forward(maps, out=maps.reshape(-1)[:8].reshape(2, 2, 2))
    with pytest.raises(ValueError, match="d_L_d_input must not share memory with d_L_d_out"):
        grad = np.zeros((4, 4, 2))
        k.maxpool2_backprop(maps, grad.reshape(-1)[:8].reshape(2, 2, 2), d_L_d_input=grad)
    net = Network(seed=0)
    filters, weights, biases = net.conv.filters, net.softmax.weights, net.softmax.biases
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="weights must not share memory with losses"):
        k.train_steps(images, np.zeros(2, np.int64), np.arange(2, dtype=np.int64), filters, weights, biases,
                      0.005, weights.reshape(-1)[:2], np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="out must not share memory with weights"):
        k.predict_proba(images, filters, weights, biases, weights.reshape(-1)[:20].reshape(2, 10))
    with pytest.raises(ValueError, match="filters must not share memory with weights"):
        k.TrainState(weights.reshape(-1)[:72].reshape(8, 3, 3), weights, biases, 0.005, 28, 28)


# ------------------------------------------------------------------ 8: non-finite "F" pictures

def test_an_infinite_pixel_in_a_float_picture_is_refused_as_in_an_array():
    ink = np.zeros((60, 60), np.float32)
    ink[10:50, 28:32] = 1.0
    assert digit_problem(to_mnist(Image.fromarray(ink, "F"))) is None  # a "1"
    ink[0, 0] = np.inf
    for picture in (Image.fromarray(ink, "F"), ink):
        with pytest.raises(ValueError, match="must be finite"):
            to_mnist(picture)


# ------------------------------------------------------------------ 9: PermissionError

@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_a_permission_cause_makes_model_write_error_a_permission_error(tmp_path, code):
    exc = _write_error(str(tmp_path / "m.pkl"), str(tmp_path), PermissionError(code, "denied"))
    assert isinstance(exc, PermissionError) and isinstance(exc, ModelWriteError)
    assert isinstance(exc, ModelFileError) and isinstance(exc, ValueError) and exc.errno == code
    other = _write_error(str(tmp_path / "m.pkl"), str(tmp_path), OSError(errno.ENOSPC, "full"))
    assert isinstance(other, ModelWriteError) and not isinstance(other, PermissionError)


def test_a_read_only_model_file_raises_permission_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only files: the permission case cannot happen here "
                    "(the errno mapping is tested above)")
    net = Network(seed=0)
    saver = ModelSaver(str(tmp_path / "m"))
    saver.save(net.conv, net.pool, net.softmax)
    os.chmod(tmp_path / "m.pkl", 0o444)
    with pytest.raises(PermissionError, match="read-only"):
        saver.save(net.conv, net.pool, net.softmax)


# ------------------------------------------------------------------ 10: no import circles

def _imports(module_file):
    """The cnn_ext modules ``module_file`` imports at run time (anywhere in it, lazily or
    not; imports for type checkers only, under ``if TYPE_CHECKING:``, are no circle)."""
    tree = ast.parse(Path(module_file).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.add(node.module or "")
            if node.module is None:
                names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("low, high", [("explain", "cli"), ("trace", "network")])
def test_no_import_circle(low, high):
    package = Path(cnn_ext.__file__).parent
    assert high not in _imports(package / f"{low}.py")
    assert low in _imports(package / f"{high}.py")  # the other direction stays
