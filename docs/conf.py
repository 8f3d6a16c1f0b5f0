"""Sphinx configuration of cnn_ext's documentation.

Build it with ``pip install ".[docs]"`` and ``sphinx-build -W -b html docs docs/_build/html``.
The API reference is read from the *installed* cnn_ext's docstrings; the example notebooks
(``examples/*.ipynb``, kept in git without outputs) are copied to ``docs/notebooks/`` and
executed during the build by myst-nb, so their outputs are always fresh. The figures of the
tie-rule page are drawn by ``cnn_ext.viz`` during the build (into ``docs/_generated/``),
and the benchmark table is read from ``docs/bench.json``.

``CNN_EXT_DOCS_NOTEBOOKS=DIR`` takes the notebooks from DIR instead and does not execute them
(the test suite passes the notebooks it has just executed, so they do not run twice).
"""
import json
import os
import shutil
from pathlib import Path

import cnn_ext

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples"

project = "cnn_ext"
author = "cnn_ext contributors"
copyright = "cnn_ext contributors, MIT license"
release = cnn_ext.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".ipynb": "myst-nb", ".md": "myst-nb"}
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
html_theme = "furo" if __import__("importlib").util.find_spec("furo") else "alabaster"
html_title = f"cnn_ext {release}"
html_static_path = []

# autodoc: the installed package, members in source order, no private names.
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": False}
# The docstrings state shapes and dtypes; the annotations are for type checkers (in the
# pages, NumPy's ArrayLike would unfold into a union of seven types).
autodoc_typehints = "none"
add_module_names = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# myst-nb: execute every notebook at build time (fail on any error), unless the caller
# gives already executed ones.
_given = os.environ.get("CNN_EXT_DOCS_NOTEBOOKS")
nb_execution_mode = "off" if _given else "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]


def _copy_notebooks():
    """examples/*.ipynb (or the given executed ones) -> docs/notebooks/, the pages' sources."""
    source = Path(_given) if _given else EXAMPLES
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise RuntimeError(f"no notebooks found in {source}")
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for old in target.glob("*.ipynb"):
        if not (source / old.name).exists():
            old.unlink()
    for notebook in notebooks:
        destination = target / notebook.name
        if not destination.exists() or destination.read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, destination)


def _bench_table():
    """docs/bench.json -> docs/_generated/bench_table.rst, a list-table of every measured row."""
    from cnn_ext.bench import format_error, format_ratio, format_time

    result = json.loads((DOCS / "bench.json").read_text())
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - what", "     - implementation", "     - median per image",
             "     - vs the tutorial's loops", "     - vs vectorised NumPy", "     - rel. error"]
    for row in result["rows"]:
        cells = [f"{row['section']}: {row['case']}", row["implementation"], format_time(row["median_s"]),
                 format_ratio(row.get("speedup_vs_loops")), format_ratio(row.get("speedup_vs_numpy")),
                 format_error(row.get("rel_error"))]
        cells = ["\\-" if c == "-" else str(c).replace("*", r"\*") for c in cells]
        lines.append("   * - " + cells[0])
        lines.extend("     - " + c for c in cells[1:])
    machine, info = result["machine"], result["build_info"]
    header = (f"Measured {result['date'][:10]} on {machine.get('cpu_model') or machine['machine']} "
              f"({machine['logical_cpus']} logical CPUs), Python {machine['python']}, "
              f"NumPy {result['versions']['numpy']}, kernels ``{info['kernels']}`` "
              f"(``{info['cflags']}``).")
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    text = header + "\n\n" + "\n".join(lines) + "\n"
    path = out / "bench_table.rst"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _tie_figures():
    """The tie-rule page's figures, drawn by cnn_ext.viz from a traced MNIST digit."""
    from cnn_ext import Network, viz
    from cnn_ext.datasets import mnist

    (x_train, y_train), _ = mnist.load_data()
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    net = Network(seed=0)
    image, label = x_train[0], int(y_train[0])
    viz.plot_tie_rule(net.trace(image, label)).savefig(out / "tie_rule.png", dpi=100)
    net.fit(x_train, y_train, epochs=1, seed=0)  # about a second
    viz.plot_trace(net.trace(image, label)).savefig(out / "tie_trace.png", dpi=90)


_copy_notebooks()
_bench_table()
_tie_figures()
