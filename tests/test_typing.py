"""The public API is typed: ``mypy --strict`` passes on the installed package's annotated
modules, and on a user's script that calls them, where ``assert_type`` pins what each call
returns, so a wrong or a missing annotation fails.

The strict check covers ``STRICT_MODULES``: the layer façades, Network and its results,
History, Trace, ModelSaver and the saver's helpers, the MNIST loader, imaging, viz, explain,
the package's exports and the private modules they rest on. ``cli``, ``drawing`` and the
``bench`` subpackage are left out (they call tqdm, which has no type information, Tk and
the benchmark's untyped code); mypy still reads them, silently, where a checked module
imports them. The compiled kernels' stubs are checked by tests/test_stubs.py.

mypy does not report errors in files inside site-packages, so the installed package's
sources are copied into a package of their own first (as tests/test_stubs.py does), and a
copy with a planted error in every checked module shows that each of them is really checked.
The user's script runs against the installed package, as a user's would, and is executed
too, so that its assertions about dtypes hold at run time. Without mypy (or the typed
releases of NumPy, Pillow and matplotlib) the tests skip with the reason, except in the
project's CI (``CNN_EXT_CI=1``), where they fail.
"""
import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cnn_ext

PACKAGE_DIR = Path(cnn_ext.__file__).resolve().parent

STRICT_MODULES = [
    "cnn_ext",
    "cnn_ext._build",
    "cnn_ext._dispatch",
    "cnn_ext._safe_pickle",
    "cnn_ext._validate",
    "cnn_ext._version",
    "cnn_ext.check",
    "cnn_ext.cnn_from_scratch",
    "cnn_ext.cnn_from_scratch.conv",
    "cnn_ext.cnn_from_scratch.maxpool",
    "cnn_ext.cnn_from_scratch.softmax",
    "cnn_ext.conv",
    "cnn_ext.datasets",
    "cnn_ext.datasets.mnist",
    "cnn_ext.explain",
    "cnn_ext.history",
    "cnn_ext.imaging",
    "cnn_ext.maxpool",
    "cnn_ext.network",
    "cnn_ext.saver",
    "cnn_ext.softmax",
    "cnn_ext.trace",
    "cnn_ext.viz",
]


def _need(ok, reason):
    """Skip with ``reason`` unless ``ok``; in the project's CI, fail instead."""
    if ok:
        return
    if os.environ.get("CNN_EXT_CI"):
        pytest.fail(f"CNN_EXT_CI is set (the project's CI, whose [test] extra has what this "
                    f"test needs), but {reason}")
    print(reason)
    pytest.skip(reason)


def _typed_dependencies():
    _need(importlib.util.find_spec("mypy") is not None,
          "mypy is not installed (it is in the [test] extra): the typing checks are not run")
    import numpy as np
    import PIL

    _need(int(np.__version__.split(".")[0]) >= 2,
          f"NumPy {np.__version__} is installed: the annotations are checked against NumPy 2's type stubs")
    _need((Path(PIL.__file__).parent / "py.typed").is_file(),
          f"Pillow {PIL.__version__} ships no type information (py.typed): the imaging annotations "
          f"cannot be checked against it")
    matplotlib = importlib.util.find_spec("matplotlib")
    _need(matplotlib is not None and (Path(matplotlib.origin).parent / "py.typed").is_file(),
          "matplotlib with type information (3.8 or later, in the [test] extra) is not installed: "
          "the viz annotations cannot be checked")


def _mypy(args, cwd, cache, env=None):
    """mypy --strict on ``args``, run from ``cwd``; returns (exit status, report)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
         "--show-error-codes", "--no-error-summary", "--no-pretty", *args],
        capture_output=True, text=True, cwd=cwd, timeout=900, env=env,
    )
    return result.returncode, result.stdout + result.stderr


def _copy_package(root):
    """The installed package's Python sources, stubs and py.typed, under ``root/cnn_ext``."""
    target = root / "cnn_ext"
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and (path.suffix in (".py", ".pyi") or path.name == "py.typed") \
                and "__pycache__" not in path.parts:
            destination = target / path.relative_to(PACKAGE_DIR)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    return target


