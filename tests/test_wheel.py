"""The package as a user installs it: a wheel holds every module and template, and runs from where it is unpacked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import report

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ("*.py", "*.j2", "*.json")  # what a package folder holds that the tool reads at run time
BUILD_LEFTOVERS = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "out", "*_out", ".*_cache")


def source_files() -> set[str]:
    """Every module and template of the source tree, as its path inside the wheel."""
    src = ROOT / "src"
    return {
        path.relative_to(src).as_posix()
        for pattern in PACKAGE_FILES
        for path in (src / "mlinfn_compress").rglob(pattern)
        if "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source tree (a build folder left in the checkout could fill gaps)."""
    tree = tmp_path_factory.mktemp("tree") / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(tree)],
        check=True,
        capture_output=True,
        cwd=dist,
    )
    (built,) = dist.glob("mlinfn_compress-*.whl")
    return built


def test_the_wheel_holds_every_module_and_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = source_files()
    # the check covers the subpackages a hand-kept list once dropped, and the templates
    assert "mlinfn_compress/compress/frameworks/keras/translate.py" in expected
    assert "mlinfn_compress/compress/frameworks/torch/trace.py" in expected
    assert "mlinfn_compress/backends/vhdl/templates/top.vhd.j2" in expected
    assert "mlinfn_compress/compress/flow/templates/report.html.j2" in expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {len(missing)} files of the source tree: {missing[:20]}"


def _run_unpacked(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site), MLINFN_LOG_DIR=str(cwd / "logs"))
    code = "import sys; from mlinfn_compress.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_the_unpacked_wheel_runs_help_and_verifies_a_model(
    wheel: Path, tmp_path: Path, small_mlp: Callable[[str, float], Path]
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run(
        [sys.executable, "-c", "import mlinfn_compress; print(mlinfn_compress.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(site), f"imported from {where}, not from the unpacked wheel"
    helped = _run_unpacked(site, tmp_path, "--help")
    assert helped.returncode == 0 and "usage: mlinfn-compress" in helped.stdout
    model = small_mlp("wheel_mlp", 0.3)
    out = tmp_path / "out"
    run = _run_unpacked(site, tmp_path, str(model), "-o", str(out), "--simulate", "64", "-q")
    assert run.returncode == 0, run.stderr
    assert "BIT-EXACT" in run.stdout
    rep = report(out)
    assert rep["verification"]["bit_exact"] and rep["verification"]["samples"] == 64
    assert (out / "report.html").exists() and (out / "vhdl" / "wheel_mlp.vhd").exists()
