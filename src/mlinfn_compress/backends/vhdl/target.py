"""The VHDL design as a target: one class per architecture, each owning its options, emission and checks.

``ParallelVhdl`` (the dataflow architecture, every node in hardware at once),
``StreamVhdl`` (the dataflow architecture, one pixel per clock) and
``BondmachineVhdl`` (cores shared by ``reuse`` neurons each) render with
their own renderer; all are simulated the same way: every sample through a
VHDL textio bench in GHDL (the handshake bench also measures latency and
interval, which must equal what the renderer stated), then cocotb's protocol
tests on a subset.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlinfn_compress.backends.base import Emitted, Simulated, Target
from mlinfn_compress.backends.vhdl.design import ArithOptions, VhdlDesign
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import ToolFailed, UserError

if TYPE_CHECKING:
    from mlinfn_compress.compress.flow.options import RunOptions

PROTOCOL_SAMPLES = 200
PROTOCOL_CYCLES = 4_000  # handshake designs: about this many clocks of samples for each cocotb test


class VhdlTarget(Target):
    """The VHDL design, in the architecture of the subclass."""

    key = "vhdl"
    what = "VHDL"
    softmax_note = (
        "the model ends in a softmax: out_data carries the logits (before the softmax) and "
        "out_argmax the index of the largest one"
    )
    architecture: ClassVar[str] = "dataflow"

    def __init__(self, arith: ArithOptions | None = None, chosen: dict[str, Any] | None = None) -> None:
        self.arith = arith or ArithOptions()
        self.chosen = chosen or {}  # how the architecture was chosen, for report.json's hardware.io

    @classmethod
    def tools(cls) -> list[str]:
        return ["ghdl"]

    def how(self) -> str:
        """The arithmetic, in the progress line."""
        return f"{self.arith.arith} arithmetic"

    def render(self, graph: Graph, outdir: Path, bench_dir: Path) -> VhdlDesign:
        raise NotImplementedError

    def emit(self, graph: Graph, outdir: Path, x_int: np.ndarray, progress: Progress) -> VhdlDesign:
        form = self.chosen.get("architecture", self.architecture)
        with progress.step("emit", f"writing VHDL ({form} architecture, {self.how()})"):
            return self.render(graph, outdir / "vhdl", outdir / "sim")

    def describe(self, design: VhdlDesign) -> dict[str, Any]:
        return design.to_json()

    @classmethod
    def load(cls, entry: dict[str, Any], outdir: Path) -> Emitted:
        fields = dict(entry)
        fields["files"] = [outdir / "vhdl" / f for f in entry["files"]]
        fields["testbench"] = outdir / "sim" / entry["testbench"]
        if "arith" in entry:
            fields["arith"] = ArithOptions.from_json(entry["arith"])
        design = VhdlDesign(**fields)
        missing = [p for p in [*design.files, design.testbench] if not p.exists()]
        if missing:
            raise UserError(f"{outdir}: design files are missing: {', '.join(str(p) for p in missing)}")
        return Emitted(ARCHITECTURES[design.architecture](design.arith), design)

    def simulate(
        self,
        design: VhdlDesign,
        graph: Graph,
        x_int: np.ndarray,
        test_int: np.ndarray | None,
        work: Path,
        progress: Progress,
        keep_logs: Path | None,
    ) -> Simulated:
        from mlinfn_compress.compress.ir import golden

        with progress.step("simulate", f"simulating {len(x_int)} samples in GHDL"):
            sim = _bench(design, x_int, work / "bulk")
        test = None
        if test_int is not None:
            with progress.step("test_set", f"simulating the {len(test_int)} test samples in GHDL"):
                test = _bench(design, test_int, work / "test").logits
        k = self.protocol_samples(design, len(x_int))
        protocol = _protocol(design, x_int[:k], golden.run(graph, x_int[:k]), work, progress, keep_logs)
        return Simulated(
            simulator=f"{sim.version}, {sim.backend} backend: VHDL textio bench (all samples); cocotb protocol tests",
            outputs=sim.logits,
            seconds=sim.seconds,
            argmax=sim.argmax,
            test_outputs=test,
            error=sim.error,
            protocol=protocol,
            timing=_timing(design, sim.timing) if sim.timing is not None else None,
        )

    def outputs(self, design: VhdlDesign, x_int: np.ndarray, work: Path) -> np.ndarray:
        from mlinfn_compress.sim.ghdl import simulate_design

        return np.asarray(simulate_design(design, x_int, work).logits)

    def hardware_design(self, design: VhdlDesign) -> VhdlDesign:
        return design

    @staticmethod
    def protocol_samples(design: VhdlDesign, available: int) -> int:
        """How many samples cocotb drives: 200, or as many as fill a few thousand clocks of a handshake design."""
        k = min(available, PROTOCOL_SAMPLES)
        if design.interface.handshake:
            per_sample = max(design.initiation_interval, design.in_words, design.out_words)
            k = min(k, max(3, design.steady_from, PROTOCOL_CYCLES // per_sample))
        return k

    def hardware(self, design: VhdlDesign) -> dict[str, Any]:
        """report.json's hardware facts of the design: latency, interval, architecture, clock, arithmetic."""
        arith = design.arith
        return {
            "latency_cycles": design.latency,
            "initiation_interval": design.initiation_interval,
            "io": self.chosen,
            "latency_ns": design.latency_ns,
            "clock_period_ns": arith.clock_period_ns if design.latency_ns is not None else None,
            "arithmetic": arith.arith,
            "dsp": arith.dsp,
            "adders": sum(row.get("adders", 0) for row in design.layers) if arith.arith == "shift-add" else None,
            "register_bits": sum(row.get("register_bits", 0) for row in design.layers) + design.delay_register_bits,
        }