def _module_file(package, module):
    parts = module.split(".")[1:]
    path = package.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _strict_args():
    # silent: modules outside the list (cli, drawing, bench) are read for the types of
    # what the checked ones import from them, and not reported on.
    return ["--follow-imports=silent", *(a for m in STRICT_MODULES for a in ("-m", m))]


def test_the_strict_list_names_modules_of_the_package():
    for module in STRICT_MODULES:
        assert _module_file(PACKAGE_DIR.parent / "cnn_ext", module).is_file(), \
            f"{module} is in STRICT_MODULES but not in the installed package {PACKAGE_DIR}"


def test_annotated_modules_pass_mypy_strict(tmp_path):
    _typed_dependencies()
    _copy_package(tmp_path)
    status, report = _mypy(_strict_args(), tmp_path, tmp_path / "cache")
    print(report[-5000:])
    assert status == 0 and not report.strip(), f"mypy --strict on {STRICT_MODULES}:\n{report}"


def test_the_strict_check_reports_an_error_in_every_checked_module(tmp_path):
    """A planted error in each copied module is reported: nothing on the list is skipped
    or silenced, and the check would fail on a wrong annotation."""
    _typed_dependencies()
    package = _copy_package(tmp_path)
    planted = "\n_typing_probe: int = 'not an int'  # planted by tests/test_typing.py\n"
    for module in STRICT_MODULES:
        with open(_module_file(package, module), "a", encoding="utf-8") as f:
            f.write(planted)
    # And one real annotation made wrong: Conv3x3.forward claims to return an int.
    conv = package / "conv.py"
    text, count = re.subn(r"(def forward\(self, input: npt\.ArrayLike\)) -> npt\.NDArray\[np\.float64\]:",
                          r"\1 -> int:", conv.read_text(encoding="utf-8"))
    assert count == 1, "Conv3x3.forward's signature changed: update this test's planted error"
    conv.write_text(text, encoding="utf-8")
    status, report = _mypy(_strict_args(), tmp_path, tmp_path / "cache")
    print(report[-5000:])
    assert status == 1, f"mypy found no error in the planted copy:\n{report}"
    for module in STRICT_MODULES:
        name = _module_file(package, module).relative_to(tmp_path).as_posix()
        assert re.search(rf"^{re.escape(name)}:\d+: error: Incompatible types in assignment .*\[assignment\]$",
                         report, re.M), f"mypy did not report the error planted in {name}:\n{report}"
    assert re.search(r"^cnn_ext/conv\.py:\d+: error: Incompatible return value type .*\[return-value\]$",
                     report, re.M), f"mypy did not report Conv3x3.forward's wrong return type:\n{report}"


