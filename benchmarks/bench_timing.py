"""Asked clock against routed Fmax, per design and device family: the timing table of BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_timing.py [--family ecp5|ice40] [--mhz F] [--models M[:CAL] ...]
        [--options "..."] [--calibrate]

Runs ``mlinfn-compress MODEL --synth --family FAMILY --clock-period 1000/F``
per model (default: two small MLPs this script builds with fixed weights, a
QKeras 8-9-2 and a float 8-6-3, and the shared QKeras jet tagger where
../shared/models holds it) and prints one Markdown row per design from its
report.json: part, utilisation, asked clock, routed Fmax, met or not,
latency in cycles and ns at the asked clock, throughput, the delay model's
longest stage and where the critical path lies.  ``--calibrate`` adds the
ratio of the routed critical path to the model's longest stage of the layer
it lies in, the figure the family's delay model is calibrated by
(``backends/vhdl/delay.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_synth import cells_text  # benchmarks/ is the script's folder, so first on sys.path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models" / "jet_tagger_qkeras_6bit.h5"
DEFAULT_MHZ = {"ecp5": 150.0, "ice40": 50.0}
HEADER = (
    "| design | part | logic cells | asked (MHz) | Fmax (MHz) | met | latency (cycles / ns) | throughput (Msamples/s) "
    "| model's longest stage (ns) | critical path (ns) in | wall (s) |\n"
    "|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|"
)


def build_models(dest: Path) -> list[str]:
    """The two small MLPs of the iCE40 rows, with fixed weights."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tf_keras as k
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    def sparse(rng: Any, shape: tuple[int, ...], scale: float, zeros: float) -> Any:
        w = rng.normal(0.0, scale, shape)
        w[rng.random(shape) < zeros] = 0.0
        return w

    rng = np.random.default_rng(5)
    q = lambda: quantized_bits(4, 0, alpha=1)  # noqa: E731
    layers = [k.layers.Input((8,)), QDense(9, kernel_quantizer=q(), bias_quantizer=q(), name="fc1"),
              QActivation(quantized_relu(6, 0), name="relu1"),
              QDense(2, kernel_quantizer=q(), bias_quantizer=q(), name="out")]  # fmt: skip
    qmlp = k.Sequential(layers, name="qmlp_8_9_2")
    for layer in qmlp.layers:
        if layer.get_weights():
            w, b = layer.get_weights()
            layer.set_weights([sparse(rng, w.shape, 0.5, 0.3), rng.normal(0, 0.3, b.shape)])
    rng = np.random.default_rng(3)
    mlp = k.Sequential([k.layers.Input((8,)), k.layers.Dense(6, activation="relu"), k.layers.Dense(3)],
                       name="mlp_8_6_3")  # fmt: skip
    for layer in mlp.layers:
        w, b = layer.get_weights()
        layer.set_weights([sparse(rng, w.shape, 0.5, 0.5), rng.normal(0, 0.1, b.shape)])
    paths = []
    for model in (qmlp, mlp):
        path = dest / f"{model.name}.h5"
        model.save(path, include_optimizer=False)
        paths.append(str(path))
    return paths


def run(model: str, family: str, mhz: float, options: list[str], work: Path) -> tuple[dict[str, Any], float]:
    path, _, calibration = model.partition(":")
    out = work / Path(path).stem
    cmd = [sys.executable, "-m", "mlinfn_compress.cli", path, "--synth", "--family", family,
           "--clock-period", f"{1000.0 / mhz:.4g}", "-o", str(out), "-q", *options]  # fmt: skip
    if calibration:
        cmd += ["--calibration", calibration]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads((out / "report.json").read_text()), time.perf_counter() - t0


def row(name: str, r: dict[str, Any], wall: float, calibrate: bool) -> str:
    hw = r["hardware"]
    t = hw["timing"]
    cells = cells_text(t)
    fmax, cycles, ii = t.get("fmax_mhz"), hw["latency_cycles"], hw["initiation_interval"]
    latency = f"{cycles} / {hw['latency_ns']}" if hw.get("latency_ns") is not None else f"{cycles} / —"
    stages = {row["name"]: row["stage_ns"] for row in r["layers"] if "stage_ns" in row}
    path = t.get("critical_path") or {}
    where = path.get("to", {}).get("layer") or "—"
    crit = f"{path['delay_ns']:.2f} {where}" if path else "—"
    if calibrate and where in stages:
        crit += f" (x{path['delay_ns'] / stages[where]:.2f} the model)"
    return (
        f"| {name} | {t.get('device') or t.get('note')} | {cells} | {t.get('asked_mhz')} | {fmax or '—'} "
        f"| {'met' if t.get('met') else 'not met'} | {latency} | {round(fmax / ii, 1) if fmax else '—'} "
        f"| {max(stages.values(), default=0.0):.2f} | {crit} | {wall:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(DEFAULT_MHZ), default="ecp5")
    parser.add_argument("--mhz", type=float, help="the asked clock (default: 150 on ECP5, 50 on iCE40)")
    parser.add_argument("--models", nargs="*", help="model files (MODEL or MODEL:CALIBRATION.npy)")
    parser.add_argument("--options", default="", help="more options for every run")
    parser.add_argument("--calibrate", action="store_true", help="print routed / modelled per critical path")
    args = parser.parse_args()
    mhz = args.mhz or DEFAULT_MHZ[args.family]
    print(f"# {args.family}, asked {mhz} MHz; {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="mlinfn-timing-") as tmp:
        models = args.models or [*build_models(Path(tmp)), *([str(SHARED)] if SHARED.exists() else [])]
        for model in models:
            report, wall = run(model, args.family, mhz, args.options.split(), Path(tmp))
            print(row(Path(model.partition(":")[0]).stem, report, wall, args.calibrate), flush=True)


if __name__ == "__main__":
    main()
