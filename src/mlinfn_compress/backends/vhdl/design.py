"""What the VHDL backend writes, how it names things, and the Jinja2 environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from mlinfn_compress.backends.vhdl.delay import DEFAULT_FAMILY, delay_model
from mlinfn_compress.compress.ir import INPUT, Graph
from mlinfn_compress.errors import UserError
from mlinfn_compress.templating import environment

# VHDL integers are guaranteed 32-bit: every value, partial sums included,
# must stay inside this range where a design computes on integers.
VHDL_INT_MAX = 2**31 - 1
ARITHMETIC = ("shift-add", "naive")
DEFAULT_CLOCK_NS = 4.2  # 240 MHz, the clock of a trigger board


@dataclass(frozen=True)
class ArithOptions:
    """How linear layers become hardware.

    ``shift-add`` (default): adder graphs of shifted signals, pipelined to ``clock_period_ns``;
    ``dsp`` gives the weights that need many adders to DSP multiplications.
    ``naive``: a sum of products per output in one clock (the reference design).
    ``family``: the device family whose delay model cuts the pipeline (``delay.py``).
    """

    arith: str = "shift-add"
    clock_period_ns: float = DEFAULT_CLOCK_NS
    dsp: bool = False
    family: str = DEFAULT_FAMILY

    def __post_init__(self) -> None:
        if self.arith not in ARITHMETIC:
            raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETIC)}, got {self.arith!r}")
        if not self.clock_period_ns > 0:
            raise ValueError(f"the clock period must be positive, got {self.clock_period_ns}")
        delay_model(self.family)  # a known family

    def to_json(self) -> dict[str, Any]:
        return {"arith": self.arith, "clock_period_ns": self.clock_period_ns, "dsp": self.dsp, "family": self.family}

    @staticmethod
    def from_json(d: dict[str, Any]) -> ArithOptions:
        family = str(d.get("family", DEFAULT_FAMILY))  # design.json files written before families were
        return ArithOptions(str(d["arith"]), float(d["clock_period_ns"]), bool(d["dsp"]), family)


RESERVED = {
    "abs", "and", "in", "out", "or", "not", "signal", "type", "range", "is", "of", "to", "input",
    "process", "begin", "end", "entity", "architecture", "port", "map", "generate", "loop", "if", "then",
    "else", "elsif", "case", "when", "others", "variable", "constant", "function", "return", "array",
    "record", "block", "component", "select", "with", "until", "wait", "next", "exit", "null", "body",
    "package", "library", "use", "all", "downto", "xor", "nand", "nor", "xnor", "mod", "rem", "sll", "srl",
    "sla", "sra", "rol", "ror", "new", "file", "buffer", "bus", "register", "label", "linkage", "literal",
    "units", "access", "after", "alias", "assert", "attribute", "configuration", "disconnect", "generic",
    "group", "guarded", "impure", "inertial", "inout", "open", "postponed", "procedure", "pure", "reject",
    "report", "severity", "shared", "subtype", "transport", "unaffected", "while", "clk", "rst", "x", "y",
}  # fmt: skip


@dataclass(frozen=True)
class Interface:
    """How an architecture's top level takes samples, and how it is checked."""

    handshake: bool  # valid/ready on both sides, a sample as words (stream, bondmachine); else valid only
    protocol_test: str  # the cocotb module (in mlinfn_compress.sim) that checks the protocol
    pipelined: bool  # its latency is in clocks of --clock-period (bondmachine cores are not cut to it)


# the architecture recorded in a design -> its interface
INTERFACES = {
    "dataflow": Interface(handshake=False, protocol_test="protocol_test", pipelined=True),
    "stream": Interface(handshake=True, protocol_test="stream_protocol_test", pipelined=True),
    "bondmachine": Interface(handshake=True, protocol_test="stream_protocol_test", pipelined=False),
}


@dataclass
class VhdlDesign:
    """What the backend wrote: files in compile order and the interface facts."""

    top: str
    files: list[Path]
    testbench: Path
    latency: int
    n_in: int
    w_in: int
    in_signed: bool
    n_out: int
    w_out: int
    out_signed: bool
    argmax: bool
    w_idx: int
    architecture: str = "dataflow"  # or "stream", "bondmachine"
    initiation_interval: int = 1
    layers: list[dict[str, Any]] = field(default_factory=list)  # per node: entity, latency, start cycle, ...
    in_words: int = 1  # words of n_in values per input sample (stream: pixels of an image)
    out_words: int = 1  # words of n_out values per output sample
    steady_from: int = 1  # samples fed back to back after which every interval is the initiation interval
    arith: ArithOptions = field(default_factory=ArithOptions)
    delay_register_bits: int = 0  # the top level's balancing delay lines
    reuse: int | None = None  # bondmachine: neurons each core serves in turn

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["files"] = [p.name for p in self.files]
        d["testbench"] = self.testbench.name
        d["arith"] = self.arith.to_json()
        return d

    @property
    def interface(self) -> Interface:
        return INTERFACES[self.architecture]

    @property
    def latency_ns(self) -> float | None:
        """The latency at the clock period the design is pipelined for (None: naive, or bondmachine, not
        pipelined to one)."""
        if self.arith.arith == "naive" or not self.interface.pipelined:
            return None
        return round(self.latency * self.arith.clock_period_ns, 3)


def template_env() -> jinja2.Environment:
    """The VHDL templates (``templates/`` beside this package)."""
    return environment(__package__ or "mlinfn_compress.backends.vhdl")


class TensorNames:
    """VHDL names of a graph's tensors, their element and vector types, and the nodes' entities."""

    def __init__(self, graph: Graph) -> None:
        self.top = vhdl_name(graph.name)
        self.short: dict[str, str] = {INPUT: "input"}
        used = {"input"}
        for n in graph.nodes:
            base, i = vhdl_name(n.name), 1
            name = base
            while name in used:
                i += 1
                name = f"{base}_{i}"
            used.add(name)
            self.short[n.name] = name

    def elem(self, tensor: str) -> str:
        return f"{self.short[tensor]}_t"

    def vec(self, tensor: str) -> str:
        return f"{self.short[tensor]}_vec"

    def entity(self, node: str) -> str:
        return f"{self.top}_{self.short[node]}"


def check_widths(graph: Graph) -> None:
    """A UserError unless the graph is quantised and every tensor fits the backend's integers."""
    if not graph.quantised:
        raise ValueError("the graph must be quantised before rendering")
    for tensor in [INPUT, *(n.name for n in graph.nodes)]:
        t = graph.type_of(tensor)
        if t.width > 31:
            raise UserError(
                f"tensor '{tensor}' has type {t}: values wider than 31 bits between layers are not supported "
                "by the VHDL backend"
            )


def vhdl_name(name: str) -> str:
    """A VHDL identifier made from any name (lower case, no double or edge underscores)."""
    out = "".join(c if c.isalnum() else "_" for c in name.lower())
    while "__" in out:
        out = out.replace("__", "_")
    out = out.strip("_") or "x"
    if not out[0].isalpha():
        out = "n_" + out
    return out + "_l" if out in RESERVED else out


def int_table(values: list[int], per_line: int = 24) -> str:
    """A VHDL aggregate of integers, wrapped over lines; a single value uses named association."""
    if len(values) == 1:
        return f"(0 => {values[0]})"
    lines = [", ".join(str(v) for v in values[i : i + per_line]) for i in range(0, len(values), per_line)]
    return "(\n    " + ",\n    ".join(lines) + "\n  )"