# A user's script, as one would write it: every call of the public API, with the type
# each returns pinned by assert_type (a no-op at run time) and its dtype checked when run.
USER_SCRIPT = '''
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

from cnn_ext import Conv3x3, MaxPool2, ModelSaver, Network, Softmax, build_info, viz
from cnn_ext.datasets import mnist
from cnn_ext.history import EpochRecord, History, StepRecord
from cnn_ext.imaging import digit_problem, has_digit, load_image, to_mnist
from cnn_ext.network import Evaluation
from cnn_ext.saver import ModelFileError, check_writable, load_params, model_filename, save_params
from cnn_ext.trace import Trace

(x_train, y_train), (x_test, y_test) = mnist.load_data()
assert_type(x_train, npt.NDArray[np.uint8])
assert_type(y_test, npt.NDArray[np.uint8])
assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8

# The tutorial's layers, one image forward and back.
conv = Conv3x3(8)
pool = MaxPool2()
softmax = Softmax(13 * 13 * 8, 10)
image = (x_train[0] / 255) - 0.5
out = conv.forward(image)
assert_type(out, npt.NDArray[np.float64])
pooled = pool.forward(out)
assert_type(pooled, npt.NDArray[np.float64])
probs = softmax.forward(pooled)
assert_type(probs, npt.NDArray[np.float64])
assert probs.dtype == np.float64 and probs.shape == (10,)
gradient = np.zeros(10)
gradient[int(y_train[0])] = -1 / probs[int(y_train[0])]
d_pool = softmax.backprop(gradient)
assert_type(d_pool, npt.NDArray[np.float64])
d_conv = pool.backprop(d_pool)
assert_type(d_conv, npt.NDArray[np.float64])
assert_type(conv.backprop(d_conv), None)
assert_type(conv.filters, npt.NDArray[np.float64])
assert_type(softmax.last_totals, npt.NDArray[np.float64] | None)
assert_type(conv.learn_rate, float)
regions = list(conv.iterate_regions(image))
assert_type(regions, list[tuple[npt.NDArray[np.float64], int, int]])
assert_type(conv.forward([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), npt.NDArray[np.float64])

# The whole network.
net = Network(seed=0, learn_rate=0.005)
assert_type(net.conv, Conv3x3)
loss, correct = net.train_step(x_train[0], y_train[0])
assert_type(loss, float)
assert_type(correct, int)
assert_type(net.train_step(x_train[1], 3), tuple[float, int])
assert_type(net.forward(x_train[0], 5), tuple[npt.NDArray[np.float64], float, int])
events: list[str] = []


def on_event(kind: str, record: StepRecord | EpochRecord) -> None:
    events.append(kind)


history = net.fit(x_train[:300], y_train[:300], epochs=1, log_every=100, callback=on_event,
                  validation_data=(x_test[:50], y_test[:50]))
assert_type(history, History)
assert_type(history.steps, list[StepRecord])
assert_type(history.history, dict[str, list[float]])
assert_type(history.lines, list[str])
assert len(history.steps) == 3 and "epoch" in events
proba = net.predict_proba(x_test[:20], num_threads=1)
assert_type(proba, npt.NDArray[np.float64])
assert proba.dtype == np.float64 and proba.shape == (20, 10)
predicted = net.predict(x_test[:20])
assert_type(predicted, npt.NDArray[np.int64])
assert predicted.dtype == np.int64
result = net.evaluate(x_test[:100], y_test[:100])
assert_type(result, Evaluation)
assert_type(result.loss, float)
assert_type(result.accuracy, float)
assert_type(result.confusion, npt.NDArray[np.int64])
assert_type(result.per_class_accuracy, npt.NDArray[np.float64])
assert result.confusion.dtype == np.int64 and result.per_class_accuracy.dtype == np.float64
trace = net.trace(x_train[0], int(y_train[0]))
assert_type(trace, Trace)
assert_type(trace.prediction, int)
assert_type(trace.pool_mask, npt.NDArray[np.bool_])
assert_type(trace.d_L_d_filters, npt.NDArray[np.float64] | None)
assert trace.pool_mask.dtype == np.bool_ and trace.image.dtype == np.uint8

# Saving and loading, in both formats.
saver = ModelSaver("user_model")
assert_type(saver.filename, str)
assert_type(saver.save(net.conv, net.pool, net.softmax), None)
assert_type(saver.load(conv, pool, softmax), bool)
assert_type(model_filename(Path("m")), str)
assert_type(check_writable("m.npz"), None)
assert_type(save_params("m.npz", conv.filters, softmax.weights, softmax.biases), None)
params = load_params("m.npz", expected_shapes={"conv_filters": (8, 3, 3)})
assert_type(params, dict[str, npt.NDArray[np.float64]])
try:
    load_params("user_model.pkl", expected_shapes={"conv_filters": (16, 3, 3)})
except ModelFileError as exc:
    assert_type(exc.filename, str | None)

# A user's picture: imaging, and the figures.
picture = np.zeros((60, 40), np.uint8)
picture[10:50, 18:22] = 255
digit = to_mnist(picture)
assert_type(digit, npt.NDArray[np.uint8])
assert digit.dtype == np.uint8 and digit.shape == (28, 28)
assert_type(digit_problem(digit), str | None)
assert_type(has_digit(picture.astype(np.float64) / 255), bool)
from PIL import Image
Image.fromarray(picture).save("digit.png")
assert_type(to_mnist(load_image("digit.png")), npt.NDArray[np.uint8])
assert_type(to_mnist(Path("digit.png")), npt.NDArray[np.uint8])
assert_type(viz.plot_filters(conv.filters), Figure)
assert_type(viz.plot_trace(trace), Figure)
assert_type(viz.plot_history(history), Figure)
assert_type(build_info(), dict[str, Any])
print("user script: ok")
'''


