"""The external programs the tool runs, and one way to run them.

Each program is a :class:`Tool`: the name users know it by, the command, the
Debian (or PyPI) package that installs it and the feature that needs it.
``run`` starts a program and turns any failure into a :class:`ToolFailed`
that names the tool, the command, the program's own first error line and
what to do, with everything the program printed kept in a log file;
``find`` turns a missing program into a :class:`ToolMissing` that names the
package.  ``mlinfn-compress doctor`` lists the same table.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlinfn_compress.errors import ToolFailed, ToolMissing

SETUP = "the README's set-up command (./dev.sh setup) installs it"
ERROR_WORDS = ("error", "failed", "fatal", "cannot", "not found", "does not exist", "please")


@dataclass(frozen=True)
class Tool:
    name: str  # as users know it
    program: str  # the command on PATH
    package: str  # the Debian package that installs it
    needed_for: str  # the feature that needs it

    def advice(self) -> str:
        return f"install the Debian package '{self.package}' ({SETUP})"


TOOLS = {
    t.program: t
    for t in (
        Tool("GHDL (mcode backend)", "ghdl-mcode", "ghdl-mcode", "every VHDL simulation (the default backend)"),
        Tool("GHDL (LLVM backend)", "ghdl-llvm", "ghdl-llvm", "long VHDL simulations (about 3x faster)"),
        Tool("GHDL (GCC backend)", "ghdl-gcc", "ghdl-gcc", "VHDL simulation (any one backend suffices)"),
        Tool("GHDL", "ghdl", "ghdl", "VHDL simulation, cocotb, --synth's netlist"),
        Tool("yosys", "yosys", "yosys", "--synth: resources and place-and-route"),
        Tool("Icarus Verilog", "iverilog", "iverilog", "--synth: the netlist check"),
        Tool("Icarus Verilog runtime", "vvp", "iverilog", "--synth: the netlist check"),
        Tool("nextpnr-ice40", "nextpnr-ice40", "nextpnr-ice40", "--synth: place-and-route on iCE40"),
        Tool("g++", "g++", "g++", "--target hls/both: the C simulation"),
        Tool("Chromium", "chromium", "chromium", "checking report.html in the tests"),
    )
}


def find(program: str) -> str:
    """The path of ``program``, or ToolMissing naming its package and the feature that needs it."""
    path = shutil.which(program)
    if path is None:
        tool = TOOLS.get(program, Tool(program, program, program, "this run"))
        raise ToolMissing(f"{tool.name} ('{program}') is not installed; {tool.needed_for} needs it: {tool.advice()}")
    return path


def first_error_line(text: str) -> str:
    """The line of a program's output that says what went wrong: the first that reads like an error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if any(word in line.lower() for word in ERROR_WORDS):
            return line[:300]
    return lines[-1][:300] if lines else "(it printed nothing)"


def log_dir() -> Path:
    """Where logs of failed tools and internal errors go: $MLINFN_LOG_DIR, else the user's cache folder."""
    env = os.environ.get("MLINFN_LOG_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlinfn-compress" / "logs"


def keep_log(stem: str, text: str) -> Path:
    """Write ``text`` to a new log file named after ``stem``; its path."""
    folder = log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}.log"
    path.write_text(text)
    return path


def failure(what: str, cmd: list[str], code: int | str, output: str, hint: str = "") -> ToolFailed:
    """The ToolFailed of a program that ran and failed: its own first error line, the log with all it printed."""
    log = keep_log(Path(cmd[0]).name, f"command: {shlex.join(cmd)}\nexit: {code}\n\n{output}")
    program = TOOLS.get(Path(cmd[0]).name)
    advice = hint or (
        f"if {program.name} is broken, reinstall the Debian package '{program.package}' ({SETUP}); "
        "`mlinfn-compress doctor` shows what is installed"
        if program is not None
        else "`mlinfn-compress doctor` shows what is installed"
    )
    return ToolFailed(
        f"{what} failed: `{_short(cmd)}` exited with {code}: {first_error_line(output)} "
        f"(all it printed: {log}); {advice}",
        output=output,
    )


def run(cmd: list[str], cwd: Path, what: str, timeout: float | None = None) -> str:
    """Run a program; its standard output, or ToolFailed (ToolMissing when it is not installed)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        find(Path(cmd[0]).name)  # names the package
        raise
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        raise failure(what, cmd, f"no result after {timeout} s", out) from e
    if proc.returncode != 0:
        raise failure(what, cmd, proc.returncode, proc.stdout + proc.stderr)
    return proc.stdout


def _short(cmd: list[str], limit: int = 240) -> str:
    text = shlex.join(cmd)
    return text if len(text) <= limit else text[: limit - 4] + " ..."
