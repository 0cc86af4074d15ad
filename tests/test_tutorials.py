"""The notebooks in examples/tutorials: each paired with its jupytext twin, in sync, committed without outputs,
and listed in the README.  ``./dev.sh test`` executes them (nbmake, offline); these checks are the fast part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "examples" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
SCRIPTS = sorted(TUTORIALS.glob("*.py"))


def test_every_notebook_has_its_twin() -> None:
    assert NOTEBOOKS, f"no notebooks in {TUTORIALS}"
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in SCRIPTS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync(notebook: Path) -> None:
    """The percent-format text jupytext writes from the notebook is the committed .py, line for line."""
    import jupytext

    text = jupytext.writes(jupytext.read(notebook), fmt="py:percent")
    assert text == notebook.with_suffix(".py").read_text(), (
        f"{notebook.name} and {notebook.stem}.py differ: run `.venv/bin/jupytext --sync {notebook}` "
        "after editing either"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{notebook.name}: cells {dirty} carry outputs; clear them before committing"


def test_readme_lists_every_tutorial() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if f"examples/tutorials/{p.name}" not in readme]
    assert not missing, f"README.md does not list {missing}"


def test_out_of_sync_pair_is_caught(tmp_path: Path) -> None:
    """An edit to one side of a pair alone shows as a difference."""
    import jupytext

    notebook = NOTEBOOKS[0]
    nb = jupytext.read(notebook)
    nb.cells[1].source += "\nprint('edited in the notebook only')"
    text = jupytext.writes(nb, fmt="py:percent")
    assert text != notebook.with_suffix(".py").read_text()
    assert "edited in the notebook only" in text


def test_dev_sh_test_runs_the_notebooks_offline() -> None:
    """``./dev.sh test`` (no arguments) hands the tutorials to nbmake with MLINFN_OFFLINE=1; the lock pins
    what it and ``./dev.sh notebook`` need."""
    dev = (ROOT / "dev.sh").read_text()
    body = dev[dev.index("\n  test)") : dev.index("\n  notebook)")]
    assert "set -- tests examples/tutorials --nbmake" in body and "MLINFN_OFFLINE=1 exec" in body
    pinned = {ln.split("==")[0].lower() for ln in (ROOT / "requirements.lock").read_text().splitlines() if "==" in ln}
    assert {"nbmake", "jupytext", "jupyterlab", "ipykernel"} <= pinned


@pytest.mark.slow
def test_nbmake_collects_every_notebook() -> None:
    """The plugin is installed and finds each notebook as one test item (nothing is executed here)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", "--nbmake", str(TUTORIALS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for notebook in NOTEBOOKS:
        assert f"{notebook.name}::{notebook.name}" in done.stdout, done.stdout
