"""Everything the tool renders, written to one folder, to compare two versions of the code byte for byte.

    .venv/bin/python benchmarks/render_snapshot.py OUT [--graphs 300]
    .venv/bin/python benchmarks/render_snapshot.py --compare BEFORE AFTER

The first form renders (a) the built-in example model and models the script
builds with fixed weights (Keras, QKeras, a Keras CNN, PyTorch) through the
whole command, on every target and architecture, and (b) ``--graphs`` random
graphs (``random_graph(seed)``, quantised as the differential benchmark
does) on every target that takes them: VHDL parallel, stream and
bondmachine, the hls4ml project, the BondMachine export.  It keeps the
VHDL, the HLS project, the BondMachine export and design.json of each, and a
``manifest.json`` of their SHA-256 sums.  The second form compares two such
folders and lists every file that differs, is missing or is new.

A refactoring that keeps the behaviour must leave the manifest unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEPT = ("vhdl", "hls", "bondmachine", "design.json")  # what a run's folder holds that must not change
HLS_SKIPPED = ("hls4ml_config.yml",)  # hls4ml writes the output path into it
BUILT = (".so", ".o")  # the C-simulation's build, not what was rendered


def _hash_tree(folder: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in HLS_SKIPPED and path.suffix not in BUILT:
            sums[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def _keep(run_dir: Path, dest: Path, work: Path) -> None:
    """Copy what must not change, with the two things that change from run to run made constant: the
    temporary folder the models lie in, and the random stamp hls4ml gives each C-simulation build."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        src = run_dir / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.is_file():
            shutil.copy(src, dest / name)
    for bench in (run_dir / "sim").glob("*.vhd"):  # the textio bench
        (dest / "sim").mkdir(exist_ok=True)
        shutil.copy(bench, dest / "sim" / bench.name)
    for path in dest.rglob("*"):
        if path.is_file() and path.suffix not in BUILT:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            fixed = re.sub(r"^LIB_STAMP=\w+$", "LIB_STAMP=<stamp>", text.replace(str(work), "<work>"), flags=re.M)
            if fixed != text:
                path.write_text(fixed)


# ---- (a) models through the whole command ----

BUILD = r"""
import os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from pathlib import Path
import numpy as np
import mlinfn_compress  # noqa: F401
import tf_keras as k
out = Path(sys.argv[1])
rng = np.random.default_rng(1)

def fill(model, zero=0.5):
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            new = [rng.normal(0, 0.5, w.shape) * (rng.random(w.shape) > zero) if i == 0 else rng.normal(0, 0.2, w.shape)
                   for i, w in enumerate(ws)]
            if type(layer).__name__ == "BatchNormalization":
                new = [np.abs(rng.normal(1, 0.2, w.shape)) + (0.5 if i == 3 else 0) for i, w in enumerate(ws)]
            layer.set_weights(new)
    return model

cnn = fill(k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Conv2D(4, 3, padding="same", activation="relu"),
                         k.layers.MaxPooling2D(2), k.layers.Conv2D(6, 3), k.layers.BatchNormalization(),
                         k.layers.ReLU(), k.layers.Flatten(), k.layers.Dense(5, activation="softmax")], name="cnn"))
cnn.save(out / "cnn.h5")
from qkeras import QActivation, QDense, quantized_bits, quantized_relu
q = lambda: quantized_bits(6, 0, alpha=1)
qmlp = fill(k.Sequential([k.layers.Input((16,)), QDense(24, kernel_quantizer=q(), bias_quantizer=q()),
                          QActivation(quantized_relu(6, 0)), QDense(5, kernel_quantizer=q(), bias_quantizer=q())],
                         name="qmlp"))
qmlp.save(out / "qmlp.h5")
import torch
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(16, 3)).eval()
torch.save(net, out / "conv1d.pt")
"""

RUNS: list[tuple[str, str, list[str]]] = [
    ("example", "digits_mlp.h5", []),
    ("example_both", "digits_mlp.h5", ["--target", "both"]),
    ("example_stream", "digits_mlp.h5", ["--io", "stream"]),
    ("example_bondmachine_r4", "digits_mlp.h5", ["--arch", "bondmachine", "--reuse", "4"]),
    ("example_export", "digits_mlp.h5", ["--target", "bondmachine"]),
    ("example_table_softmax", "digits_mlp.h5", ["--softmax", "table"]),
    ("example_naive", "digits_mlp.h5", ["--arith", "naive"]),
    ("example_dsp_9ns", "digits_mlp.h5", ["--dsp", "--clock-period", "9"]),
    ("example_bits6", "digits_mlp.h5", ["--bits", "6", "--target", "hls"]),
    ("cnn_parallel", "cnn.h5", ["--io", "parallel"]),
    ("cnn_stream", "cnn.h5", ["--io", "stream", "--target", "both"]),
    ("qmlp", "qmlp.h5", ["--target", "both"]),
    ("qmlp_bondmachine", "qmlp.h5", ["--arch", "bondmachine", "--reuse", "3"]),
    ("conv1d", "conv1d.pt", ["--input-shape", "2,8", "--target", "both"]),
    ("conv1d_stream", "conv1d.pt", ["--input-shape", "2,8", "--io", "stream"]),
]


