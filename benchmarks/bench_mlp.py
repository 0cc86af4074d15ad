"""Benchmark a 16-64-32-32-5 MLP: load-to-VHDL time, GHDL bit-exact verification, and hls4ml C simulation.

Run:  .venv/bin/python benchmarks/bench_mlp.py [--samples 10000] [--json out.json] [--keep]
Everything is written under a temporary directory (kept with --keep).
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
import traceback
from pathlib import Path
from typing import Any

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hls4ml  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow  # noqa: E402, F401  (imported here so that no timing includes it)
import tf_keras  # noqa: E402
from hls4ml.converters import keras_v2_to_hls  # noqa: E402
from hls4ml.utils.config import create_config  # noqa: E402
from qkeras import QActivation, QDense, quantized_bits, quantized_relu  # noqa: E402
from qkeras.utils import load_qmodel  # noqa: E402

import mlinfn_compress.compress.frameworks.keras  # noqa: E402, F401
from mlinfn_compress.backends.vhdl import VhdlDesign, render  # noqa: E402
from mlinfn_compress.compress.flow.inputs import verification_inputs  # noqa: E402
from mlinfn_compress.compress.frameworks import LoadedModel, load_model  # noqa: E402
from mlinfn_compress.compress.ir import golden  # noqa: E402
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise  # noqa: E402
from mlinfn_compress.sim.ghdl import simulate  # noqa: E402

SHAPE = (16, 64, 32, 32, 5)
SPARSITY = 0.7
SEED = 0


def make_weights() -> list[np.ndarray]:
    """Random normal kernels (std 1/sqrt(fan_in)) with ~70% of entries zeroed, small random biases."""
    rng = np.random.default_rng(SEED)
    out: list[np.ndarray] = []
    for n_in, n_out in zip(SHAPE[:-1], SHAPE[1:], strict=True):
        kernel = rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out))
        kernel[rng.random((n_in, n_out)) < SPARSITY] = 0.0
        out += [kernel.astype(np.float32), rng.normal(0.0, 0.1, n_out).astype(np.float32)]
    return out


def build_models(tmp: Path) -> dict[str, Path]:
    tf_keras.utils.set_random_seed(SEED)
    weights = make_weights()
    inp = tf_keras.Input((SHAPE[0],), name="x")
    h = inp
    for i, units in enumerate(SHAPE[1:]):
        h = tf_keras.layers.Dense(units, activation="relu" if i < 3 else "softmax", name=f"fc{i + 1}")(h)
    float_model = tf_keras.Model(inp, h, name="mlp_float")
    q = quantized_bits(6, 0, alpha=1)
    inp = tf_keras.Input((SHAPE[0],), name="x")
    h = inp
    for i, units in enumerate(SHAPE[1:]):
        h = QDense(units, kernel_quantizer=q, bias_quantizer=q, name=f"fc{i + 1}")(h)
        h = QActivation(quantized_relu(6, 0), name=f"relu{i + 1}")(h) if i < 3 else h
    qkeras_model = tf_keras.Model(inp, tf_keras.layers.Activation("softmax", name="softmax")(h), name="mlp_qkeras")
    paths = {}
    for model in (float_model, qkeras_model):
        model.set_weights(weights)
        paths[model.name] = tmp / f"{model.name}.h5"
        model.save(paths[model.name])
    return paths


def load_to_vhdl(h5: Path, outdir: Path) -> tuple[LoadedModel, VhdlDesign, float]:
    t0 = time.perf_counter()
    loaded = load_model(h5)
    g = loaded.graph
    quantise(g, QuantConfig(), default_inputs(4096, g.input_size))
    design = render(g, outdir / "vhdl", outdir / "sim")
    return loaded, design, time.perf_counter() - t0


def bench_ours(h5: Path, tmp: Path, n: int) -> tuple[dict[str, Any], LoadedModel, np.ndarray]:
    times = []
    for run in range(3):
        loaded, design, seconds = load_to_vhdl(h5, tmp / f"{h5.stem}_run{run}")
        times.append(seconds)
    g = loaded.graph
    t0 = time.perf_counter()
    assert g.input_type is not None
    x_int, _, _ = verification_inputs(n, g.input_size, g.input_type, None, seed=0)
    expected = golden.run(g, x_int)
    t1 = time.perf_counter()
    res = simulate(design.files, design.testbench, design.top, x_int, design.n_out, design.argmax, tmp / "ghdl_work")
    logits_ok = res.logits.shape == expected["logits"].shape and bool((res.logits == expected["logits"]).all())
    argmax_ok = not design.argmax or (res.argmax is not None and bool((res.argmax == expected["argmax"]).all()))
    wall = time.perf_counter() - t0
    row = {
        "load_to_vhdl_best_s": min(times),
        "load_to_vhdl_runs_s": times,
        "golden_s": t1 - t0,
        "ghdl_analyse_s": res.analyse_seconds,
        "ghdl_run_s": res.seconds,
        "ghdl_samples_per_s": n / res.seconds,
        "verify_wall_s": wall,
        "logits_bit_exact": logits_ok,
        "argmax_bit_exact": argmax_ok,
        "latency_cycles": design.latency,
        "weight_zero_fraction": float(np.mean([(nd.weight == 0).mean() for nd in g.nodes if nd.kind == "dense"])),
    }
    if loaded.reference_exact:  # QKeras's own inference must equal the golden model
        out_t = g.output.result_type
        assert out_t is not None
        ref = loaded.reference(x_int * 2.0**-g.input_type.frac)
        row["qkeras_vs_golden_rows_differ"] = int((ref * 2.0**out_t.frac != expected["logits"]).any(axis=1).sum())
    return row, loaded, x_int


class _ArchWithLayers(dict):  # type: ignore[type-arg]
    """A model's JSON architecture that also answers ``get_layer`` (what hls4ml's KerasModelReader reads weights with).

    hls4ml 1.3.0 picks the Keras 3 parser whenever Keras 3 is installed, which fails on tf_keras models; its
    documented "dict" path goes through the Keras 2 parser but then reads the weights with ``dict.get_layer``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__(json.loads(model.to_json()))
        self.get_layer = model.get_layer


