"""A run's options, every rule they must follow, and the targets they name.

The command line and the Python API both build ``RunOptions`` and call
``check`` once; ``targets`` turns the target, architecture and io names into
``Target`` objects (the only place such names are compared).  Numeric
options have one range each (``RANGES``), shared with the argument parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlinfn_compress.backends.vhdl.architecture import ARCH_CHOICES, IO_CHOICES
from mlinfn_compress.errors import UserError

if TYPE_CHECKING:
    from mlinfn_compress.backends.base import Target
    from mlinfn_compress.backends.vhdl.design import ArithOptions
    from mlinfn_compress.compress.flow.compression import CompressOptions
    from mlinfn_compress.compress.ir import Graph
    from mlinfn_compress.compress.passes.quantise import QuantConfig

TARGETS = ("vhdl", "hls", "both", "bondmachine")
SOFTMAX_MODES = ("logits", "table")
# --target -> the kinds of design it writes (their design.json keys), in the order they are written and verified
TARGET_KINDS = {"vhdl": ("vhdl",), "hls": ("hls",), "both": ("vhdl", "hls"), "bondmachine": ("bondmachine",)}


@dataclass(frozen=True)
class Range:
    """An integer in [lo, hi] (hi None: no upper bound), or a float in [lo, hi) when ``fraction``."""

    lo: float
    hi: float | None = None
    fraction: bool = False

    def describe(self) -> str:
        if self.fraction:
            return f"a number in [{self.lo:g}, {self.hi:g})"
        if self.hi is None:
            return f"an integer >= {int(self.lo)}"
        return f"an integer from {int(self.lo)} to {int(self.hi)}"

    def problem(self, value: object) -> str | None:
        """Why ``value`` is out of range ("must be ..."), or None when it is fine."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {self.describe()}, got {value!r}"
        if self.fraction:
            ok = self.hi is not None and self.lo <= float(value) < self.hi
        else:
            ok = isinstance(value, int) and value >= self.lo and (self.hi is None or value <= self.hi)
        return None if ok else f"must be {self.describe()}, got {value!r}"


