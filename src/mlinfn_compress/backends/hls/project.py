"""What an HLS project written by mlinfn-compress is: its backend, its layers and their precisions.

This module imports neither hls4ml nor the simulator: ``verify`` reads a
project back with ``load_project`` and the C simulation compiles it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfn_compress._version import __version__
from mlinfn_compress.compress.fixed import FixedType

BACKENDS = ("Vitis", "Vivado", "Quartus", "oneAPI")
COMPILABLE = ("Vitis", "Vivado", "Quartus")  # a g++ build_lib.sh; oneAPI needs Intel's icpx
PROJECT_FILE = "mlinfn_hls.json"
INPUT_LAYER = "x_in"
DOUBLE_BITS = 53  # the C simulation exchanges values as double


def hls_type(t: FixedType) -> str:
    """The hls4ml precision string of ``t``, e.g. ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``."""
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{kind}<{t.width},{t.integer},AP_{t.rounding},AP_{t.overflow}>"


def fixed_from_hls(p: Any) -> FixedType:
    """An hls4ml ``FixedPrecisionType`` as a FixedType (ValueError for anything else)."""
    from hls4ml.model.types import FixedPrecisionType

    if not isinstance(p, FixedPrecisionType) or p.saturation_bits:
        raise ValueError(f"not a plain fixed-point precision: {p}")
    return FixedType(int(p.width), int(p.integer), bool(p.signed), p.rounding_mode.name, p.saturation_mode.name)


def backend_name(backend: str) -> str:
    for b in BACKENDS:
        if b.lower() == backend.lower():
            return b
    raise ValueError(f"unknown HLS backend {backend!r}; use one of {', '.join(BACKENDS)}")


@dataclass
class HlsLayer:
    """One hls4ml layer and the IR node it implements (``input`` for the input layer).

    An IR node may need several hls4ml layers (a lookup table is a cast and a
    ``UnaryLUT``); each of them names the node.  ``precisions`` holds every
    fixed-point type of the layer by hls4ml's role name (weight, bias, accum,
    result, table, scale, param, exp_table, ...); ``output`` is the C
    variable the layer writes in the top function.
    """

    name: str
    class_name: str
    index: int
    ir_node: str
    precisions: dict[str, FixedType]
    output: str = ""

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["precisions"] = {k: v.to_dict() for k, v in self.precisions.items()}
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> HlsLayer:
        prec = {k: FixedType.from_dict(v) for k, v in d["precisions"].items()}
        return HlsLayer(d["name"], d["class_name"], int(d["index"]), d["ir_node"], prec, d.get("output", ""))


@dataclass
class HlsProject:
    """What ``render_hls`` wrote: where, for which backend, and the layer-to-node map."""

    outdir: Path
    backend: str
    project_name: str
    input_type: FixedType
    output_type: FixedType
    n_in: int
    n_out: int
    layers: list[HlsLayer]
    eliminated: dict[str, str] = field(default_factory=dict)  # layer -> why hls4ml has no code for it
    hls_model: Any = None  # the hls4ml ModelGraph (only in the process that rendered it)

    @property
    def compilable(self) -> bool:
        return self.backend in COMPILABLE

    def to_json(self) -> dict[str, Any]:
        return {
            "generator": f"mlinfn-compress {__version__}",
            "backend": self.backend,
            "project_name": self.project_name,
            "input_type": self.input_type.to_dict(),
            "output_type": self.output_type.to_dict(),
            "n_in": self.n_in,
            "n_out": self.n_out,
            "layers": [lay.to_json() for lay in self.layers],
            "eliminated": self.eliminated,
        }

    def save(self) -> Path:
        path = self.outdir / PROJECT_FILE
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path


def load_project(outdir: Path) -> HlsProject:
    """The project ``render_hls`` wrote into ``outdir`` (compile it with ``sim.hls_csim``)."""
    path = Path(outdir) / PROJECT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{outdir}: no {PROJECT_FILE}; not an HLS project written by mlinfn-compress")
    d = json.loads(path.read_text())
    return HlsProject(
        outdir=Path(outdir),
        backend=d["backend"],
        project_name=d["project_name"],
        input_type=FixedType.from_dict(d["input_type"]),
        output_type=FixedType.from_dict(d["output_type"]),
        n_in=int(d["n_in"]),
        n_out=int(d["n_out"]),
        layers=[HlsLayer.from_json(x) for x in d["layers"]],
        eliminated=dict(d.get("eliminated", {})),
    )