class ParallelVhdl(VhdlTarget):
    architecture = "dataflow"

    def render(self, graph: Graph, outdir: Path, bench_dir: Path) -> VhdlDesign:
        from mlinfn_compress.backends.vhdl.dataflow import render

        return render(graph, outdir, bench_dir, self.arith)


class StreamVhdl(VhdlTarget):
    architecture = "stream"

    def render(self, graph: Graph, outdir: Path, bench_dir: Path) -> VhdlDesign:
        from mlinfn_compress.backends.vhdl.stream import render_stream

        return render_stream(graph, outdir, bench_dir, self.arith)


class BondmachineVhdl(VhdlTarget):
    architecture = "bondmachine"

    def __init__(self, arith: ArithOptions | None = None, chosen: dict[str, Any] | None = None, reuse: int = 1) -> None:
        super().__init__(arith, chosen)
        self.reuse = reuse

    @classmethod
    def check_options(cls, opts: RunOptions) -> None:
        if opts.io == "parallel":
            raise UserError(
                "--arch bondmachine has the streaming interface (valid/ready handshakes, one word per sample): "
                "--io parallel does not apply to it; leave --io out"
            )
        if opts.arith.arith != "shift-add" or opts.arith.dsp:
            raise UserError(
                "--arith and --dsp choose how the dataflow architecture computes its layers; a bondmachine core is a "
                "multiply-accumulate unit: leave them out with --arch bondmachine"
            )
        if opts.softmax == "table":
            raise UserError(
                "--softmax table: the table softmax has no bondmachine core; leave it out or use --arch dataflow"
            )

    def check_model(self, graph: Graph, source: str) -> None:
        from mlinfn_compress.backends.vhdl.bondmachine_plan import chain

        chain(graph)  # refuses what the architecture does not take, before any work

    def how(self) -> str:
        return f"{self.reuse} neuron(s) per core"

    def render(self, graph: Graph, outdir: Path, bench_dir: Path) -> VhdlDesign:
        from mlinfn_compress.backends.vhdl.bondmachine import render_bondmachine

        return render_bondmachine(graph, outdir, bench_dir, self.reuse, self.arith)

    def hardware(self, design: VhdlDesign) -> dict[str, Any]:
        return super().hardware(design) | {
            "arithmetic": "multiply-accumulate",
            "dsp": None,
            "adders": None,
            "register_bits": None,
            "reuse": design.reuse,
            "cores": sum(row.get("cores", 0) for row in design.layers),
        }


# the architecture a design records -> its target class
ARCHITECTURES: dict[str, type[VhdlTarget]] = {
    "dataflow": ParallelVhdl,
    "stream": StreamVhdl,
    "bondmachine": BondmachineVhdl,
}


def _bench(design: VhdlDesign, x: np.ndarray, work: Path) -> Any:
    """The textio bench's run; a design that stopped its own simulation gives no outputs (all mismatches)."""
    from mlinfn_compress.sim.ghdl import DesignStopped, SimResult, sim_backend, simulate_design

    try:
        return simulate_design(design, x, work)
    except DesignStopped as e:
        empty = np.zeros((0, design.n_out * design.out_words), dtype=np.int64)
        backend = sim_backend(len(x))
        return SimResult(empty, np.zeros(0, np.int64) if design.argmax else None, 0.0, 0.0,
                         backend=backend.name, error=str(e), version=backend.version())  # fmt: skip


def _timing(design: VhdlDesign, measured: dict[str, Any]) -> dict[str, Any]:
    """The renderer's latency and interval beside the bench's; they agree where the bench could measure."""
    stated = {"latency_cycles": design.latency, "initiation_interval": design.initiation_interval}
    agree = measured["latency_cycles"] == design.latency
    if measured["samples"] >= max(design.steady_from, 2):
        agree = agree and measured["initiation_interval"] == design.initiation_interval
    return {"stated": stated, "measured": measured, "agree": agree}


def _protocol(
    design: VhdlDesign,
    x: np.ndarray,
    expected: dict[str, np.ndarray],
    work: Path,
    progress: Progress,
    keep_logs: Path | None,
) -> dict[str, Any]:
    """cocotb's protocol tests on the samples ``x`` (the golden model's outputs ``expected``)."""
    from mlinfn_compress.sim.cocotb_runner import run_protocol_tests

    d = design
    if d.interface.handshake:
        meta: tuple[int, ...] = (d.w_in, d.n_in, d.in_words, d.w_out, d.n_out, d.out_words, d.out_signed, d.latency,
                                 d.initiation_interval, d.steady_from)  # fmt: skip
    else:
        meta = (d.w_in, d.w_out, d.out_signed, d.latency)
    with progress.step("protocol", f"cocotb protocol tests on {len(x)} samples"):
        try:
            proto = run_protocol_tests(d.files, d.top, x, expected["logits"], expected["argmax"] if d.argmax else None,
                                       meta, work / "cocotb", module=d.interface.protocol_test)  # fmt: skip
            protocol = {"tests": proto.tests, "failed": proto.failed, "samples": proto.samples,
                        "backend": proto.backend}  # fmt: skip
        except (RuntimeError, ToolFailed) as e:  # the design stopped the simulator: a failed check
            protocol = {"tests": 0, "failed": 1, "samples": len(x), "error": str(e)[:500]}
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for name in ("cocotb.log", "results.xml"):
                src = work / "cocotb" / name
                if src.exists():
                    shutil.copy(src, keep_logs / name)
    return protocol


def emitted(design: VhdlDesign) -> Emitted:
    """A rendered design with the target of its architecture (to verify a design rendered by hand)."""
    return Emitted(ARCHITECTURES[design.architecture](design.arith), design)
