"""Resources side by side: the naive design, the shift-and-add design, and da4ml's own Verilog.

For each network (the shared QKeras jet tagger; the float jet tagger quantised post-training
to 6-bit weights; the same, 70 % pruned), the command runs mlinfn-compress twice (``--arith
naive`` and the default ``shift-add``, both verified bit for bit), builds the same integer
network with da4ml 0.6.0's tracer (same weights, biases, input and activation formats) and
writes its pipelined Verilog at several latency cut-offs, then synthesises every design with
the identical yosys flow (``synth_xilinx -family xc7 -noiopad -flatten``) and measures the
longest path between registers in logic levels (yosys ``ltp`` with the flip-flops cut out).
It also times the bit-exact GHDL bench of the jet tagger on the mcode and LLVM backends.

Run (slow: about an hour; alone on the machine):

    .venv/bin/python benchmarks/bench_arith.py [--json out.json] [--cutoffs 2,3,4] [--only qkeras]

Needs ../shared/models (the shared jet taggers), yosys, GHDL and da4ml 0.6.0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from mlinfn_compress.cli import main  # noqa: E402
from mlinfn_compress.compress.fixed import FixedType  # noqa: E402
from mlinfn_compress.compress.flow.outdir import load_outdir  # noqa: E402
from mlinfn_compress.compress.ir import (  # noqa: E402
    Cast,
    Clip,
    Graph,
    Linear,
    golden,  # noqa: E402
)
from mlinfn_compress.synth.yosys import synthesise_verilog, vhdl_to_verilog  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
NETWORKS = {
    "qkeras": ("QKeras jet tagger, 6-bit weights", "jet_tagger_qkeras_6bit.h5", []),
    "ptq6": ("float jet tagger, post-training 6-bit weights", "jet_tagger_3layer.h5", ["--weight-bits", "6"]),
    "pruned": (
        "float jet tagger, 70 % pruned, 6-bit weights",
        "jet_tagger_3layer.h5",
        ["--weight-bits", "6", "--prune", "0.7"],
    ),
}
DA4ML_STATIC = ("shift_adder.v", "negative.v", "mux.v", "binop.v", "multiplier.v")


def compress(model: Path, extra: list[str], outdir: Path) -> dict[str, Any]:
    """One verified mlinfn-compress run; its report."""
    code = main([str(model), "-o", str(outdir), "-q", "--force", *extra])
    if code != 0:
        raise RuntimeError(f"mlinfn-compress {model.name} {' '.join(extra)} exited {code}")
    return json.loads((outdir / "report.json").read_text())


def synth_vhdl(outdir: Path, work: Path) -> dict[str, Any]:
    _, (vhdl, *_), _ = load_outdir(outdir)
    design = vhdl.design
    assert design is not None
    work.mkdir(parents=True, exist_ok=True)
    netlist = vhdl_to_verilog(design.files, design.top, work)
    return synthesise_verilog([netlist], design.top, work)


def _kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (keep_negative, integer bits without the sign, fractional bits)."""
    return (1 if t.signed else 0), (t.integer - 1 if t.signed else t.integer), t.width - t.integer


