"""Differential check of hundreds of random graphs: how many are bit exact in every backend.

    .venv/bin/python benchmarks/bench_random_graphs.py [COUNT] [FIRST_SEED] [--backends vhdl,vhdl_stream,...]

Prints one line per failing graph and a summary; results go in BENCHMARKS.md.
Every backend by default; the HLS C-simulation (a g++ build per graph) is the
slow one, so a long run may leave it to a shorter one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mlinfn_compress.compress.flow.inputs import verification_inputs
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.testing.differential import BACKENDS, check_backends
from mlinfn_compress.testing.random_graphs import random_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=300)
    parser.add_argument("first", type=int, nargs="?", default=0, help="first seed")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, of: " + ", ".join(BACKENDS))
    args = parser.parse_args()
    count, first = args.count, args.first
    backends = tuple(args.backends.split(","))
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"unknown backends {sorted(unknown)}; use {', '.join(BACKENDS)}")
    passed: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlinfn-random-") as tmp:
        for seed in range(first, first + count):
            rng = np.random.default_rng(seed)
            g = random_graph(seed)
            kinds.update(n.kind for n in g.nodes)
            cfg = QuantConfig(weight_bits=int(rng.integers(3, 11)), act_bits=int(rng.integers(5, 15)))
            quantise(g, cfg, default_inputs(500, g.input_shape, seed))
            x, _, _ = verification_inputs(100, g.input_size, g.input_type, None, seed)
            result = check_backends(g, x, Path(tmp) / str(seed), backends)
            for backend, bad in result.items():
                if bad == 0:
                    passed[backend] += 1
                else:
                    print(f"seed {seed}: {backend} differs on {bad} of {len(x)} rows: {[n.kind for n in g.nodes]}")
    seconds = time.perf_counter() - t0
    for backend in backends:
        print(f"{backend}: {passed[backend]} of {count} random graphs bit exact")
    print(f"operations drawn: {dict(kinds.most_common())}")
    print(f"{count} graphs in {seconds:.0f} s")


if __name__ == "__main__":
    main()
