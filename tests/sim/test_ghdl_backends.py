"""Whichever GHDL backend a machine has, every program the tool runs works.

A machine without ``ghdl-mcode`` (or without ``ghdl-llvm``) is simulated by
running the command with PATH set to one folder of links to every program on
the normal PATH except the missing backend: Debian's ``ghdl`` wrapper looks
for its backends beside itself, so it sees the same machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import path_without, report

from mlinfn_compress.sim import ghdl

BACKENDS = [p for p in ("ghdl-mcode", "ghdl-llvm") if shutil.which(p)]
pytestmark = pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both ghdl-mcode and ghdl-llvm to simulate either")


MODELS = """
import sys, torch, torch.nn as nn
torch.manual_seed(0)
mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
conv = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(24, 2)).eval()
torch.save(mlp, sys.argv[1] + "/mlp.pt")
torch.save(conv, sys.argv[1] + "/conv.pt")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backend_models")
    subprocess.run([sys.executable, "-c", MODELS, str(folder)], check=True)
    return folder


def run_on(path: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=path, MLINFN_LOG_DIR=str(tmp / "logs"))
    env.pop("GHDL_BACKEND", None)
    env.pop("MLINFN_GHDL_BACKEND", None)
    code = "import sys; from mlinfn_compress.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args, "-q"], env=env, capture_output=True, text=True)


CASES = {
    "dataflow, --synth": ("mlp.pt", ["--synth"]),
    "stream": ("conv.pt", ["--input-shape", "2,8", "--io", "stream"]),
    "bondmachine": ("mlp.pt", ["--arch", "bondmachine", "--reuse", "3"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["ghdl-mcode", "ghdl-llvm"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_design_verifies_on_a_machine_with_one_backend(
    missing: str, case: str, models: Path, tmp_path: Path
) -> None:
    model, options = CASES[case]
    left = "llvm" if missing == "ghdl-mcode" else "mcode"
    path = path_without(missing, tmp_path / "bin")
    out = tmp_path / "out"
    done = run_on(path, tmp_path, str(models / model), "-o", str(out), "--simulate", "200", *options)
    assert done.returncode == 0, done.stderr
    assert "BIT-EXACT" in done.stdout
    ver = report(out)["verification"]
    assert f"{left} backend: VHDL textio bench" in ver["simulator"]
    assert ver["protocol"]["backend"] == left and ver["protocol"]["failed"] == 0 and ver["protocol"]["tests"] > 0
    if "--synth" in options:
        assert ver["netlist"]["bit_exact"] and ver["netlist"]["samples"] >= 200


def test_the_wrapper_alone_without_its_backend_named_runs_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``ghdl`` that is not Debian's wrapper (no ghdl-* beside it): its backend is read from --version."""
    shim = tmp_path / "bin" / "ghdl"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shutil.which("ghdl-llvm")} "$@"\n')
    shim.chmod(0o755)
    rest = path_without("ghdl-mcode", tmp_path / "rest")
    (Path(rest) / "ghdl-llvm").unlink()
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{rest}")
    found = ghdl.installed_backends()
    assert list(found) == ["llvm"] and found["llvm"].program == str(shim)
    assert ghdl.sim_backend(10).elaborates


def test_backends_are_chosen_from_what_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLINFN_GHDL_BACKEND", raising=False)
    monkeypatch.setenv("PATH", path_without("ghdl-llvm", tmp_path / "a"))
    assert set(ghdl.installed_backends()) == {"mcode"}
    assert ghdl.sim_backend(10**6).name == "mcode"
    monkeypatch.setenv("PATH", path_without("ghdl-mcode", tmp_path / "b"))
    assert set(ghdl.installed_backends()) == {"llvm"}
    assert ghdl.sim_backend(1).name == "llvm"
    monkeypatch.setenv("MLINFN_GHDL_BACKEND", "mcode")
    with pytest.raises(ghdl.ToolMissing, match=r"MLINFN_GHDL_BACKEND=mcode, but ghdl-mcode is not installed"):
        ghdl.sim_backend(1)


def test_no_backend_at_all_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = path_without("ghdl-mcode", tmp_path / "c")
    (Path(path) / "ghdl-llvm").unlink()
    monkeypatch.setenv("PATH", path)
    with pytest.raises(ghdl.ToolMissing, match=r"install the Debian package 'ghdl-mcode'"):
        ghdl.require_backends()