def _in_site_packages():
    """Whether cnn_ext is installed where mypy looks for a user's packages (PEP 561)."""
    roots = {Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    return PACKAGE_DIR.parent in roots


def _script_check(folder, script, cwd, installed=True):
    """mypy --strict on ``script``, written into ``folder`` and checked from ``cwd``: against
    the installed cnn_ext, or (``installed=False``) a copy in ``folder``, which mypy finds
    first there. The package's own modules are read silently, as mypy reads any installed
    package."""
    path = folder / "user_script.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    env = None
    if installed and not _in_site_packages():
        # An editable install (an import hook mypy cannot follow) or a source tree on
        # PYTHONPATH: point mypy at the package's folder instead.
        print(f"cnn_ext is not in site-packages: mypy reads it from {PACKAGE_DIR.parent}")
        env = dict(os.environ, MYPYPATH=str(PACKAGE_DIR.parent))
    return _mypy(["--follow-imports=silent", str(path)], cwd, folder / "cache", env)


def test_a_users_script_type_checks_and_runs(tmp_path):
    _typed_dependencies()
    work = tmp_path / "work"
    work.mkdir()
    # From an empty folder, mypy finds cnn_ext where the script's Python does: installed.
    status, report = _script_check(tmp_path, USER_SCRIPT, work)
    print(report[-5000:])
    assert status == 0 and not report.strip(), f"mypy --strict on a user's script:\n{report}"
    result = subprocess.run([sys.executable, str(tmp_path / "user_script.py")], capture_output=True,
                            text=True, cwd=work, timeout=600, env=dict(os.environ, MPLBACKEND="Agg"))
    assert result.returncode == 0 and "user script: ok" in result.stdout, \
        f"the user's script failed when run:\n{result.stdout}\n{result.stderr}"


def test_the_users_script_catches_a_wrong_or_missing_annotation(tmp_path):
    """With Network.predict claiming float64, or not annotated at all, the script's
    assert_type fails: it pins the annotations, it does not only parse them."""
    _typed_dependencies()
    package = _copy_package(tmp_path / "wrong")
    network = package / "network.py"
    source = network.read_text(encoding="utf-8")
    signature = "def predict(self, images: npt.ArrayLike, num_threads: int | None = None) -> npt.NDArray[np.int64]:"
    assert source.count(signature) == 1, "Network.predict's signature changed: update this test"
    cases = {"wrong": (signature.replace("np.int64]", "np.float64]"), r"Expression is of type .*float64"),
             "missing": ("def predict(self, images, num_threads=None):", r"Expression is of type \"Any\"")}
    for name, (replacement, message) in cases.items():
        network.write_text(source.replace(signature, replacement), encoding="utf-8")
        # The script beside the altered copy: mypy finds that before the installed package.
        status, report = _script_check(tmp_path / "wrong", USER_SCRIPT, tmp_path / "wrong", installed=False)
        print(name, report[-3000:])
        assert status == 1 and re.search(rf"user_script\.py:\d+: error: {message}.*\[assert-type\]", report), \
            f"with a {name} annotation of Network.predict, mypy did not fail the user's script:\n{report}"
