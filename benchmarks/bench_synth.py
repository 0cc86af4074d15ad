"""Fmax and utilisation from open place-and-route, per model and architecture (``--synth``).

Run:  .venv/bin/python benchmarks/bench_synth.py [MODEL[:CALIBRATION.npy] ...] [--json FILE] [--options "..."]

Runs ``mlinfn-compress MODEL --synth`` as a subprocess for each model (default:
the example digits MLP and, where ../shared/models is present, the QKeras jet
tagger; ``--options`` adds options to every run, e.g. ``"--arch bondmachine --reuse 8"``)
and prints one Markdown table row per model from its report.json:
device, utilisation, Fmax, critical path, logic levels, yosys's Xilinx counts
with and without DSPs, the netlist check and the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = [
    f"{ROOT / 'examples/models/digits_mlp.h5'}:{ROOT / 'examples/models/digits_calibration.npy'}",
    str(ROOT.parent / "shared" / "models" / "jet_tagger_qkeras_6bit.h5"),
]
HEADER = (
    "| model | architecture | device | logic cells used | Fmax (MHz) | critical path (ns: logic + routing) "
    "| logic levels | LUT / FF / DSP | LUT / FF (-nodsp) | netlist vs golden | wall (s) |\n"
    "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"
)


def cells_text(t: dict[str, Any]) -> str:
    """The logic cells a placed design uses, of the device's (— when it was not placed)."""
    used = next((u for k, u in (t.get("utilisation") or {}).items() if k in ("ICESTORM_LC", "TRELLIS_COMB")), None)
    return f"{used['used']:,} / {used['available']:,} ({used['percent']} %)" if used else "—"


def row(name: str, r: dict[str, Any], wall: float) -> str:
    hw = r["hardware"]
    res, t, net = hw["resources"], hw["timing"], r["verification"]["netlist"]
    cells = cells_text(t)
    path = t.get("critical_path")
    crit = f"{path['delay_ns']:.1f} ({path['logic_ns']:.1f} + {path['routing_ns']:.1f})" if path else "—"
    device = t.get("device") or t.get("note") or t.get("error", "")[:60]
    arch = hw["io"]["architecture"] + (f", R = {hw['reuse']}" if hw.get("reuse") else "")
    return (
        f"| {name} | {arch} | {device} | {cells} | {t.get('fmax_mhz') or '—'} | {crit} | {t.get('logic_levels')} "
        f"| {res['LUT']:,} / {res['FF']:,} / {res['DSP']:,} | {res['nodsp']['LUT']:,} / {res['nodsp']['FF']:,} "
        f"| {net['mismatches']} of {net['samples']} | {wall:.0f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=DEFAULTS, help="MODEL or MODEL:CALIBRATION.npy")
    ap.add_argument("--json", type=Path, help="also write the reports' hardware sections here")
    ap.add_argument("--options", default="", help="more options for every run, e.g. '--arch bondmachine --reuse 8'")
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "mlinfn-compress")
    rows, hardware = [], {}
    for spec in args.models:
        model, _, calib = spec.partition(":")
        if not Path(model).exists():
            print(f"skipping {model}: not found", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
            out = Path(tmp) / "out"
            cmd = [exe, model, "--synth", "-q", "-o", str(out), *args.options.split()]
            cmd += ["--calibration", calib] if calib else []
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            r = json.loads((out / "report.json").read_text())
        rows.append(row(Path(model).name, r, wall))
        hardware[Path(model).name] = r["hardware"] | {"netlist": r["verification"]["netlist"]}
    print(HEADER)
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(hardware, indent=2))


if __name__ == "__main__":
    main()