def bench_hls4ml(h5: Path, loaded: LoadedModel, x_int: np.ndarray, tmp: Path, accum_auto: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"config": "accum=auto" if accum_auto else "config_from_keras_model defaults"}
    try:
        t0 = time.perf_counter()
        full = load_qmodel(str(h5), compile=False)
        # hls4ml's softmax is a lookup-table approximation: convert the logits (pre-softmax) model to compare exactly.
        model = tf_keras.Model(full.input, full.layers[-2].output, name="mlp_qkeras_logits")
        t1 = time.perf_counter()
        hls_cfg = hls4ml.utils.config_from_keras_model(_ArchWithLayers(model), granularity="name")
        if accum_auto:
            for layer_cfg in hls_cfg["LayerName"].values():
                if "weight" in layer_cfg["Precision"]:  # the dense layers
                    layer_cfg["Precision"]["accum"] = "auto"
        config = create_config(output_dir=str(tmp / f"hls4ml_{int(accum_auto)}"), project_name="mlp", backend="Vitis")
        config.update(KerasModel=model, InputData=None, OutputPredictions=None)
        config["HLSConfig"] = {"Model": {**hls_cfg["Model"], "BitExact": None}, "LayerName": hls_cfg["LayerName"]}
        hls_model = keras_v2_to_hls(config)
        t2 = time.perf_counter()
        hls_model.compile()
        t3 = time.perf_counter()
        assert loaded.graph.input_type is not None
        x = (x_int * 2.0**-loaded.graph.input_type.frac).astype(np.float32)
        y = np.asarray(hls_model.predict(x), dtype=np.float64).reshape(len(x), -1)
        t4 = time.perf_counter()
        ref = loaded.reference(x)
        row.update(load_s=t1 - t0, convert_s=t2 - t1, compile_s=t3 - t2, predict_s=t4 - t3, total_s=t4 - t1)
        row["rows_differ_from_qkeras"] = int((y != ref).any(axis=1).sum())
        row["argmax_differs_from_qkeras"] = int((y.argmax(axis=1) != ref.argmax(axis=1)).sum())
        layers = hls_model.get_layers()
        row["accum_types"] = [str(lay.types["accum_t"].precision) for lay in layers if "accum_t" in lay.types]
    except Exception as e:  # noqa: BLE001 - record the failure in the results
        row["error"] = f"{type(e).__name__}: {e}"[:500]
        row["traceback"] = traceback.format_exc()[-2000:]
    return row


