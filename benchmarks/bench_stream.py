"""Benchmark the streaming VHDL architecture on a digits-like CNN (8x8x1) and a U-Net on 32x32 images.

Run:  .venv/bin/python benchmarks/bench_stream.py [--samples 1000] [--no-synth] [--json out.json] [--keep]

For each network (built in Python with seeded random weights, tests/stream_graphs.py): quantise
(512 calibration images) and render the streaming design (IR to VHDL seconds), the latency and initiation interval the
renderer states and the ones the GHDL textio bench measures, bit-exact verification against the
golden model and its throughput (samples/s of the GHDL run), the cocotb protocol tests
(back-pressure, gaps, reset), and the --synth resource estimate (ghdl --synth + yosys
synth_xilinx).  Everything is written under a temporary directory (kept with --keep).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from stream_graphs import digits_cnn, unet_graph  # noqa: E402

from mlinfn_compress.backends.vhdl import choose_io, render  # noqa: E402
from mlinfn_compress.backends.vhdl.target import PROTOCOL_CYCLES  # noqa: E402
from mlinfn_compress.compress.fixed import quantize  # noqa: E402
from mlinfn_compress.compress.ir import Graph, golden  # noqa: E402
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise  # noqa: E402
from mlinfn_compress.sim.cocotb_runner import run_protocol_tests  # noqa: E402
from mlinfn_compress.sim.ghdl import simulate_design  # noqa: E402
from mlinfn_compress.synth.yosys import synthesise  # noqa: E402

NETWORKS: dict[str, Callable[[], Graph]] = {
    "digits_cnn_8x8": lambda: digits_cnn(np.random.default_rng(0)),
    "unet_32x32": lambda: unet_graph(np.random.default_rng(0), size=32, width=4),
}
QUANT = QuantConfig(weight_bits=6, act_bits=10)
CALIBRATION = 512  # standard normal images that set the activation ranges


def bench(name: str, make: Callable[[], Graph], samples: int, synth: bool, tmp: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    graph = make()
    quantise(graph, QUANT, default_inputs(CALIBRATION, graph.input_shape, 0))
    t_q = time.perf_counter()
    design = render(graph, tmp / name / "vhdl", tmp / name / "sim", io="stream")
    t_r = time.perf_counter()
    assert graph.input_type is not None
    x = quantize(default_inputs(samples, graph.input_shape, 1) * 2, graph.input_type).reshape(samples, -1)
    expected = golden.run(graph, x)
    sim = simulate_design(design, x, tmp / name / "work")
    equal = int(np.sum(np.all(sim.logits == expected["logits"], axis=1)))
    if graph.has_argmax:
        assert sim.argmax is not None
        equal = int(np.sum(np.all(sim.logits == expected["logits"], axis=1) & (sim.argmax == expected["argmax"])))
    k = min(samples, max(3, design.steady_from, PROTOCOL_CYCLES // design.initiation_interval))
    meta = (design.w_in, design.n_in, design.in_words, design.w_out, design.n_out, design.out_words,
            design.out_signed, design.latency, design.initiation_interval, design.steady_from)  # fmt: skip
    t1 = time.perf_counter()
    argmax = expected["argmax"][:k] if graph.has_argmax else None
    cocotb_dir = tmp / name / "cocotb"
    proto = run_protocol_tests(
        design.files, design.top, x[:k], expected["logits"][:k], argmax, meta, cocotb_dir, "stream_protocol_test"
    )
    proto_s = time.perf_counter() - t1
    rule, why = choose_io(graph)
    row: dict[str, Any] = {
        "network": name,
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output.shape),
        "nodes": len(graph.nodes),
        "size_rule": {"architecture": rule, "reason": why},
        "ir_to_vhdl_s": round(t_r - t0, 3),
        "quantise_s": round(t_q - t0, 3),
        "render_s": round(t_r - t_q, 3),
        "vhdl_files": len(design.files),
        "stated": {"latency_cycles": design.latency, "initiation_interval": design.initiation_interval},
        "measured": sim.timing,
        "samples": samples,
        "bit_exact_samples": equal,
        "ghdl_analysis_s": round(sim.analyse_seconds, 3),
        "ghdl_run_s": round(sim.seconds, 3),
        "samples_per_s": round(samples / sim.seconds, 1),
        "protocol": {"tests": proto.tests, "failed": proto.failed, "samples": k, "seconds": round(proto_s, 1)},
        "resources": None,
    }
    if synth:
        try:
            row["resources"] = synthesise(design.files, design.top)
        except RuntimeError as e:
            row["resources"] = {"error": str(e)[:500]}
    print(json.dumps(row), flush=True)
    return row


def machine() -> dict[str, str]:
    ghdl = subprocess.run(["ghdl", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"python": platform.python_version(), "machine": platform.machine(), "ghdl": ghdl}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--no-synth", action="store_true", help="skip the yosys resource estimates (minutes)")
    ap.add_argument("--only", choices=sorted(NETWORKS), help="one network only")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    rows = []
    try:
        for name, make in NETWORKS.items():
            if args.only in (None, name):
                rows.append(bench(name, make, args.samples, not args.no_synth, tmp))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {"machine": machine(), "networks": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
