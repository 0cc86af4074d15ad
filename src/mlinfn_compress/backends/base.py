"""The Target interface: what every kind of design the tool emits does, from options to its report section.

A run builds one or more targets (the VHDL design in one of its
architectures, the hls4ml project, the BondMachine export) and hands each
the same quantised graph.  A target

* refuses, before any work, the options it does not take (``check_options``,
  a class method: the run has not loaded the model yet) and the models it
  cannot build (``check_model``);
* writes its design into the output folder (``emit``) and describes it for
  ``design.json`` (``describe``), from which ``load`` reads it back for
  ``mlinfn-compress verify``;
* runs its design on the verification inputs (``simulate``): outputs to
  compare with the golden model, or the checks it can make instead;
* gives its sections of ``report.json`` (``report``).

``backends.targets`` lists them by their ``design.json`` key; nothing outside
argument parsing compares target, architecture or io names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlinfn_compress.errors import UserError

if TYPE_CHECKING:
    from mlinfn_compress.compress.flow.compare import Comparison
    from mlinfn_compress.compress.flow.options import RunOptions
    from mlinfn_compress.compress.flow.progress import Progress
    from mlinfn_compress.compress.ir import Graph


@dataclass
class Simulated:
    """What running one target's design gave: its outputs, or the checks it made instead."""

    simulator: str  # what ran it, for report.json's verification.simulator
    outputs: np.ndarray | None = None  # (N, n_out) integers of the output type; None: not simulated
    seconds: float = 0.0
    argmax: np.ndarray | None = None  # the design's own arg-max output, where it has one
    test_outputs: np.ndarray | None = None  # on the test set
    error: str | None = None  # why the design stopped its own simulation
    protocol: dict[str, Any] | None = None  # cocotb's protocol tests
    timing: dict[str, Any] | None = None  # stated and measured latency and interval
    hls: dict[str, Any] | None = None  # the C simulation's facts
    checks: list[Comparison] = field(default_factory=list)  # a target that is not simulated: what it checked
    extra: dict[str, Any] = field(default_factory=dict)  # entries this target adds to report.json's verification

    @property
    def passed(self) -> bool:
        """The target's own checks (protocol, timing, HLS precisions) passed; outputs are compared elsewhere."""
        protocol_ok = self.protocol is None or (
            self.protocol.get("failed", 1) == 0 and self.protocol.get("tests", 0) > 0
        )
        hls_ok = self.hls is None or not self.hls["precision_differences"]
        timing_ok = self.timing is None or bool(self.timing["agree"])
        return protocol_ok and hls_ok and timing_ok


@dataclass
class Emitted:
    """A design a target wrote (or read back), with the target that did."""

    target: Target
    design: Any


class Target(ABC):
    """One kind of design the tool emits and proves right."""

    key: ClassVar[str]  # its entry in design.json, and its name in verification labels
    what: ClassVar[str]  # its name in progress lines and messages
    softmax_note: ClassVar[str]  # what its design emits when the model ends in a softmax

    @classmethod
    def check_options(cls, opts: RunOptions) -> None:
        """UserError for an option this target does not take (before the model is loaded); none by default."""
        return None

    def check_model(self, graph: Graph, source: str) -> None:
        """UserError for a model this target cannot build (before any work); it builds any by default."""
        return None

    @classmethod
    def tools(cls) -> list[str]:
        """The programs its emission and simulation run (checked before any work)."""
        return []

    def hardware(self, design: Any) -> dict[str, Any] | None:
        """The design's hardware facts for report.json's ``hardware`` (latency, interval, architecture,
        arithmetic), or None where the design's own build decides them."""
        return None

    def hardware_design(self, design: Any) -> Any:
        """The design whose per-layer hardware the report lists and ``--synth`` synthesises (None: none)."""
        return None

    @abstractmethod
    def emit(self, graph: Graph, outdir: Path, x_int: np.ndarray, progress: Progress) -> Any:
        """Write the design into ``outdir`` (the run's output folder); the design written."""

    @abstractmethod
    def describe(self, design: Any) -> dict[str, Any]:
        """The design's entry in design.json."""

    @classmethod
    @abstractmethod
    def load(cls, entry: dict[str, Any], outdir: Path) -> Emitted:
        """The target and design a design.json entry describes, from the files in ``outdir``."""

    @abstractmethod
    def simulate(
        self,
        design: Any,
        graph: Graph,
        x_int: np.ndarray,
        test_int: np.ndarray | None,
        work: Path,
        progress: Progress,
        keep_logs: Path | None,
    ) -> Simulated:
        """Run the design on ``x_int`` (and ``test_int``), or check what can be checked without running it."""

    def outputs(self, design: Any, x_int: np.ndarray, work: Path) -> np.ndarray:
        """The design's outputs on new integer inputs, nothing checked (``mlinfn_compress.simulate``)."""
        raise UserError(f"a {self.what} is not simulated here")

    def report(self, design: Any) -> dict[str, Any]:
        """This target's top-level sections of report.json (none by default)."""
        return {}
