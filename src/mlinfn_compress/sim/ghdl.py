"""Bulk bit-exact simulation: a VHDL textio bench run by GHDL.

The bench streams input words from a text file (one per line: a whole input
vector per clock for the dataflow architecture, one pixel per line for the
streaming one) and writes every output word as a line of integers; the
comparison happens in numpy.  The streaming bench also writes the clock
edges it measures latency and initiation interval from.  Values wider than
VHDL integers (more than 31 bits) travel as two's complement bit strings.

GHDL comes with up to three backends, each its own program: ``ghdl-mcode``
(analyses and runs in one step), ``ghdl-llvm`` and ``ghdl-gcc`` (compile the
design to a native program: ``-e`` elaborates it, then it runs).  Debian's
``ghdl`` is a wrapper that runs whichever one it finds first, so the
backend is chosen here from what is installed and called by its own program.
The LLVM backend runs the bench about three times faster than mcode, but
compiling takes seconds where mcode takes a tenth of one: it is used when
installed and a run simulates at least ``LLVM_MIN_SAMPLES`` samples, and
whenever it is the only backend.  ``MLINFN_GHDL_BACKEND=mcode``, ``llvm`` or
``gcc`` chooses one for every run.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlinfn_compress.errors import ToolFailed, ToolMissing, UserError
from mlinfn_compress.sim import tools

if TYPE_CHECKING:
    from mlinfn_compress.backends.vhdl import VhdlDesign

STD = "--std=08"
BACKENDS = ("mcode", "llvm", "gcc")
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
    version: str = "GHDL"  # the first line of the backend's --version


@dataclass(frozen=True)
class Backend:
    """One installed GHDL backend and the program that runs it."""

    name: str  # mcode, llvm or gcc
    program: str

    @property
    def elaborates(self) -> bool:
        """Whether a design must be elaborated (``-e``) into a program before it runs."""
        return self.name != "mcode"

    def version(self) -> str:
        """``GHDL 2.0.0 (...)``: the first line of its ``--version``."""
        return tools.run([self.program, "--version"], Path.cwd(), "ghdl --version").splitlines()[0].strip()


def backend_of(program: str) -> str | None:
    """The backend a ``ghdl`` program runs, from its ``--version`` (None when it runs none)."""
    try:
        text = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in text.splitlines():
        low = line.lower()
        for name, word in (("mcode", "mcode"), ("llvm", "llvm"), ("gcc", "gcc")):
            if word in low and "code generator" in low:
                return name
    return None


def installed_backends() -> dict[str, Backend]:
    """The GHDL backends on PATH, by their own programs (``ghdl-mcode``, ``ghdl-llvm``, ``ghdl-gcc``); where
    there is none of those, the one a plain ``ghdl`` runs."""
    found = {name: Backend(name, path) for name in BACKENDS if (path := shutil.which(f"ghdl-{name}"))}
    if not found and (ghdl := shutil.which("ghdl")) and (name := backend_of(ghdl)):
        found[name] = Backend(name, ghdl)
    return found


def require_backends() -> dict[str, Backend]:
    """The installed backends, or ToolMissing when there is none."""
    found = installed_backends()
    if not found:
        raise ToolMissing(
            "GHDL is not installed with any backend (none of ghdl-mcode, ghdl-llvm, ghdl-gcc is on PATH); every "
            f"VHDL simulation needs one: install the Debian package 'ghdl-mcode' ({tools.SETUP})"
        )
    return found


def sim_backend(samples: int = 0) -> Backend:
    """The backend for simulating ``samples`` inputs: an elaborating one (llvm, else gcc) when installed and
    there are enough samples to pay for its compilation, else mcode; whichever is installed when there is
    one only."""
    want = os.environ.get("MLINFN_GHDL_BACKEND", "")
    if want and want not in BACKENDS:
        raise UserError(f"MLINFN_GHDL_BACKEND must be one of {', '.join(BACKENDS)}, got {want!r}")
    found = require_backends()
    if want:
        if want not in found:
            raise ToolMissing(
                f"MLINFN_GHDL_BACKEND={want}, but ghdl-{want} is not installed (installed: {', '.join(found)}): "
                f"install the Debian package 'ghdl-{want}' or leave MLINFN_GHDL_BACKEND unset"
            )
        return found[want]
    compiled = [found[n] for n in ("llvm", "gcc") if n in found]
    if compiled and (samples >= LLVM_MIN_SAMPLES or "mcode" not in found):
        return compiled[0]
    return found["mcode"]


@contextlib.contextmanager
def as_ghdl(backend: Backend) -> Iterator[None]:
    """Within the block, ``ghdl`` on PATH runs ``backend`` (for programs such as cocotb's runner that call
    ``ghdl`` by name)."""
    with tempfile.TemporaryDirectory(prefix="mlinfn-ghdl-") as tmp:
        shim = Path(tmp) / "ghdl"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(backend.program)} "$@"\n')
        shim.chmod(0o755)
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{tmp}{os.pathsep}{saved}"
        try:
            yield
        finally:
            os.environ["PATH"] = saved


def run_tool(cmd: list[str], cwd: Path, what: str) -> str:
    """Run a program; its standard output, or ToolFailed naming it (``tools.run``)."""
    return tools.run(cmd, cwd, what)


def analyse(sources: list[Path], workdir: Path, backend: Backend | None = None) -> None:
    """Analyse VHDL sources (in order) into ``workdir``."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ghdl = (backend or sim_backend()).program
    run_tool([ghdl, "-a", STD, f"--workdir={workdir}", *[str(s.resolve()) for s in sources]], workdir, "GHDL analysis")


def synth_verilog(sources: list[Path], top: str, workdir: Path) -> str:
    """``ghdl --synth --out=verilog`` of ``top`` (every backend synthesises alike): the Verilog text."""
    backend = sim_backend()
    analyse(sources, workdir, backend)
    cmd = [backend.program, "--synth", STD, f"--workdir={workdir.resolve()}", "--out=verilog", top]
    return run_tool(cmd, workdir, "ghdl --synth")


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
    backend = sim_backend(len(inputs))
    ghdl = backend.program
    t0 = time.perf_counter()
    analyse([*sources, testbench], workdir, backend)
    run_args = ["--ieee-asserts=disable-at-0"]
    if backend.elaborates:
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
    except ToolFailed as e:
        lines = [ln for ln in e.output.splitlines() if any(k in ln for k in RANGE_ERRORS)]
        if not lines:
            raise
        raise DesignStopped(f"the simulation stopped: {lines[0].split('error: ', 1)[-1].strip()}") from e
    t2 = time.perf_counter()
    cols = n_out + (1 if argmax else 0)
    text = out_file.read_text().split()
    values = [_value(v, w_out if k % cols < n_out else INT_BITS, out_signed) for k, v in enumerate(text)]
    dtype = object if w_out > 62 else np.int64
    rows = np.array(values, dtype=dtype).reshape(-1, cols) if values else np.zeros((0, cols), dtype)
    samples = len(rows) // words_out
    data = rows[: samples * words_out].reshape(samples, words_out, cols)
    return SimResult(
        logits=data[:, :, :n_out].reshape(samples, words_out * n_out),
        argmax=data[:, -1, n_out].astype(np.int64) if argmax else None,
        seconds=t2 - t1,
        analyse_seconds=t1 - t0,
        timing=_measured(time_file) if timed else None,
        backend=backend.name,
        version=backend.version(),
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
        timed=design.interface.handshake,  # the handshake bench measures latency and interval
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
