"""Bulk bit-exact simulation: a VHDL textio bench run by GHDL.

The bench streams one input vector per clock from a text file and writes
every valid output as a line of integers; the comparison happens in numpy.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlinfn_compress.errors import UserError

STD = "--std=08"


@dataclass
class SimResult:
    logits: np.ndarray  # (N, n_out) integers
    argmax: np.ndarray | None  # (N,) or None
    seconds: float  # simulation run time (analysis excluded)
    analyse_seconds: float


def ghdl_path() -> str:
    path = shutil.which("ghdl")
    if path is None:
        raise UserError("GHDL is not installed (Debian package 'ghdl'); the README's set-up command installs it")
    return path


def run_tool(cmd: list[str], cwd: Path, what: str) -> str:
    """Run a command; its standard output, or a RuntimeError with everything it printed."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def analyse(sources: list[Path], workdir: Path) -> None:
    """Analyse VHDL sources (in order) into ``workdir``."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ghdl = ghdl_path()
    run_tool([ghdl, "-a", STD, f"--workdir={workdir}", *[str(s.resolve()) for s in sources]], workdir, "GHDL analysis")


def simulate(
    sources: list[Path],
    testbench: Path,
    top: str,
    inputs: np.ndarray,
    n_out: int,
    argmax: bool,
    workdir: Path,
) -> SimResult:
    """Run the textio bench on integer ``inputs`` (N, n_in) and read the outputs back."""
    workdir = workdir.resolve()
    t0 = time.perf_counter()
    analyse([*sources, testbench], workdir)
    t1 = time.perf_counter()
    in_file = workdir / "inputs.txt"
    out_file = workdir / "outputs.txt"
    np.savetxt(in_file, np.asarray(inputs, dtype=np.int64), fmt="%d")
    ghdl = ghdl_path()
    run_tool(
        [
            ghdl,
            "-r",
            STD,
            f"--workdir={workdir}",
            f"{top}_tb",
            "--ieee-asserts=disable-at-0",
            f"-gIN_FILE={in_file}",
            f"-gOUT_FILE={out_file}",
        ],
        workdir,
        "GHDL simulation",
    )
    t2 = time.perf_counter()
    cols = n_out + (1 if argmax else 0)
    text = out_file.read_text().split()
    data = np.array([int(v) for v in text], dtype=np.int64).reshape(-1, cols) if text else np.zeros((0, cols), np.int64)
    return SimResult(
        logits=data[:, :n_out],
        argmax=data[:, n_out] if argmax else None,
        seconds=t2 - t1,
        analyse_seconds=t1 - t0,
    )
