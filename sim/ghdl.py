"""Bulk bit-exact simulation: a VHDL textio bench run by GHDL.

The bench streams input words from a text file (one per line: a whole input
vector per clock for the dataflow architecture, one pixel per line for the
streaming one) and writes every output word as a line of integers; the
comparison happens in numpy.  The streaming bench also writes the clock
edges it measures latency and initiation interval from.  Values wider than
VHDL integers (more than 31 bits) travel as two's complement bit strings.

GHDL's LLVM backend (Debian package ``ghdl-llvm``) compiles the bench to a
native program that runs about twice as fast as the default mcode backend,
but compiling takes seconds where mcode takes a tenth of one: it is used when
installed and a run simulates at least ``LLVM_MIN_SAMPLES`` samples.
``MLINFN_GHDL_BACKEND=mcode`` or ``llvm`` chooses one for every run.
"""

from __future__ import annotations

import os
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
BACKENDS = ("llvm", "mcode")
INT_BITS = 31  # wider port values are written as bit strings
# Where the LLVM backend's compile time (about 4 s for the jet tagger, against 0.1 s) is paid back
# by its speed (about 14,000 samples/s against 7,500 on mcode): BENCHMARKS.md.
LLVM_MIN_SAMPLES = 50_000


class DesignStopped(RuntimeError):
    """The design stopped its own simulation: a value left the range its VHDL type declares (a
    wrong design, as a mismatch is, not a failure of the tools)."""


RANGE_ERRORS = ("bound check failure", "overflow detected")


@dataclass
class SimResult:
    logits: np.ndarray  # (N, n_out) integers (Python ints in an object array when wider than 62 bits)
    argmax: np.ndarray | None  # (N,) or None
    seconds: float  # simulation run time (analysis excluded)
    analyse_seconds: float  # analysis and, for the LLVM backend, elaboration
    timing: dict[str, int | None] | None = None  # streaming bench: measured latency and interval
    backend: str = "mcode"
    error: str | None = None  # why the design stopped the simulation (then there are no outputs)


def ghdl_path() -> str:
    path = shutil.which("ghdl")
    if path is None:
        raise UserError("GHDL is not installed (Debian package 'ghdl'); the README's set-up command installs it")
    return path


def sim_backend(samples: int = 0) -> tuple[str, str]:
    """(backend name, GHDL program) for simulating ``samples`` inputs: llvm when installed and
    there are enough samples to pay for its compilation, else mcode."""
    want = os.environ.get("MLINFN_GHDL_BACKEND", "")
    if want and want not in BACKENDS:
        raise UserError(f"MLINFN_GHDL_BACKEND must be one of {', '.join(BACKENDS)}, got {want!r}")
    llvm = shutil.which("ghdl-llvm")
    if llvm is not None and (want == "llvm" or (not want and samples >= LLVM_MIN_SAMPLES)):
        return "llvm", llvm
    if want == "llvm":
        raise UserError("MLINFN_GHDL_BACKEND=llvm, but ghdl-llvm is not installed (Debian package 'ghdl-llvm')")
    mcode = shutil.which("ghdl-mcode")
    return "mcode", mcode if mcode is not None else ghdl_path()


def run_tool(cmd: list[str], cwd: Path, what: str) -> str:
    """Run a command; its standard output, or a RuntimeError with everything it printed."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def analyse(sources: list[Path], workdir: Path, ghdl: str | None = None) -> None:
    """Analyse VHDL sources (in order) into ``workdir``."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ghdl = ghdl or ghdl_path()
    run_tool([ghdl, "-a", STD, f"--workdir={workdir}", *[str(s.resolve()) for s in sources]], workdir, "GHDL analysis")


def write_rows(path: Path, rows: np.ndarray, width: int) -> None:
    """Integer rows as text: decimal, or ``width``-bit two's complement strings when wider than integers."""
    rows = np.asarray(rows)
    if width <= INT_BITS:
        np.savetxt(path, rows.astype(np.int64), fmt="%d")
        return
    mask = (1 << width) - 1
    lines = (" ".join(format(int(v) & mask, f"0{width}b") for v in row) for row in rows.reshape(len(rows), -1))
    path.write_text("".join(line + "\n" for line in lines))


def _value(text: str, width: int, signed: bool) -> int:
    if width <= INT_BITS:
        return int(text)
    v = int(text, 2)
    return v - (1 << width) if signed and v >> (width - 1) else v


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
    *,
    w_in: int = INT_BITS,
    w_out: int = INT_BITS,
    out_signed: bool = True,
) -> SimResult:
    """Run the textio bench on integer ``inputs`` (N, n_in) and read the outputs back.

    ``words``: (input, output) words per sample, for a bench that takes a sample
    as several lines; outputs come back as one row per sample, and the arg-max
    as written with the sample's last word.  ``timed``: the bench writes the
    edges of its timing file (the streaming bench).  ``w_in``, ``w_out`` and
    ``out_signed`` describe the design's ports; they matter only for values
    wider than VHDL integers.
    """
    workdir = workdir.resolve()
    backend, ghdl = sim_backend(len(inputs))
    t0 = time.perf_counter()
    analyse([*sources, testbench], workdir, ghdl)
    run_args = ["--ieee-asserts=disable-at-0"]
    if backend == "llvm":
        exe = workdir / f"{top}_tb.exe"
        run_tool([ghdl, "-e", STD, f"--workdir={workdir}", "-o", str(exe), f"{top}_tb"], workdir, "GHDL elaboration")
        cmd = [str(exe)]
    else:
        cmd = [ghdl, "-r", STD, f"--workdir={workdir}", f"{top}_tb"]
    t1 = time.perf_counter()
    in_file = workdir / "inputs.txt"
    out_file = workdir / "outputs.txt"
    time_file = workdir / "times.txt"
    words_in, words_out = words
    x = np.asarray(inputs)
    write_rows(in_file, x.reshape(len(x) * words_in, -1), w_in)
    generics = [f"-gIN_FILE={in_file}", f"-gOUT_FILE={out_file}"] + ([f"-gTIME_FILE={time_file}"] if timed else [])
    try:
        run_tool([*cmd, *run_args, *generics], workdir, "GHDL simulation")
    except RuntimeError as e:
        lines = [ln for ln in str(e).splitlines() if any(k in ln for k in RANGE_ERRORS)]
        if not lines:
            raise
        raise DesignStopped(f"the simulation stopped: {lines[0].split('error: ', 1)[-1].strip()}") from e
    t2 = time.perf_counter()
    cols = n_out + (1 if argmax else 0)
    text = out_file.read_text().split()
    values = [_value(v, w_out if k % cols < n_out else INT_BITS, out_signed) for k, v in enumerate(text)]
    dtype = object if w_out > 62 else np.int64
    data = np.array(values, dtype=dtype).reshape(-1, cols) if values else np.zeros((0, cols), dtype)
    samples = len(data) // words_out
    data = data[: samples * words_out].reshape(samples, words_out, cols)
    return SimResult(
        logits=data[:, :, :n_out].reshape(samples, words_out * n_out),
        argmax=data[:, -1, n_out].astype(np.int64) if argmax else None,
        seconds=t2 - t1,
        analyse_seconds=t1 - t0,
        timing=_measured(time_file) if timed else None,
        backend=backend,
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
        timed=design.architecture != "dataflow",
        w_in=design.w_in,
        w_out=design.w_out,
        out_signed=design.out_signed,
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