def da4ml_network(g: Graph) -> tuple[Any, Any]:
    """The same integer network traced by da4ml: (its input variables, its combinational logic).

    da4ml's quantiser rounds TRN or RND (half up); RND_CONV layers use RND here, which differs
    only on exact ties."""
    from da4ml.trace import FixedVariableArray, comb_trace
    from da4ml.trace.ops import quantize, relu

    assert g.input_type is not None
    k, i, f = _kif(g.input_type)
    n = g.input_size
    inp = FixedVariableArray.from_kif(np.full(n, k), np.full(n, i), np.full(n, f))
    values = {"input": inp}
    for node in g.nodes:
        x = values[node.inputs[0]]
        if isinstance(node, Linear):
            assert node.weight_type is not None and node.bias_type is not None
            w = np.asarray(node.weight_int, dtype=np.float64) * 2.0**-node.weight_type.frac
            b = np.asarray(node.bias_int, dtype=np.float64) * 2.0**-node.bias_type.frac
            y = x @ w.astype(np.float32) + b
        elif isinstance(node, Clip) and node.lo == 0 and node.hi is None:
            y = relu(x)
        elif isinstance(node, Cast):
            y = x
        else:
            raise ValueError(f"layer {node.name} ({node.kind}) has no da4ml counterpart here")
        t = node.result_type
        assert t is not None
        rounding = "TRN" if t.rounding == "TRN" else "RND"
        overflow = "WRAP" if t.overflow == "WRAP" else "SAT"
        values[node.name] = quantize(y, *_kif(t), overflow, rounding)
    return inp, comb_trace(inp, values[g.output.name])


def da4ml_verilog(comb: Any, cutoff: float, work: Path) -> tuple[list[Path], int]:
    from da4ml.codegen import VerilogModel

    model = VerilogModel(comb, "dais", work, latency_cutoff=cutoff)
    model.write()
    files = sorted((work / "src").glob("dais*.v"))
    files = [p for p in files if "wrapper" not in p.name]
    files += [work / "src" / "static" / name for name in DA4ML_STATIC]
    assert model._pipe is not None
    return files, len(model._pipe.solutions)


def agreement(g: Graph, comb: Any, n: int = 1000) -> float:
    """The fraction of samples on which da4ml's network computes exactly the golden outputs of
    the same network with RND in place of RND_CONV (da4ml has no round-half-to-even)."""
    g = Graph.from_json(g.to_json())
    for node in g.nodes:
        t = node.result_type
        if t is not None and t.rounding == "RND_CONV":
            node.result_type = t.with_modes("RND", t.overflow)
    assert g.input_type is not None
    rng = np.random.default_rng(0)
    x_int = np.clip(np.round(rng.normal(0, 1, (n, g.input_size)) * 2**g.input_type.frac), g.input_type.min_int,
                    g.input_type.max_int).astype(np.int64)  # fmt: skip
    out_t = g.output.result_type
    assert out_t is not None
    ours = golden.run(g, x_int)["logits"]
    theirs = np.asarray(comb.predict(x_int * 2.0**-g.input_type.frac)) * 2.0**out_t.frac
    return float(np.mean(np.all(np.round(theirs).astype(np.int64) == ours, axis=1)))


def sim_speed(outdir: Path, samples: int) -> list[dict[str, Any]]:
    """The textio bench on ``samples`` inputs with GHDL's mcode and LLVM backends."""
    from mlinfn_compress.sim.ghdl import simulate

    graph, (vhdl, *_), _ = load_outdir(outdir)
    design = vhdl.design
    assert design is not None
    x = np.load(outdir / "sim" / "inputs.npy")
    x = np.resize(x, (samples, x.shape[1]))
    expected = golden.run(graph, x)["logits"]
    rows = []
    for backend in ("mcode", "llvm"):
        if backend == "llvm" and shutil.which("ghdl-llvm") is None:
            continue
        os.environ["MLINFN_GHDL_BACKEND"] = backend
        with tempfile.TemporaryDirectory() as tmp:
            sim = simulate(design.files, design.testbench, design.top, x, design.n_out, design.argmax, Path(tmp))
        rows.append(
            {
                "backend": backend,
                "compile_s": round(sim.analyse_seconds, 2),
                "simulate_s": round(sim.seconds, 2),
                "samples_per_s": round(samples / sim.seconds),
                "bit_exact": bool(np.array_equal(sim.logits, expected)),
            }
        )
    os.environ.pop("MLINFN_GHDL_BACKEND", None)
    return rows


