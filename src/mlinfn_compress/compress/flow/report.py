"""report.json: what a run did and what it proved, as typed sections built once from the stages' results.

The fields are those of ``schema/report-1.json`` (a JSON Schema the tests validate every report
against); ``summary`` prints the lines a person reads first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl import VhdlDesign
from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.ir import Graph, Linear, Table

FLOAT32_MANTISSA_BITS = 24
EXHAUSTIVE_BITS = 22  # a table's error is measured on every input value up to this input width


def _t(x: object) -> str | None:
    return None if x is None else str(x)


def layer_rows(graph: Graph, design: VhdlDesign | None = None) -> list[dict[str, Any]]:
    """One row per node; with a VHDL design, also its hardware: pipeline stages, adders, register bits."""
    hardware = {row["name"]: row for row in design.layers} if design is not None else {}
    rows = []
    for n in graph.nodes:
        types = n.types()
        row: dict[str, Any] = {
            "name": n.name,
            "op": n.kind,
            "block": n.op,
            "source": n.source,
            "inputs": list(n.inputs),
            "in_shape": list(graph.shape_of(n.inputs[0])),
            "out_shape": list(n.shape),
            "weight_type": _t(types.get("weight")),
            "bias_type": _t(types.get("bias")),
            "result_type": _t(n.result_type),
            "accum_type": _t(types.get("accum")),
            "sparsity": round(n.sparsity(), 6),
            "multipliers": n.multipliers(),
            "notes": n.notes,
        }
        if n.name in hardware:
            hw = hardware[n.name]
            row["pipeline_stages"] = hw["latency"]
            row["register_bits"] = hw.get("register_bits", 0)
            if "fused_into" in hw:
                row["computed_in"] = hw["fused_into"]  # a clip or cast computed by the core before it
            if "cores" in hw:  # a bondmachine layer
                row.update(cores=hw["cores"], rom_entries=hw["rom_entries"], constant_neurons=hw["constant_neurons"])
            elif isinstance(n, Linear) and design is not None and design.arith.arith == "shift-add":
                row["adders"] = hw.get("adders")
                row["dsp_products"] = hw.get("multipliers")
                if "stage_ns" in hw:
                    row["stage_ns"] = hw["stage_ns"]  # the longest stage, a register included, by the delay model
        if len(n.inputs) > 1:
            row["in_shapes"] = [list(s) for s in graph.in_shapes(n)]
        extra = {k: _t(v) for k, v in types.items() if k not in ("weight", "bias", "accum", "result")}
        if extra:
            row["other_types"] = extra
        if isinstance(n, Table) and n.quantised:
            row["table_error"] = table_error(n, graph.in_type(n))
        rows.append(row)
    return rows


def table_error(node: Table, x_t: FixedType) -> dict[str, Any]:
    """A lookup table's largest absolute error against its float function, over its input type's values.

    Every value of the input type when it has at most ``EXHAUSTIVE_BITS``
    bits; otherwise the values next to each boundary between two table
    entries and the type's ends (where a monotonic function's error peaks).
    """
    assert node.index_type is not None and node.table_int is not None and node.result_type is not None
    if x_t.width <= EXHAUSTIVE_BITS:
        x = np.arange(x_t.min_int, x_t.max_int + 1, dtype=np.int64)
        over = f"every value of {x_t}"
    else:
        idx = node.index_type
        step = x_t.frac - idx.frac  # one table step is 2**step input steps
        q = np.arange(idx.min_int, idx.max_int + 1, dtype=object)
        centres = q * 2**step if step >= 0 else q // 2**-step
        half = 2 ** (step - 1) if step >= 1 else 0
        near = [centres + d for d in (-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1)]
        x = np.clip(np.concatenate([*near, [x_t.min_int, x_t.max_int]]), x_t.min_int, x_t.max_int)
        over = f"the values of {x_t} next to every boundary between table entries"
    y = node.forward_int([x[None, :]], [x_t])[0]
    err = np.abs(to_float(np.asarray(y), node.result_type.frac) - node.float_function()(to_float(x, x_t.frac)))
    worst = int(np.argmax(err))
    return {"max_abs_error": float(err[worst]), "at_input": float(to_float(x[worst : worst + 1], x_t.frac)[0]),
            "over": over}  # fmt: skip


def compression(graph: Graph) -> dict[str, Any]:
    dense = [n for n in graph.nodes if isinstance(n, Linear) and n.weight_int is not None]
    total = sum(int(np.asarray(n.weight_int).size) for n in dense)
    zeros = sum(int(np.count_nonzero(np.asarray(n.weight_int) == 0)) for n in dense)
    bits = 0
    for n in dense:
        assert n.weight_type is not None and n.bias_type is not None and n.bias_int is not None
        bits += n.multipliers() * n.weight_type.width + int(np.count_nonzero(n.bias_int)) * n.bias_type.width
    return {
        "sparsity": round(zeros / total, 6) if total else 0.0,
        "weights": total,
        "zero_weights": zeros,
        "multipliers": sum(n.multipliers() for n in dense),
        "weight_bits_total": bits,
        "float32_bits_total": 32 * graph.parameters,
    }


def float_exactness(graph: Graph) -> dict[str, Any]:
    """Which layers a float32 framework can compute exactly (every value within the mantissa)."""
    inexact = []
    for n in graph.nodes:
        t = n.types().get("accum", n.result_type)
        if t is not None and t.width - (1 if t.signed else 0) > FLOAT32_MANTISSA_BITS:
            inexact.append(n.name)
    return {"float32_exact": not inexact, "layers_beyond_float32": inexact}


SCHEMA_VERSION = 1  # report.json's fields: schema/report-1.json; a change of fields is a new version


@dataclass
class ModelSection:
    path: str
    framework: str
    parameters: int
    input_shape: list[int]
    output_shape: list[int]
    framework_input_shape: list[int] | None = None  # PyTorch: one sample as the model takes it (channels first)
    framework_output_shape: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for key in ("framework_input_shape", "framework_output_shape"):
            if d[key] is None:
                del d[key]
        return d


@dataclass
class HardwareSection:
    outputs: dict[str, Any]  # what the design emits: the type of its outputs, an arg-max, a note
    latency_cycles: int | None = None  # None where the HLS or BondMachine build decides
    initiation_interval: int | None = None
    io: dict[str, Any] | None = None  # the VHDL architecture, how it was chosen and why
    resources: dict[str, Any] | None = None  # --synth: yosys's counts
    timing: dict[str, Any] | None = None  # --synth: place-and-route
    design: dict[str, Any] = field(default_factory=dict)  # the VHDL design's clock, arithmetic, adders, cores

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "latency_cycles": self.latency_cycles,
            "initiation_interval": self.initiation_interval,
            "io": self.io,
            "resources": self.resources,
            "outputs": self.outputs,
        }
        d |= self.design
        if self.timing is not None:
            d["timing"] = self.timing
        return d


@dataclass
class Report:
    """report.json: what a run did and what it proved, built once from the stages' results."""

    model: ModelSection
    target: str  # --target as given
    layers: list[dict[str, Any]]
    compression: dict[str, Any]
    quantisation: dict[str, Any]
    verification: dict[str, Any]
    hardware: HardwareSection
    timings_s: dict[str, float]
    twin: dict[str, Any]
    accuracy: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    targets: dict[str, Any] = field(default_factory=dict)  # each target's own sections (hls, bondmachine)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "mlinfn-compress", "version": __version__},
            "model": self.model.to_json(),
            "target": self.target,
            "layers": self.layers,
            "compression": self.compression,
            "quantisation": self.quantisation,
            "verification": self.verification,
            "hardware": self.hardware.to_json(),
            "accuracy": self.accuracy,
            "timings_s": self.timings_s,
            **self.targets,
            "twin": self.twin,
            "warnings": self.warnings,
        }

    def write(self, outdir: Path) -> dict[str, Any]:
        """Write report.json into ``outdir``; the JSON written."""
        data = self.to_json()
        (outdir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
        return data


def model_section(graph: Graph, layouts: dict[str, Any]) -> ModelSection:
    """The model as loaded; its framework's own shapes where they differ from the IR's."""
    section = ModelSection(graph.source_path, graph.framework, graph.parameters, list(graph.input_shape),
                           list(graph.output.shape))  # fmt: skip
    if layouts.get("input") is not None and layouts.get("output") is not None:
        section.framework_input_shape = list(layouts["input"]["model_shape"])
        section.framework_output_shape = list(layouts["output"]["model_shape"])
    return section
