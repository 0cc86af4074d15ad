"""The output folder: written in full or not at all, and ``design.json``, what ``verify`` reads back.

A run writes into a temporary folder beside OUTDIR and renames it into place
when everything is written; a run that fails leaves nothing behind.
``design.json`` holds the quantised IR, each target's description of its
design, and how the model's own arrays map to the IR's.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.base import Emitted
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError

DESIGN_FILE = "design.json"
DESIGN_KEYS = ("vhdl", "hls", "bondmachine")  # design.json's entries, one per kind of target, in this order


def check_outdir(outdir: Path, force: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: exists and is not a directory")
    if outdir.exists() and any(outdir.iterdir()) and not force:
        raise UserError(f"{outdir}: exists and is not empty; pass --force to replace it")


@contextlib.contextmanager
def staging(outdir: Path) -> Iterator[Path]:
    """A temporary folder beside ``outdir`` that replaces it when the block ends without an error."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        yield tmp
        if outdir.exists():
            shutil.rmtree(outdir)
        tmp.rename(outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_design(tmp: Path, graph: Graph, designs: list[Emitted], x_int: np.ndarray, layouts: dict[str, Any]) -> None:
    """design.json (what ``verify`` reads back) and the verification inputs."""
    (tmp / "sim").mkdir(exist_ok=True)
    np.save(tmp / "sim" / "inputs.npy", x_int)
    entries = {e.target.key: e.target.describe(e.design) for e in designs}
    description = {"ir": graph.to_json(), **{key: entries.get(key) for key in DESIGN_KEYS}, "layouts": layouts}
    (tmp / DESIGN_FILE).write_text(json.dumps(description))


def load_outdir(outdir: Path) -> tuple[Graph, list[Emitted], dict[str, Any]]:
    """Read back what a run wrote: the IR, each target's design, and the report."""
    design_file = outdir / DESIGN_FILE
    if not design_file.exists():
        raise UserError(f"{outdir}: not an mlinfn-compress output (no {DESIGN_FILE})")
    d = json.loads(design_file.read_text())
    graph = Graph.from_json(d["ir"])
    from mlinfn_compress.backends.targets import KINDS

    designs = [KINDS[key].load(d[key], outdir) for key in DESIGN_KEYS if d.get(key) is not None]
    report_file = outdir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return graph, designs, report


def layouts(outdir: Path) -> dict[str, Any]:
    """The model's own input and output layouts recorded in design.json (PyTorch: channels first)."""
    from mlinfn_compress.compress.frameworks.base import Layout

    d = json.loads((outdir / DESIGN_FILE).read_text()).get("layouts") or {}
    out = {}
    for key, value in d.items():
        if value is not None:
            order = None if value.get("order") is None else np.asarray(value["order"], dtype=np.int64)
            out[key] = Layout(tuple(value["model_shape"]), order)
    return out
