"""Verification: run every target's design and compare it bit for bit.

Each target runs its design on the verification inputs (``Target.simulate``:
the VHDL textio bench and cocotb, the HLS C simulation) and its outputs are
compared with the golden model, with the framework's own inference where
that is exact, and with the golden model on the test set; two simulated
targets are also compared with each other.  A target that is not simulated
(the BondMachine export) brings the checks it made instead, and the golden
model is compared with the framework references on its behalf.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.base import Emitted, Simulated
from mlinfn_compress.compress.fixed import to_float
from mlinfn_compress.compress.flow.compare import Comparison, compare
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.ir import Graph, Softmax, golden


@dataclass
class Verification:
    comparisons: list[Comparison]
    samples: int
    sim_seconds: float
    protocol: dict[str, Any] | None  # cocotb results (VHDL only)
    simulator: str
    test_logits: np.ndarray | None = None  # hardware outputs on the test set
    test_golden: np.ndarray | None = None  # the golden model's outputs on the test set
    hls: dict[str, Any] | None = None  # the C simulation's facts (HLS only)
    timing: dict[str, Any] | None = None  # streaming: stated and measured latency and interval
    error: str | None = None  # why the design stopped its simulation (a value out of its range)
    test_outputs: dict[str, np.ndarray] = field(default_factory=dict)  # each simulator's outputs on the test set
    runs: list[Simulated] = field(default_factory=list)  # what each target's run gave

    @property
    def mismatches(self) -> int:
        return max((c.mismatches for c in self.comparisons), default=0)

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and all(run.passed for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        first = next((dict(c.first, against=c.against) for c in self.comparisons if c.first), None)
        extra = {key: value for run in self.runs for key, value in run.extra.items()}
        return {
            "samples": self.samples,
            "simulator": self.simulator,
            "against": [c.against for c in self.comparisons],
            "mismatches": self.mismatches,
            "bit_exact": self.mismatches == 0,
            "first_mismatch": first,
            "comparisons": [c.to_json() for c in self.comparisons],
            "protocol": self.protocol,
            "hls": self.hls,
            "timing": self.timing,
            "simulation_error": self.error,
            "simulation_seconds": round(self.sim_seconds, 3),
            "samples_per_second": round(self.samples / self.sim_seconds) if self.sim_seconds > 0 else None,
        } | extra


def verify(
    graph: Graph,
    designs: list[Emitted],
    x_int: np.ndarray,
    references: dict[str, np.ndarray],
    progress: Progress,
    *,
    keep_logs: Path | None = None,
    test_set: np.ndarray | None = None,
    expected: dict[str, np.ndarray] | None = None,
) -> Verification:
    """Run each design on ``x_int`` (and ``test_set``) and compare it with golden and the framework outputs.

    ``references`` maps a name to the float outputs of a framework model (the
    source model, the framework twin) whose inference must equal the golden
    model exactly.  ``expected`` is the golden model's output on ``x_int``
    when the caller already has it.
    """
    out_t = graph.output.result_type
    assert out_t is not None
    expected = expected if expected is not None else golden.run(graph, x_int)
    expected_test = golden.run(graph, test_set)["logits"] if test_set is not None else None
    names = [f"out[{i}]" for i in range(graph.output.size)]
    with tempfile.TemporaryDirectory(prefix="mlinfn-sim-") as tmp:
        runs = [
            (e.target.key, e.target.simulate(e.design, graph, x_int, test_set, Path(tmp) / e.target.key, progress,
                                             keep_logs))
            for e in designs
        ]  # fmt: skip
    simulated = [(key, run) for key, run in runs if run.outputs is not None]
    several = len(simulated) > 1
    comparisons: list[Comparison] = []
    for key, run in runs:
        prefix = f"{key}: " if several else ""
        if run.outputs is None:  # checked, not simulated: the golden model stands in against the references
            comparisons += run.checks
            comparisons += [compare(to_float(expected["logits"], out_t.frac), ref, f"golden vs {name}", names)
                            for name, ref in references.items()]  # fmt: skip
            continue
        comparisons.append(compare(run.outputs, expected["logits"], f"{prefix}golden", names))
        if run.argmax is not None:
            comparisons.append(compare(run.argmax, expected["argmax"], f"{prefix}golden (arg-max)", ["argmax"]))
        for ref_name, ref_out in references.items() if not isinstance(graph.output, Softmax) else ():
            comparisons.append(compare(to_float(run.outputs, out_t.frac), ref_out, f"{prefix}{ref_name}", names))
        if run.test_outputs is not None and expected_test is not None:
            comparisons.append(compare(run.test_outputs, expected_test, f"{prefix}golden (test set)", names))
    if several:
        (a_key, a), (b_key, b) = simulated[0], simulated[1]
        assert a.outputs is not None and b.outputs is not None
        comparisons.append(compare(b.outputs, a.outputs, f"{b_key} vs {a_key}", names))
    if isinstance(graph.output, Softmax) and references and simulated:
        comparisons += _logit_comparisons(graph, x_int, references)
    first = simulated[0][1] if simulated else runs[0][1]
    return Verification(
        comparisons,
        len(x_int),
        first.seconds,
        next((r.protocol for _, r in runs if r.protocol is not None), None),
        "; ".join(r.simulator for _, r in runs),
        first.test_outputs,
        expected_test,
        next((r.hls for _, r in runs if r.hls is not None), None),
        next((r.timing for _, r in runs if r.timing is not None), None),
        next((r.error for _, r in runs if r.error is not None), None),
        {key: r.test_outputs for key, r in runs if r.test_outputs is not None},
        [r for _, r in runs],
    )


def _logit_comparisons(graph: Graph, x_int: np.ndarray, references: dict[str, np.ndarray]) -> list[Comparison]:
    """The framework models compute the logits, not the table softmax: compare them with the golden model's
    logits, the softmax's input (the hardware is compared with the golden probabilities)."""
    tensor = graph.output.inputs[0]
    logits = golden.flat(graph.run_int(x_int)[tensor])
    frac = graph.type_of(tensor).frac
    names = [f"{tensor}[{i}]" for i in range(logits.shape[1])]
    return [
        compare(to_float(logits, frac), ref, f"golden logits before the table softmax vs {name}", names)
        for name, ref in references.items()
    ]
