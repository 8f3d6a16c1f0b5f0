"""The example notebooks (examples/*.ipynb) run top to bottom against the installed cnn_ext.

Each notebook is executed with nbclient in a Jupyter kernel of this interpreter, in a
temporary working directory; any cell that raises fails the test. The executed copies are
kept for the session, so tests/test_docs.py renders them without running them again.

Needs the ``docs`` extra (nbclient, nbformat, ipykernel, matplotlib): without it the tests
skip with that reason, except in the project's CI (``CNN_EXT_CI=1``), where they fail.
"""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
NOTEBOOK_MODULES = ("nbclient", "nbformat", "ipykernel", "ipywidgets", "anywidget", "matplotlib")
CELL_TIMEOUT = 600  # seconds for one cell; the notebooks take well under a minute each


def require(modules, what):
    """Skip (fail under CNN_EXT_CI=1) unless every module in ``modules`` is importable."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        reason = (f"{what} needs {', '.join(missing)}, from the docs extra: "
                  "pip install \".[docs]\"")
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail(f"the project's CI must install the docs extra; {reason}")
        pytest.skip(reason)


def kernel_dir(base):
    """A Jupyter path whose ``python3`` kernel is this interpreter (not whatever other
    ``python3`` kernel a user or system Jupyter has registered)."""
    spec = base / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (cnn_ext tests)", "language": "python"}))
    return base


def executed_notebook(path, out_dir):
    """Execute the notebook ``path``, write the executed copy to ``out_dir`` and return
    its path; a copy executed earlier in this session is returned as it is."""
    import nbformat
    from nbclient import NotebookClient

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    if target.exists():
        return target
    jupyter = kernel_dir(out_dir.parent / "jupyter")
    work = out_dir.parent / f"cwd-{path.stem}"
    work.mkdir(exist_ok=True)
    notebook = nbformat.read(path, as_version=4)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(jupyter)] + ([old] if old else []))
    try:
        NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                       resources={"metadata": {"path": str(work)}}).execute()
    finally:
        if old is None:
            del os.environ["JUPYTER_PATH"]
        else:
            os.environ["JUPYTER_PATH"] = old
    nbformat.write(notebook, target.with_suffix(".tmp"))
    target.with_suffix(".tmp").replace(target)
    return target


def executed_dir(tmp_path_factory):
    """Where the session keeps executed notebooks (shared with tests/test_docs.py)."""
    return tmp_path_factory.getbasetemp() / "notebooks" / "executed"


def test_examples_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_tutorial.ipynb", "02_ties.ipynb", "03_speed.ipynb", "04_draw.ipynb",
                     "05_exercises.ipynb"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    # Outputs are made fresh by the docs build and by the test below, never committed.
    notebook = json.loads(path.read_text(encoding="utf-8"))
    stale = [i for i, cell in enumerate(notebook["cells"])
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))]
    assert not stale, f"{path.name}: cells {stale} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path_factory):
    require(NOTEBOOK_MODULES, "running the example notebooks")
    import nbformat

    executed = nbformat.read(executed_notebook(path, executed_dir(tmp_path_factory)), as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), "not every code cell ran"
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Every notebook draws at least one figure, and it reached the output.
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the outputs"
