"""The documentation builds with Sphinx, warnings as errors, and has its key pages.

The build is the one a user runs (``sphinx-build -W -b html docs docs/_build/html``), on
a copy of ``docs/`` and ``examples/`` in a temporary folder. To keep the suite short it
renders the notebooks that tests/test_notebooks.py executes (executing them here first if
that test has not run yet), instead of executing them a second time: ``docs/conf.py``
takes executed notebooks from ``CNN_EXT_DOCS_NOTEBOOKS``.

Needs the ``docs`` extra: without it the test skips with that reason, except in the
project's CI (``CNN_EXT_CI=1``), where it fails.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS_MODULES = ("sphinx", "myst_nb", "matplotlib")


def _notebook_helpers():
    spec = importlib.util.spec_from_file_location("_cnn_ext_test_notebooks", Path(__file__).with_name("test_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebooks = _notebook_helpers()


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    notebooks.require(DOCS_MODULES + notebooks.NOTEBOOK_MODULES, "building the documentation")
    executed = notebooks.executed_dir(tmp_path_factory)
    for path in notebooks.NOTEBOOKS:
        notebooks.executed_notebook(path, executed)
    root = tmp_path_factory.mktemp("docs-build")
    ignore = shutil.ignore_patterns("_build", "notebooks", "_generated", ".ipynb_checkpoints")
    shutil.copytree(REPO / "docs", root / "docs", ignore=ignore)
    shutil.copytree(REPO / "examples", root / "examples", ignore=ignore)
    out = root / "html"
    env = dict(os.environ, CNN_EXT_DOCS_NOTEBOOKS=str(executed), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                             str(root / "docs"), str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"sphinx-build -W failed:\n{result.stdout}\n{result.stderr}"
    return out


def page(html, name):
    path = html / name
    assert path.is_file(), f"{name} was not built"
    return " ".join(path.read_text(encoding="utf-8").split())  # the source's line breaks survive in HTML


def test_api_reference(html):
    text = page(html, "api.html")
    for name in ("cnn_ext.Conv3x3", "cnn_ext.MaxPool2", "cnn_ext.Softmax", "cnn_ext.Network",
                 "cnn_ext.ModelSaver", "cnn_ext.build_info", "cnn_ext.datasets.mnist.load_data",
                 "cnn_ext.imaging.to_mnist", "cnn_ext.saver.load_params", "cnn_ext.Network.trace",
                 "cnn_ext.trace.Trace", "cnn_ext.history.History", "cnn_ext.viz.plot_filters",
                 "cnn_ext.viz.plot_trace", "cnn_ext.check.check", "cnn_ext.check.CheckResult"):
        assert f'id="{name}"' in text, f"{name} is not documented in api.html"
    # Docstrings were read (not just the signatures): a phrase from Network's.
    assert "one image at a time" in text


def test_tie_rule_page_has_its_figure(html):
    text = page(html, "ties.html")
    assert "every tied maximum" in text or "every position equal" in text
    figures = [src for src in re.findall(r'<img[^>]+src="([^"]+)"', text) if "plot_directive" in src or "_images" in src]
    assert figures, "ties.html shows no figure drawn at build time"
    for src in figures:
        path = (html / src).resolve()
        assert path.is_file() and path.stat().st_size > 10_000, f"{src} is missing or nearly empty"


@pytest.mark.parametrize("name", ["01_tutorial", "02_ties", "03_speed", "04_draw", "05_exercises"])
def test_notebook_pages_have_outputs(html, name):
    text = page(html, f"notebooks/{name}.html")
    assert "cell_output" in text, f"{name}.html has no cell outputs"
    pictures = re.findall(r'<img[^>]+src="([^"]+)"', text)
    assert pictures, f"{name}.html shows no figure"
    for src in pictures:
        if not src.startswith("data:"):
            assert (html / "notebooks" / src).resolve().is_file(), f"{name}.html: {src} missing"
    assert "Traceback" not in text


def test_benchmark_page(html):
    text = page(html, "benchmark.html")
    assert "vectorised NumPy" in text and "tutorial loops" in text
    assert text.count("<tr") > 10, "the benchmark table is missing"
    assert (html / "_images" / "bench.png").is_file()


def test_index_links_every_page(html):
    text = page(html, "index.html")
    for target in ("install.html", "api.html", "ties.html", "benchmark.html",
                   "notebooks/01_tutorial.html", "notebooks/02_ties.html", "notebooks/03_speed.html",
                   "notebooks/04_draw.html", "notebooks/05_exercises.html", "cli.html"):
        assert f'href="{target}' in text, f"index.html does not link {target}"