def render_models(dest: Path, work: Path) -> None:
    models = work / "models"
    models.mkdir()
    shutil.copy(ROOT / "examples" / "models" / "digits_mlp.h5", models)
    subprocess.run([sys.executable, "-c", BUILD, str(models)], check=True, capture_output=True)
    code = "import sys; from mlinfn_compress.cli import main; sys.exit(main(sys.argv[1:]))"
    for name, model, options in RUNS:
        t0 = time.perf_counter()
        calib = ["--calibration", str(ROOT / "examples" / "models" / "digits_calibration.npy")]
        args = [str(models / model), "-o", str(work / name), "--simulate", "64", "-q", *options]
        if model.startswith("digits"):
            args += calib
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr}")
        _keep(work / name, dest / "models" / name, work)
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", flush=True)


# ---- (b) random graphs on every target ----


def render_graphs(dest: Path, work: Path, count: int) -> None:
    from mlinfn_compress.backends.hls import render_hls
    from mlinfn_compress.backends.neuralbond.export import export
    from mlinfn_compress.backends.vhdl import render
    from mlinfn_compress.compress.flow.inputs import verification_inputs
    from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
    from mlinfn_compress.errors import UserError
    from mlinfn_compress.testing.random_graphs import random_graph

    t0 = time.perf_counter()
    for seed in range(count):
        rng = np.random.default_rng(seed)
        g = random_graph(seed)
        cfg = QuantConfig(weight_bits=int(rng.integers(3, 11)), act_bits=int(rng.integers(5, 15)))
        quantise(g, cfg, default_inputs(500, g.input_shape, seed))
        x, _, _ = verification_inputs(16, g.input_size, g.input_type, None, seed)
        out = dest / "graphs" / f"{seed:03d}"
        out.mkdir(parents=True)
        described: dict[str, Any] = {"ir": g.to_json()}
        for arch, io in (("dataflow", "parallel"), ("dataflow", "stream"), ("bondmachine", "stream")):
            label = "bondmachine" if arch == "bondmachine" else io
            try:
                d = render(g, work / f"{seed}" / label / "vhdl", work / f"{seed}" / label / "sim", io=io, arch=arch)
            except UserError as e:
                described[label] = f"refused: {e}"
                continue
            _keep(work / f"{seed}" / label, out / label, work)
            described[label] = d.to_json()
        try:
            render_hls(g, work / f"{seed}" / "hls" / "hls", "Vitis", tb_inputs=x)
            _keep(work / f"{seed}" / "hls", out, work)
        except (ValueError, UserError) as e:
            described["hls"] = f"refused: {e}"
        try:
            export(g, out / "bondmachine", str(seed))
        except UserError as e:
            described["bondmachine"] = f"refused: {e}"
        (out / "design.json").write_text(json.dumps(described, sort_keys=True))
        if seed % 25 == 24:
            print(f"  {seed + 1} graphs, {time.perf_counter() - t0:.0f} s", flush=True)


def snapshot(dest: Path, count: int, models: bool = True) -> None:
    if dest.exists():
        raise SystemExit(f"{dest} exists: give a new folder")
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="mlinfn-snapshot-") as tmp:
        if models:
            print("models through the command:", flush=True)
            render_models(dest, Path(tmp))
        print(f"{count} random graphs:", flush=True)
        render_graphs(dest, Path(tmp), count)
    manifest = _hash_tree(dest)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=0, sort_keys=True))
    print(f"{len(manifest)} files in {dest}/manifest.json")


def compare(before: Path, after: Path) -> int:
    a = json.loads((before / "manifest.json").read_text())
    b = json.loads((after / "manifest.json").read_text())
    if not any(k.startswith("models/") for k in b):  # a --graphs-only snapshot: compare the graphs
        a = {k: v for k, v in a.items() if not k.startswith("models/")}
    changed = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
    missing, new = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    for title, names in (("differ", changed), ("missing after", missing), ("new after", new)):
        for name in names:
            print(f"{title}: {name}")
    same = len(a.keys() & b.keys()) - len(changed)
    print(f"{same} of {len(a)} files byte-identical; {len(changed)} differ, {len(missing)} missing, {len(new)} new")
    return 0 if not (changed or missing or new) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--graphs", type=int, default=300)
    parser.add_argument("--compare", action="store_true", help="compare two snapshot folders")
    parser.add_argument("--graphs-only", action="store_true", help="leave out the runs through the command (quick)")
    args = parser.parse_args()
    os.environ.setdefault("MLINFN_OFFLINE", "1")
    if args.compare:
        if len(args.folders) != 2:
            parser.error("--compare takes two folders")
        sys.exit(compare(*args.folders))
    if len(args.folders) != 1:
        parser.error("give one output folder")
    snapshot(args.folders[0], args.graphs, models=not args.graphs_only)


if __name__ == "__main__":
    main()
