"""examples/05_exercises.ipynb: handed out as it is, every check cell says "not implemented
yet" without an error; with the solutions (kept in tests/check_learners.py, never in the
notebook) every check says "all right"; with each classic bug planted, the check cell after
it names the bug.

The handed-out and solved notebooks run in a Jupyter kernel (as tests/test_notebooks.py runs
every example). The planted-bug variants, one per bug, run the same cells in this process
with ``exec``: thirteen kernels would add minutes and test nothing more about the checker.
"""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "examples" / "05_exercises.ipynb"


def _load(name, filename):
    spec = importlib.util.spec_from_file_location(name, HERE / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebooks = _load("_cnn_ext_test_notebooks", "test_notebooks.py")
learners = _load("_cnn_ext_check_learners", "check_learners.py")


def cells():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def exercise_of(cell):
    return cell.get("metadata", {}).get("exercise")


def check_cells(notebook_cells):
    """{exercise: the check cell after it}."""
    found, current = {}, None
    for cell in notebook_cells:
        if exercise_of(cell):
            current = exercise_of(cell)
        elif cell["cell_type"] == "code" and cell["id"].startswith("check-"):
            found[current] = cell
    return found


def test_the_notebook_ships_without_solutions():
    exercises = [c for c in cells() if exercise_of(c)]
    assert sorted(exercise_of(c) for c in exercises) == sorted(learners.NOTEBOOK_SOLUTIONS)
    for cell in exercises:
        assert "raise NotImplementedError" in "".join(cell["source"]), exercise_of(cell)
    assert set(check_cells(cells())) == set(learners.NOTEBOOK_SOLUTIONS)


def _outputs_text(cell):
    return "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")


def test_as_handed_out_every_check_says_not_implemented_yet(tmp_path_factory):
    notebooks.require(notebooks.NOTEBOOK_MODULES, "running the exercise notebook")
    import nbformat

    path = notebooks.executed_notebook(NOTEBOOK, notebooks.executed_dir(tmp_path_factory))
    executed = nbformat.read(path, as_version=4)
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]
    for exercise, cell in check_cells(executed.cells).items():
        text = _outputs_text(cell)
        assert "not implemented yet" in text and text.rstrip().endswith("not right yet"), (exercise, text)
        assert "Traceback" not in text


def test_with_the_solutions_every_check_is_all_right(tmp_path):
    notebooks.require(notebooks.NOTEBOOK_MODULES, "running the exercise notebook")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if exercise_of(cell):
            cell.source = learners.notebook_solution(exercise_of(cell))
    solved = tmp_path / "source" / "05_exercises.ipynb"
    solved.parent.mkdir()
    nbformat.write(notebook, solved)
    executed = nbformat.read(notebooks.executed_notebook(solved, tmp_path / "executed"), as_version=4)
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]
    for exercise, cell in check_cells(executed.cells).items():
        text = _outputs_text(cell)
        assert text.rstrip().endswith("all right"), (exercise, text)


def _run_in_process(bug, until):
    """Execute the notebook's code cells, solutions filled in and ``bug`` planted, up to the
    check cell of exercise ``until``; returns that cell's printed text."""
    pytest.importorskip("matplotlib", reason="the notebook draws the tie rule with matplotlib")
    namespace = {"__name__": "exercises"}
    current = None
    for cell in cells():
        if cell["cell_type"] != "code":
            continue
        # (IPython's magics, such as %matplotlib inline, are not Python: left out here)
        source = "".join(line for line in cell["source"] if not line.startswith("%"))
        if exercise_of(cell):
            current = exercise_of(cell)
            source = learners.notebook_solution(current, bug)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, cell["id"], "exec"), namespace)
        if cell["id"].startswith("check-") and current == until:
            return out.getvalue()
    raise AssertionError(f"no check cell for {until}")


@pytest.mark.parametrize("bug", sorted(learners.NOTEBOOK_BUGS))
def test_each_classic_bug_planted_in_the_notebook_is_named(bug):
    _, _, _, where, words = learners.NOTEBOOK_BUGS[bug]
    text = _run_in_process(bug, where)
    assert words in text, text
    if bug == "softmax_overflow":
        # The tutorial's own forward does not shift the totals: a note, not a failure.
        assert text.rstrip().endswith("all right"), text
    else:
        assert "likely cause" in text or "diverges at step" in text, text
        assert text.rstrip().endswith("not right yet"), text
