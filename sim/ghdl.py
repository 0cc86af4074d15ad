"""Bulk bit-exact simulation: a VHDL textio bench run by GHDL.

The bench streams input words from a text file (one per line: a whole input
vector per clock for the dataflow architecture, one pixel per line for the
streaming one) and writes every output word as a line of integers; the
comparison happens in numpy.  The streaming bench also writes the clock
edges it measures latency and initiation interval from.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlinfn_compress.errors import UserError

if TYPE_CHECKING:
    from mlinfn_compress.backends.vhdl import VhdlDesign

STD = "--std=08"


@dataclass
class SimResult:
    logits: np.ndarray  # (N, n_out) integers
    argmax: np.ndarray | None  # (N,) or None
    seconds: float  # simulation run time (analysis excluded)
    analyse_seconds: float
    timing: dict[str, int | None] | None = None  # streaming bench: measured latency and interval


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
    words: tuple[int, int] = (1, 1),
    timed: bool = False,
) -> SimResult:
    """Run the textio bench on integer ``inputs`` (N, n_in) and read the outputs back.

    ``words``: (input, output) words per sample, for a bench that takes a sample
    as several lines; outputs come back as one row per sample, and the arg-max
    as written with the sample's last word.  ``timed``: the bench writes the
    edges of its timing file (the streaming bench).
    """
    workdir = workdir.resolve()
    t0 = time.perf_counter()
    analyse([*sources, testbench], workdir)
    t1 = time.perf_counter()
    in_file = workdir / "inputs.txt"
    out_file = workdir / "outputs.txt"
    time_file = workdir / "times.txt"
    words_in, words_out = words
    x = np.asarray(inputs, dtype=np.int64)
    np.savetxt(in_file, x.reshape(len(x) * words_in, -1), fmt="%d")
    ghdl = ghdl_path()
    generics = [f"-gIN_FILE={in_file}", f"-gOUT_FILE={out_file}"] + ([f"-gTIME_FILE={time_file}"] if timed else [])
    run_tool(
        [ghdl, "-r", STD, f"--workdir={workdir}", f"{top}_tb", "--ieee-asserts=disable-at-0", *generics],
        workdir,
        "GHDL simulation",
    )
    t2 = time.perf_counter()
    cols = n_out + (1 if argmax else 0)
    text = out_file.read_text().split()
    data = np.array([int(v) for v in text], dtype=np.int64).reshape(-1, cols) if text else np.zeros((0, cols), np.int64)
    samples = len(data) // words_out
    data = data[: samples * words_out].reshape(samples, words_out, cols)
    return SimResult(
        logits=data[:, :, :n_out].reshape(samples, words_out * n_out),
        argmax=data[:, -1, n_out] if argmax else None,
        seconds=t2 - t1,
        analyse_seconds=t1 - t0,
        timing=_measured(time_file) if timed else None,
    )


def simulate_design(design: VhdlDesign, inputs: np.ndarray, workdir: Path) -> SimResult:
    """``simulate`` with the interface facts of a rendered design."""
    return simulate(
        design.files,
        design.testbench,
        design.top,
        inputs,
        design.n_out,
        design.argmax,
        workdir,
        words=(design.in_words, design.out_words),
        timed=design.architecture == "stream",
    )


def _measured(path: Path) -> dict[str, int | None]:
    """Latency of the first sample and the interval between the last two, from the bench's edges."""
    edges = [int(v) for v in path.read_text().split()] if path.exists() else []
    if len(edges) < 2:
        return {"latency_cycles": None, "initiation_interval": None, "samples": 0}
    first, last = edges[0], edges[1:]
    return {
        "latency_cycles": last[0] - first,
        "initiation_interval": last[-1] - last[-2] if len(last) > 1 else None,
        "samples": len(last),
    }
