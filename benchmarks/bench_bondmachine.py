"""The bondmachine architecture's cost curve against R, beside the dataflow design of the same model.

For the shared QKeras jet tagger (or MODEL), the script compresses the model
through the Python API once per design: the default dataflow design
(shift-and-add arithmetic) and ``arch="bondmachine"`` at each ``reuse`` R;
every run is verified bit for bit (1,000 samples against golden, the
framework's own inference and its twin; cocotb with stalls; measured latency
and interval equal to the stated ones).  Each design's netlist (``ghdl
--synth``, with the repairs ``--synth`` makes) then goes through yosys
``synth_xilinx`` exactly as ``--synth`` runs it, with DSP48E1 blocks and,
for the bondmachine designs, without (``-nodsp``).  Place-and-route is left
out (``--synth`` runs it on a single design).

Run (alone on the machine; about a quarter of an hour on 2 shared vCPUs):

    .venv/bin/python benchmarks/bench_bondmachine.py [--model M.h5] [--reuse 1,2,4,8,16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from mlinfn_compress import api
from mlinfn_compress.compress.flow.outdir import load_outdir
from mlinfn_compress.synth.netlist import ghdl_netlist
from mlinfn_compress.synth.yosys import xilinx_resources

MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "jet_tagger_qkeras_6bit.h5"
KEYS = ("LUT", "FF", "DSP", "CARRY")


def measure(model: Path, outdir: Path, nodsp: bool, **options: Any) -> dict[str, Any]:
    """One verified run and the yosys counts of its design."""
    t0 = time.perf_counter()
    run = api.compress(model, outdir, **options)
    if not run.passed:
        raise RuntimeError(f"{outdir.name}: the design did not verify ({run.verification})")
    verified = time.perf_counter() - t0
    _, (vhdl, *_), _ = load_outdir(outdir)
    design = vhdl.design
    assert design is not None
    netlist, _ = ghdl_netlist(design.files, design.top, outdir / "bench_netlist.v")
    t0 = time.perf_counter()
    default = xilinx_resources(netlist, design.top)
    row: dict[str, Any] = {k: default[k] for k in KEYS}
    if nodsp:
        row["nodsp"] = {k: xilinx_resources(netlist, design.top, nodsp=True)[k] for k in KEYS}
    hw = run.hardware
    return row | {
        "latency": hw["latency_cycles"],
        "interval": hw["initiation_interval"],
        "cores": hw.get("cores"),
        "samples": run.verification["samples"],
        "mismatches": run.verification["mismatches"],
        "verify_s": round(verified, 1),
        "yosys_s": round(time.perf_counter() - t0, 1),
    }


def table(rows: dict[str, dict[str, Any]]) -> str:
    base = rows["dataflow"]["LUT"]
    lines = [
        "| design | cores | LUT | LUT / dataflow | FF | DSP48E1 | CARRY4 | LUT / FF without DSPs | latency (cycles) "
        "| II (cycles) | verified | yosys (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in rows.items():
        nodsp = f"{r['nodsp']['LUT']:,} / {r['nodsp']['FF']:,}" if "nodsp" in r else "same (no DSP)"
        lines.append(
            f"| {name} | {r['cores'] or '—'} | {r['LUT']:,} | {r['LUT'] / base:.3f} | {r['FF']:,} | {r['DSP']} "
            f"| {r['CARRY']:,} | {nodsp} | {r['latency']} | {r['interval']} "
            f"| {r['mismatches']} of {r['samples']} mismatches | {r['yosys_s']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--reuse", default="1,2,4,8,16", help="values of R, comma-separated")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--keep", type=Path, help="keep every design in this folder")
    args = ap.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model}: not found")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-bm-"))
    rows = {"dataflow": measure(args.model, work / "dataflow", nodsp=False)}
    print(f"dataflow: {rows['dataflow']}", flush=True)
    for r in (int(v) for v in args.reuse.split(",")):
        name = f"bondmachine R = {r}"
        rows[name] = measure(args.model, work / f"bm{r}", nodsp=True, arch="bondmachine", reuse=r)
        print(f"{name}: {rows[name]}", flush=True)
    print(f"\n{platform.machine()}, {platform.python_version()}, model {args.model.name}\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
