"""``--target bondmachine``: export the quantised network for BondMachine and check what can be checked here.

BondMachine's toolchain (``neuralbond``, ``basm``, ``bondmachine``, then the
FPGA vendor's tools) is not installable here, so nothing is simulated: the
export is read back and every weight and bias compared with the IR's
quantised value, and the golden model runs on the verification inputs (and is
compared with the framework twin, as on every target).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.neuralbond.export import EXPORT_DIR, FORMATS_FILE, MODEL_FILE, check_export, export
from mlinfn_compress.compress.fixed import to_float
from mlinfn_compress.compress.flow.compare import Comparison, compare
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.flow.verification import Verification
from mlinfn_compress.compress.ir import Graph, golden

SIMULATOR = "none: the BondMachine toolchain is not run here (see README.md)"
AGAINST = "the IR's quantised values (modelBM.json read back)"
NOT_VERIFIED = (
    "BondMachine's build (neuralbond, basm, bondmachine, vendor synthesis) and the firmware's outputs: "
    "BondMachine computes in its own number type (-data-type), not in the golden model's fixed-point "
    "rounding, so its outputs are not compared here"
)


def export_and_verify(
    graph: Graph,
    outdir: Path,
    x_int: np.ndarray,
    expected: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    test_int: np.ndarray | None,
    progress: Progress,
    source: str,
) -> tuple[Verification, dict[str, Any]]:
    """Write OUTDIR/bondmachine/ and OUTDIR/README.md; the verification and report.json's ``bondmachine``."""
    with progress.step("emit_bondmachine", "writing the BondMachine model (neuralbond JSON)"):
        info = export(graph, outdir / EXPORT_DIR, source)
        (outdir / "README.md").write_text(readme(graph, info))
    verification, check = verify_export(graph, outdir, x_int, expected, references, test_int)
    return verification, info | {"check": check, "not_verified": NOT_VERIFIED}


def verify_export(
    graph: Graph,
    outdir: Path,
    x_int: np.ndarray,
    expected: dict[str, np.ndarray] | None,
    references: dict[str, np.ndarray],
    test_int: np.ndarray | None = None,
) -> tuple[Verification, dict[str, Any]]:
    """Read the export in ``outdir`` back; compare its values with the IR, and golden with the references."""
    check = check_export(graph, outdir / EXPORT_DIR)
    comparisons = [Comparison(AGAINST, check["values"], check["mismatches"], check["first_mismatch"])]
    expected = expected if expected is not None else golden.run(graph, x_int)
    out_t = graph.output.result_type
    assert out_t is not None
    names = [f"out[{i}]" for i in range(graph.output_size)]
    for name, ref in references.items():
        comparisons.append(compare(to_float(expected["logits"], out_t.frac), ref, f"golden vs {name}", names))
    test_golden = golden.run(graph, test_int)["logits"] if test_int is not None else None
    return Verification(comparisons, len(x_int), 0.0, None, SIMULATOR, None, test_golden, None), check


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