def machine() -> dict[str, Any]:
    try:
        ghdl = subprocess.run(["ghdl", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        ghdl = "unavailable"
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "")
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "ghdl": ghdl,
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "hls4ml": hls4ml.__version__,
    }


def fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.0f}" if v >= 1000 else f"{v:.3f}"
    return "—" if v is None else str(v)


def table(results: dict[str, Any]) -> str:
    m, ours, hls = results["machine"], results["ours"], results["hls4ml"]
    n = results["samples"]
    lines = [
        f"Machine: {m['processor']} ({m['cpu_model']}), {m['cpu_count']} CPUs; {m['ghdl']}; "
        f"hls4ml {m['hls4ml']}; {n} samples",
        "",
        "| mlinfn_compress | " + " | ".join(ours) + " |",
        "|---|" + "---:|" * len(ours),
    ]
    keys = [
        ("load + quantise + render, best of 3 (s)", "load_to_vhdl_best_s"),
        ("golden model + inputs (s)", "golden_s"),
        ("GHDL analysis (s)", "ghdl_analyse_s"),
        ("GHDL run (s)", "ghdl_run_s"),
        ("GHDL throughput (samples/s)", "ghdl_samples_per_s"),
        ("verification end-to-end wall (s)", "verify_wall_s"),
        ("logits bit-exact vs golden", "logits_bit_exact"),
        ("argmax bit-exact vs golden", "argmax_bit_exact"),
        ("QKeras predict rows ≠ golden", "qkeras_vs_golden_rows_differ"),
        ("pipeline latency (cycles)", "latency_cycles"),
        ("fraction of zero weights", "weight_zero_fraction"),
    ]
    for label, key in keys:
        lines.append(f"| {label} | " + " | ".join(fmt(r.get(key)) for r in ours.values()) + " |")
    cols = ["load_s", "convert_s", "compile_s", "predict_s", "total_s", "rows_differ_from_qkeras"]
    cols.append("argmax_differs_from_qkeras")
    heads = ["h5 load (s, not in total)", "convert (s)", "compile (s)", "predict (s)", "total (s)"]
    heads += ["logit rows ≠ QKeras", "argmax ≠ QKeras"]
    lines += ["", "| hls4ml (QKeras logits model, Vitis C sim) | " + " | ".join(heads) + " | error |"]
    lines.append("|---|" + "---:|" * len(cols) + "---|")
    for r in hls:
        err = " ".join(r.get("error", "").replace("|", "/").split())
        lines.append(f"| {r['config']} | " + " | ".join(fmt(r.get(c)) for c in cols) + f" | {err} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_mlp_"))
    results: dict[str, Any] = {"samples": args.samples, "machine": machine(), "ours": {}, "hls4ml": []}
    paths = build_models(tmp)
    runs = {name: bench_ours(h5, tmp / name, args.samples) for name, h5 in paths.items()}
    results["ours"] = {name: run[0] for name, run in runs.items()}
    _, loaded, x_int = runs["mlp_qkeras"]
    for accum_auto in (False, True):
        results["hls4ml"].append(bench_hls4ml(paths["mlp_qkeras"], loaded, x_int, tmp, accum_auto))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.keep:
        print(f"\nkept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