RANGES: dict[str, Range] = {
    "bits": Range(2, 24),
    "weight_bits": Range(2, 24),
    "act_bits": Range(2, 24),
    "epochs": Range(1),
    "simulate": Range(1),
    "seed": Range(0),
    "reuse": Range(1),
    "prune": Range(0.0, 1.0, fraction=True),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_range(name: str, value: object) -> None:
    """UserError naming the option and its range when ``value`` is out of it (None: not given, fine)."""
    if value is None:
        return
    why = RANGES[name].problem(value)
    if why is not None:
        raise UserError(f"{flag(name)} {why}")


def _quant() -> QuantConfig:
    from mlinfn_compress.compress.passes.quantise import QuantConfig

    return QuantConfig()


def _compression() -> CompressOptions:
    from mlinfn_compress.compress.flow.compression import CompressOptions

    return CompressOptions()


def _arith() -> ArithOptions:
    from mlinfn_compress.backends.vhdl.design import ArithOptions

    return ArithOptions()


@dataclass
class RunOptions:
    model: Path
    outdir: Path
    target: str = "vhdl"
    hls_backend: str = "Vitis"
    weights: Path | None = None
    model_class: str | None = None
    model_args: dict[str, Any] | None = None
    input_shape: tuple[int, ...] | None = None
    force: bool = False
    quant: QuantConfig = field(default_factory=_quant)
    compression: CompressOptions = field(default_factory=_compression)
    calibration: Path | None = None
    data: Path | None = None
    device: str = "auto"
    simulate: int = 1000
    seed: int = 0
    synth: bool = False
    softmax: str = "logits"  # a final softmax: "logits" (removed) or "table" (hls4ml's lookup-table softmax)
    arith: ArithOptions = field(default_factory=_arith)
    quiet: bool = False
    io: str | None = None  # dataflow's form: parallel or stream (None: by the size rule)
    arch: str = "dataflow"  # VHDL architecture: dataflow or bondmachine
    reuse: int | None = None  # bondmachine: neurons each core serves (None: 1)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{flag(name)} must be one of {', '.join(choices)}, got {value!r}")


def check(opts: RunOptions) -> None:
    """Every rule the options follow, before any work (UserError naming the option)."""
    _choice("target", opts.target, TARGETS)
    kinds = TARGET_KINDS[opts.target]
    vhdl = "vhdl" in kinds
    if "hls" in kinds:
        from mlinfn_compress.backends.hls.target import HlsTarget

        HlsTarget.check_options(opts)
    _choice("softmax", opts.softmax, SOFTMAX_MODES)
    if "bondmachine" in kinds:
        from mlinfn_compress.backends.neuralbond.target import NeuralbondTarget

        NeuralbondTarget.check_options(opts)
    if opts.synth and not vhdl:
        raise UserError("--synth estimates the VHDL design's resources: use it with --target vhdl or both")
    if opts.io is not None:
        _choice("io", opts.io, IO_CHOICES)
        if not vhdl:
            raise UserError("--io chooses the VHDL design's architecture: use it with --target vhdl or both")
    if not vhdl and (opts.arith.dsp or opts.arith.arith != "shift-add"):
        raise UserError("--arith and --dsp choose the VHDL design's arithmetic: use them with --target vhdl or both")
    _choice("arch", opts.arch, ARCH_CHOICES)
    check_range("reuse", opts.reuse)
    if opts.arch == "dataflow" and opts.reuse is not None:
        raise UserError("--reuse sets how many neurons a bondmachine core serves: use it with --arch bondmachine")
    if opts.arch == "bondmachine":
        if not vhdl:
            raise UserError("--arch chooses the VHDL design's architecture: use it with --target vhdl or both")
        from mlinfn_compress.backends.vhdl.target import BondmachineVhdl

        BondmachineVhdl.check_options(opts)
    if opts.simulate < 1:
        raise UserError(f"--simulate must be at least 1, got {opts.simulate}")
    opts.quant.check()
    opts.compression.check(has_data=opts.data is not None)


def vhdl_target(graph: Graph, opts: RunOptions) -> Target:
    """The VHDL target the options name: bondmachine, or dataflow in the form --io gives or the size rule."""
    from mlinfn_compress.backends.vhdl.architecture import choose_io
    from mlinfn_compress.backends.vhdl.target import BondmachineVhdl, ParallelVhdl, StreamVhdl

    if opts.arch == "bondmachine":
        reuse = opts.reuse or 1
        why = f"asked for (--arch bondmachine --reuse {reuse}): each core serves up to {reuse} neuron(s) in turn"
        chosen = {"architecture": "bondmachine", "chosen_by": "--arch", "reason": why, "reuse": reuse}
        return BondmachineVhdl(opts.arith, chosen, reuse)
    rule, reason = choose_io(graph)
    if opts.io is None:
        io, chosen = rule, {"architecture": rule, "chosen_by": "size rule", "reason": reason}
    else:
        io = opts.io
        chosen = {"architecture": io, "chosen_by": "--io", "reason": f"asked for; the size rule gives {rule}: {reason}"}
    forms = {"parallel": ParallelVhdl, "stream": StreamVhdl}
    return forms[io](opts.arith, chosen)


def targets(graph: Graph, opts: RunOptions) -> list[Target]:
    """The targets of a run, in the order they are written and verified."""
    from mlinfn_compress.backends.hls.target import HlsTarget
    from mlinfn_compress.backends.neuralbond.target import NeuralbondTarget

    make = {
        "vhdl": lambda: vhdl_target(graph, opts),
        "hls": lambda: HlsTarget(opts.hls_backend),
        "bondmachine": NeuralbondTarget,
    }
    return [make[kind]() for kind in TARGET_KINDS[opts.target]]