def run_network(key: str, cutoffs: list[float], work: Path) -> dict[str, Any]:
    title, file, extra = NETWORKS[key]
    model = MODELS / file
    result: dict[str, Any] = {"network": title, "model": file, "options": extra, "designs": []}
    for arith in ("naive", "shift-add"):
        outdir = work / f"{key}_{arith}"
        r = compress(model, [*extra, "--arith", arith], outdir)
        t = r["timings_s"]
        row = {
            "design": f"mlinfn-compress --arith {arith}",
            "latency_cycles": r["hardware"]["latency_cycles"],
            "load_to_hdl_s": round(t["load"] + t["quantise"] + t["emit"], 2),
            "bit_exact": r["verification"]["bit_exact"],
            "adders": r["hardware"].get("adders"),
            "register_bits_model": r["hardware"].get("register_bits"),
        }
        row.update(synth_vhdl(outdir, work / f"{key}_{arith}_synth"))
        result["designs"].append(row)
        print(json.dumps(row), flush=True)
    graph, _, _ = load_outdir(work / f"{key}_shift-add")
    t0 = time.perf_counter()
    _, comb = da4ml_network(graph)
    trace_s = time.perf_counter() - t0
    result["da4ml_agreement"] = agreement(graph, comb)
    for cutoff in cutoffs:
        dwork = work / f"{key}_da4ml_{cutoff:g}"
        dwork.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        files, latency = da4ml_verilog(comb, cutoff, dwork)
        row = {
            "design": f"da4ml 0.6.0, latency_cutoff={cutoff:g}",
            "latency_cycles": latency,
            "load_to_hdl_s": round(trace_s + time.perf_counter() - t0, 2),
        }
        row.update(synthesise_verilog(files, "dais", dwork))
        result["designs"].append(row)
        print(json.dumps(row), flush=True)
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = "| network | design | LUT | FF | LUT+FF | DSP | CARRY4 | latency (cycles) | logic levels | yosys (s) |"
    lines = [head + " load to HDL (s) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        for d in res["designs"]:
            lines.append(
                f"| {res['network']} | {d['design']} | {d['LUT']:,} | {d['FF']:,} | {d['LUT'] + d['FF']:,} | "
                f"{d['DSP']} | {d['CARRY']:,} | {d['latency_cycles']} | {d['logic_levels']} | {d['seconds']} | "
                f"{d['load_to_hdl_s']} |"
            )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            return "?"

    import importlib.metadata

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "yosys": version(["yosys", "-V"]),
        "ghdl": version(["ghdl", "--version"]),
        "da4ml": importlib.metadata.version("da4ml"),
        "date": time.strftime("%Y-%m-%d"),
    }


def main_bench() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--cutoffs", default="2,3,4", help="da4ml latency cut-offs (adders per stage), comma-separated")
    p.add_argument("--only", choices=list(NETWORKS), action="append", help="run only these networks")
    p.add_argument("--samples", type=int, default=20000, help="samples of the GHDL speed measurement")
    p.add_argument("--keep", type=Path, help="keep every design in this folder")
    args = p.parse_args()
    if not MODELS.is_dir():
        raise SystemExit(f"{MODELS}: the shared models are missing")
    cutoffs = [float(c) for c in args.cutoffs.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-arith-"))
    work.mkdir(parents=True, exist_ok=True)
    results = [run_network(key, cutoffs, work) for key in (args.only or list(NETWORKS))]
    speed = sim_speed(work / f"{(args.only or ['qkeras'])[0]}_shift-add", args.samples)
    speed_naive = sim_speed(work / f"{(args.only or ['qkeras'])[0]}_naive", args.samples)
    out = {"machine": machine(), "results": results, "ghdl_speed": {"shift-add": speed, "naive": speed_naive}}
    print(table(results))
    for name, rows in out["ghdl_speed"].items():
        for row in rows:
            print(name, json.dumps(row))
    for res in results:
        print(f"{res['network']}: da4ml's network equals the golden model on {res['da4ml_agreement']:.1%} of samples")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
