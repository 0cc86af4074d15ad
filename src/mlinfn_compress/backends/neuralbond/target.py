"""``--target bondmachine``: export the quantised network for BondMachine and check what can be checked here.

BondMachine's toolchain (``neuralbond``, ``basm``, ``bondmachine``, then the
FPGA vendor's tools) is not installable here, so nothing is simulated: the
export is read back and every weight and bias compared with the IR's
quantised value, and the golden model runs on the verification inputs (and is
compared with the framework twin, as on every target).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlinfn_compress.backends.base import Emitted, Simulated, Target
from mlinfn_compress.backends.neuralbond.export import (
    EXPORT_DIR,
    FORMATS_FILE,
    MODEL_FILE,
    check_export,
    export,
    layers_of,
)
from mlinfn_compress.compress.flow.compare import Comparison
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError

if TYPE_CHECKING:
    from mlinfn_compress.compress.flow.options import RunOptions

SIMULATOR = "none: the BondMachine toolchain is not run here (see README.md)"
AGAINST = "the IR's quantised values (modelBM.json read back)"
NOT_VERIFIED = (
    "BondMachine's build (neuralbond, basm, bondmachine, vendor synthesis) and the firmware's outputs: "
    "BondMachine computes in its own number type (-data-type), not in the golden model's fixed-point "
    "rounding, so its outputs are not compared here"
)


class NeuralbondTarget(Target):
    """The model JSON of BondMachine's neuralbond, read back and checked value by value (not simulated)."""

    key = "bondmachine"
    what = "BondMachine export"
    softmax_note = (
        "the model ends in a softmax: the export ends in a layer of BondMachine softmax neurons; the golden "
        "model's outputs here are the logits before it"
    )

    @classmethod
    def check_options(cls, opts: RunOptions) -> None:
        if opts.softmax == "table":
            raise UserError(
                "--softmax table computes the softmax in the VHDL or HLS design: not with --target bondmachine"
            )

    def check_model(self, graph: Graph, source: str) -> None:
        layers_of(graph, source)  # refuses what the format cannot describe, before any work

    def emit(self, graph: Graph, outdir: Path, x_int: np.ndarray, progress: Progress) -> dict[str, Any]:
        """Write OUTDIR/bondmachine/ and OUTDIR/README.md; report.json's ``bondmachine`` (without its check)."""
        with progress.step("emit_bondmachine", "writing the BondMachine model (neuralbond JSON)"):
            info = export(graph, outdir / EXPORT_DIR, graph.source_path)
            (outdir / "README.md").write_text(readme(graph, info))
        return {"outdir": outdir, "info": info}

    def describe(self, design: dict[str, Any]) -> dict[str, Any]:
        return {"path": EXPORT_DIR}

    @classmethod
    def load(cls, entry: dict[str, Any], outdir: Path) -> Emitted:
        return Emitted(cls(), {"outdir": outdir, "info": None})

    def simulate(
        self,
        design: dict[str, Any],
        graph: Graph,
        x_int: np.ndarray,
        test_int: np.ndarray | None,
        work: Path,
        progress: Progress,
        keep_logs: Path | None,
    ) -> Simulated:
        """Read the export back and compare every value with the IR's (BondMachine's toolchain is not run)."""
        check = check_export(graph, design["outdir"] / EXPORT_DIR)
        design["check"] = check
        checked = Comparison(AGAINST, check["values"], check["mismatches"], check["first_mismatch"])
        return Simulated(simulator=SIMULATOR, checks=[checked], extra={"bondmachine": check})

    def report(self, design: dict[str, Any]) -> dict[str, Any]:
        info = design["info"] or {}
        return {"bondmachine": info | {"check": design.get("check"), "not_verified": NOT_VERIFIED}}


def readme(graph: Graph, info: dict[str, Any]) -> str:
    """OUTDIR/README.md: what was written, how to build it with BondMachine, what was verified."""
    exact = (
        "Every value is exact in float32"
        if info["float32_exact"]
        else "Some values need more than float32's 24-bit significand: neuralbond reads them rounded"
    )
    return f"""# {graph.name}: BondMachine export

Written by mlinfn-compress from `{graph.source_path}`.

- `{EXPORT_DIR}/{MODEL_FILE}`: the quantised network in the model format of BondMachine's
  `neuralbond` tool (as `pybondmachine`'s converter writes it): `Nodes` with `Layer`, `Pos`,
  `Type` and `Bias`, `Weights` with `Layer`, `PosCurrLayer`, `PosPrevLayer` and `Value`;
  {info["layers"]} dense layer(s), {info["nodes"]} nodes, {info["weights"]} weights (zero weights
  are left out).
- `{EXPORT_DIR}/{FORMATS_FILE}`: the fixed-point format of every layer's weights, biases,
  accumulator and result. Each `Value` and `Bias` is an integer times 2^-frac of its format,
  written exactly. {exact}.

## Building it with the BondMachine toolchain

The toolchain (Go programs from the BondMachine project, and the FPGA vendor's tools for the
board) is not part of this package and was not run. In a BondMachine project folder, its
Makefile turns the model into firmware with the settings of `local.mk`, for example:

    SOURCE_NEURALBOND={MODEL_FILE}
    NEURALBOND_LIBRARY=neurons
    NEURALBOND_ARGS=-config-file neuralbondconfig.json -operating-mode fragment -io-mode sync \\
        -data-type float32 -register-size 32

which runs

    neuralbond -net-file {MODEL_FILE} -neuron-lib-path neurons \\
        -save-basm working_dir/bondmachine.basm $(NEURALBOND_ARGS)
    basm -o working_dir/bondmachine.json working_dir/bondmachine.basm neurons/*.basm

and then the BondMachine and vendor steps for the board (`BOARD`, `MAPFILE` in `local.mk`).
The neuron library must provide the node types used here
({", ".join(info["node_types"])}). BondMachine computes in the number
type given by `-data-type` (float32 above; its fixed-point types are named `fps<size>f<frac>`),
not with the rounding and saturation of the formats in `{FORMATS_FILE}`.

## What was verified

- The export was read back and every weight and bias equals the IR's quantised value.
- The golden model (the fixed-point semantics of the other targets) ran on the verification
  inputs and equals the framework twin where the report says so (`report.json`).
- Not verified: {NOT_VERIFIED}.
"""
