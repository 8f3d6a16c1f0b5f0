"""What an install tells its user: the installed metadata (licences, keywords, Pythons),
a build log free of setuptools warnings, and the message when no C compiler works.

The build-log test reads the log of the wheel that is installed, named by
``CNN_EXT_BUILD_LOG`` (``.ci/run`` sets it); the compiler test runs setup.py from a copy
of the checkout and needs the build requirements (setuptools, Cython, NumPy) importable.
Without them these tests skip with that reason, except in the project's CI
(``CNN_EXT_CI=1``), where they fail.
"""
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LICENCE_FILES = {"LICENSE", "LICENSES/CC-BY-SA-3.0-MNIST.txt"}
PYTHONS = ("3.11", "3.12", "3.13", "3.14", "3.15")


def build_requirements():
    """True when setup.py can run here: the declared minimum setuptools, Cython, NumPy."""
    if not all(importlib.util.find_spec(m) for m in ("setuptools", "Cython", "numpy", "wheel")):
        return False
    major, minor = (int(x) for x in importlib.metadata.version("setuptools").split(".")[:2])
    return (major, minor) >= (77, 0)


def need(condition, reason):
    if not condition:
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail(f"the project's CI must provide this: {reason}")
        pytest.skip(reason)


def installed():
    """The distribution of the cnn_ext that is imported (not a ``cnn_ext.egg-info`` that an
    in-tree build may have left in the checkout, which the current directory would find)."""
    import cnn_ext

    site = Path(cnn_ext.__file__).resolve().parents[1]
    found = list(importlib.metadata.distributions(name="cnn_ext", path=[str(site)]))
    assert len(found) == 1, f"{len(found)} cnn_ext distributions in {site}"
    return found[0]


def test_installed_metadata_has_both_licences():
    dist = installed()
    meta = dist.metadata
    assert meta["License-Expression"] == "MIT AND CC-BY-SA-3.0"
    assert set(meta.get_all("License-File") or []) == LICENCE_FILES
    for name in LICENCE_FILES:
        text = dist.read_text(f"licenses/{name}")
        assert text, f"licence file {name} is listed but not installed"
    assert "Creative Commons Legal Code" in dist.read_text("licenses/LICENSES/CC-BY-SA-3.0-MNIST.txt")
    assert "LeCun" in dist.read_text("licenses/LICENSES/CC-BY-SA-3.0-MNIST.txt")
    assert dist.read_text("licenses/LICENSE").startswith("MIT License")


def test_installed_metadata_keywords_pythons_and_pillow_floor():
    meta = installed().metadata
    keywords = meta["Keywords"].split(",")
    assert {"mnist", "cnn", "cython", "education"} <= set(keywords)
    assert meta["Requires-Python"] == ">=3.11"
    versions = {c.rsplit(" :: ", 1)[1] for c in meta.get_all("Classifier")
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert versions == set(PYTHONS)
    pillow = [r for r in meta.get_all("Requires-Dist") if r.lower().startswith("pillow")]
    assert pillow == ["Pillow>=13.0.0"]


# Warnings that say something about the build machine, not about cnn_ext's packaging.
HARMLESS = ("byte-compiling is disabled",)  # PYTHONDONTWRITEBYTECODE is set


def setuptools_warnings(log):
    """The setuptools/distutils warnings in a ``pip wheel -v`` log: ``warning:`` lines,
    ``...Warning:`` lines and the ``!!`` banners of setuptools' own warnings (e.g.
    "Package would be ignored")."""
    found = []
    for line in log.splitlines():
        text = line.strip()
        if any(h in text for h in HARMLESS):
            continue
        if (text.startswith("warning:") or re.search(r"\b\w*Warning: ", text)
                or "Package would be ignored" in text or text == "!!"):
            found.append(text)
    return found


def test_warning_finder_finds_what_setuptools_prints():
    log = ("  running build_py\n"
           "  /x/setuptools/command/build_py.py:212: _Warning: Package 'cnn_ext.kernels' is absent from the `packages` configuration.\n"
           "  !!\n"
           "  warning: no previously-included files matching '*.so' found anywhere in distribution\n"
           "  warning: build_py: byte-compiling is disabled, skipping.\n"
           "  copying src/cnn_ext/conv.py -> build/lib\n")
    assert len(setuptools_warnings(log)) == 3


def test_build_log_has_no_setuptools_warnings():
    path = os.environ.get("CNN_EXT_BUILD_LOG")
    need(path and Path(path).is_file(),
         "CNN_EXT_BUILD_LOG names no file: set it to the output of `pip wheel -v` for this build")
    log = Path(path).read_text(encoding="utf-8", errors="replace")
    assert "running build_ext" in log, f"{path} is not the log of a wheel build"
    assert setuptools_warnings(log) == []


def checkout_copy(tmp_path):
    """The files setup.py reads, copied (the test must not write into the checkout)."""
    root = tmp_path / "src-copy"
    root.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(REPO / name, root / name)
    for name in ("src", "python", "LICENSES"):
        shutil.copytree(REPO / name, root / name,
                        ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*.egg-info"))
    return root


@pytest.mark.parametrize("command", ["bdist_wheel", "build_ext"])
def test_missing_compiler_is_the_first_line(tmp_path, command):
    need(build_requirements(), "setup.py needs setuptools >= 77, Cython, NumPy and wheel: "
                               "pip install Cython \"setuptools>=77.0.1\" wheel")
    root = checkout_copy(tmp_path)
    missing = str(tmp_path / "no-such-cc")
    env = {**os.environ, "CC": missing}
    run = subprocess.run([sys.executable, "setup.py", "-q", command], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert lines, "setup.py printed nothing"
    first = lines[0]
    assert first.startswith("cnn_ext: no working C compiler"), first
    assert missing in first and "(from CC)" in first
    assert "No such file or directory" in first
    text = "\n".join(lines)
    fix = {"linux": "build-essential", "darwin": "xcode-select --install",
           "win32": "Visual Studio Build Tools"}.get(sys.platform, "C compiler")
    assert fix in text
    # neither the CPU-feature probes nor Cython ran: no misleading "AVX2"/"OpenMP" lines
    assert "AVX2" not in text and "OpenMP" not in text and len(lines) <= 4, text


def test_missing_compiler_through_pip(tmp_path):
    """What a user sees: pip's "output" block starts with the cause and its fix."""
    need(build_requirements(), "the build needs setuptools >= 77, Cython, NumPy and wheel: "
                               "pip install Cython \"setuptools>=77.0.1\" wheel")
    root = checkout_copy(tmp_path)
    missing = str(tmp_path / "no-such-cc")
    env = {**os.environ, "CC": missing}
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                          "-w", str(tmp_path / "out"), str(root)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    out = run.stdout + run.stderr
    block = out.split("lines of output]", 1)
    assert len(block) == 2, out[-2000:]
    body = [line.strip() for line in block[1].splitlines() if line.strip()]
    assert body[0].startswith("cnn_ext: no working C compiler"), out[-2000:]
    assert "AVX2" not in out and "has no OpenMP" not in out


def test_adding_an_extra_does_not_rebuild():
    """README: once cnn_ext is installed, ``pip install "cnn_ext[plot]"`` only adds
    matplotlib. pip must find cnn_ext satisfied; with no index it could build nothing."""
    need(importlib.util.find_spec("matplotlib"), "matplotlib is not installed (the test extra has it)")
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                          "--disable-pip-version-check", "cnn_ext[plot]"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"Requirement already satisfied: cnn_ext\[plot\]", run.stdout), run.stdout
    assert "Would install" not in run.stdout and "Building" not in run.stdout, run.stdout
