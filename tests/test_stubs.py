"""Every compiled module of the installed cnn_ext ships a ``.pyi`` stub beside it (package
data), and the stub names exactly the module's public API, with the right parameters.

The compiled modules are found on disk (extension-module files in the installed
package), so the test follows the build's layout. A variant built for an instruction set
this CPU lacks (``*_avx2``, ``*_avx512``, ``*_neon``) is never imported: its stub is checked against the portable
module's API, which it shares. If mypy is installed, ``mypy.stubtest`` and
``mypy --strict`` run on the stubs too.
"""
import ast
import importlib
import importlib.machinery
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cnn_ext

PACKAGE_DIR = Path(cnn_ext.__file__).resolve().parent
# Longest first: '.cpython-311-x86_64-linux-gnu.so' before '.so'.
SUFFIXES = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
# Attributes Cython adds to every module (its doctest registry); not API.
CYTHON_ARTIFACTS = {"__test__"}


def compiled_modules():
    """``{module name: extension file}`` for the installed package tree."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*")):
        suffix = next((s for s in SUFFIXES if path.name.endswith(s)), None)
        if suffix and path.is_file():
            parts = path.relative_to(PACKAGE_DIR.parent).parts
            found[".".join(parts[:-1] + (path.name[: -len(suffix)],))] = path
    return found


MODULES = compiled_modules()


def stub_path(name):
    extension = MODULES[name]
    stub = extension.with_name(name.rsplit(".", 1)[1] + ".pyi")
    if not stub.is_file():
        pytest.fail(f"no type stub for the compiled module {name}: expected {stub.name} next to "
                    f"{extension} (stubs are package data: check setup.py's package_data and "
                    f"that the .pyi exists in the source tree)")
    return stub


def stub_api(path):
    """(public names, private names, {function: ast.arguments}) defined by a stub."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names, functions = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            functions[node.name] = node.args
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and [a.name for a in node.names] == ["*"]:
            # "from .m import *" re-exports m's public names (a variant's stub names its base's API).
            public, _, base_functions = stub_api(path.with_name(node.module + ".pyi"))
            names |= public
            functions.update((f, a) for f, a in base_functions.items() if f in public)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            # Only "import x as x" / "from m import x as x" re-export in a stub.
            names.update(a.asname for a in node.names if a.asname and a.asname == a.name.split(".")[-1])
    public = {n for n in names if not n.startswith("_")}
    return public, names - public, functions


def runtime_module(name):
    """The module to compare with: itself, or for an ISA variant this CPU cannot run,
    the portable module it is built from."""
    for suffix, check in (("_avx2", "cpu_has_avx2_fma"), ("_avx512", "cpu_has_avx512"),
                          ("_neon", "cpu_has_neon")):
        if name.endswith(suffix):
            baseline = importlib.import_module(name[: -len(suffix)])
            if not getattr(baseline, check, lambda: False)():
                return baseline
    return importlib.import_module(name)


def test_the_package_has_compiled_modules():
    assert MODULES, f"no compiled extension modules found under {PACKAGE_DIR}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_stub_lists_exactly_the_public_api(name):
    stub = stub_path(name)
    module = runtime_module(name)
    public, private, functions = stub_api(stub)
    runtime = {n for n in vars(module) if not n.startswith("_")}
    missing, extra = runtime - public, public - runtime
    assert not missing, f"{stub.name} lacks public name(s) of {name}: {sorted(missing)}"
    assert not extra, f"{stub.name} declares name(s) that {name} does not have: {sorted(extra)}"
    stale = {n for n in private if not n.startswith("__") and not hasattr(module, n)}
    assert not stale, f"{stub.name} declares private name(s) that {name} does not have: {sorted(stale)}"
    for fname, args in functions.items():
        if not hasattr(module, fname):
            continue
        signature = inspect.signature(getattr(module, fname))
        runtime_params = [(p.name, p.default is not inspect.Parameter.empty)
                          for p in signature.parameters.values()]
        positional = args.posonlyargs + args.args
        defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
        stub_params = [(a.arg, d) for a, d in zip(positional, defaults)]
        stub_params += [(a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
        assert stub_params == runtime_params, (
            f"{stub.name}: {fname} has parameters {stub_params} (name, has default), "
            f"{name}.{fname} has {runtime_params}")
        for a in positional + args.kwonlyargs:
            assert a.annotation is not None, f"{stub.name}: {fname}({a.arg}) is not annotated"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_stub_belongs_to_a_module(name):
    # The reverse direction for the files: no stale stubs of removed compiled modules.
    stubs = {p.stem for p in MODULES[name].parent.glob("*.pyi")}
    modules = {p.stem for p in MODULES[name].parent.glob("*.py")}
    modules |= {n.rsplit(".", 1)[1] for n, p in MODULES.items() if p.parent == MODULES[name].parent}
    assert stubs <= modules, f"stubs without a module in {MODULES[name].parent}: {sorted(stubs - modules)}"


def child_env():
    """Environment for a child interpreter that must import this same cnn_ext (installed,
    or a source tree on a possibly relative PYTHONPATH) from another working directory."""
    paths = [str(PACKAGE_DIR.parent)]
    paths += [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def _mypy_or_skip():
    try:
        import mypy  # noqa: F401
    except ImportError:
        reason = "mypy is not installed: stubtest and mypy --strict on the stubs not run"
        print(reason)
        pytest.skip(reason)


def test_stubtest(tmp_path):
    _mypy_or_skip()
    names = [n for n in sorted(MODULES) if runtime_module(n).__name__ == n]
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("".join(f"{n}.{a}\n" for n in names for a in sorted(CYTHON_ARTIFACTS)))
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--allowlist", str(allowlist), *names],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env=child_env(),
    )
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, f"stubtest found differences:\n{result.stdout}\n{result.stderr}"


def test_stubs_pass_mypy_strict(tmp_path):
    _mypy_or_skip()
    # Check copies in a package of their own: run on files inside site-packages, mypy
    # would take that whole folder for user code (and complain about other packages).
    package = tmp_path / "cnn_ext"
    package.mkdir()
    (package / "__init__.pyi").write_text("")
    for name in sorted(MODULES):
        shutil.copy(stub_path(name), package / stub_path(name).name)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "-p", "cnn_ext"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env=child_env(),
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, f"mypy --strict on the stubs:\n{result.stdout}\n{result.stderr}"
