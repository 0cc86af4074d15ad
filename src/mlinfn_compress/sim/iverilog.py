"""The netlist is the design: simulate the synthesised Verilog and compare it with the golden model.

``ghdl --synth`` turns the VHDL into the netlist that synthesis actually
reads (GHDL's Verilog output); Icarus Verilog runs it on packed input vectors,
one per clock (a bondmachine or streaming design: each word when its in_ready
takes it, a streaming design's sample being ``in_words`` words), from a
bench rendered from ``netlist_tb.v.j2``, and every output is compared bit for
bit with the golden model.  A netlist that differs
from the VHDL (a synthesis bug, an edited file) shows up as mismatches.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl import VhdlDesign
from mlinfn_compress.compress.flow.compare import compare
from mlinfn_compress.sim import tools
from mlinfn_compress.sim.ghdl import run_tool
from mlinfn_compress.templating import environment

MIN_SAMPLES = 200  # the check never runs on fewer vectors
MAX_SAMPLES = 1000  # the netlist simulates slower than the VHDL bench: the first 1,000 are enough
UNDEFINED = -(2**62)  # stands for an output with undefined (x or z) bits
IN_FILE = "vectors.hex"
OUT_FILE = "outputs.hex"


def iverilog_paths() -> tuple[str, str]:
    """The Icarus Verilog compiler and runtime (ToolMissing when they are not installed)."""
    return tools.find("iverilog"), tools.find("vvp")


def iverilog_version() -> str:
    iverilog, _ = iverilog_paths()
    out = subprocess.run([iverilog, "-V"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split(" (")[0].strip() if out else "Icarus Verilog"


def pack_hex(rows: np.ndarray, width: int) -> list[str]:
    """Each row (elements 0..n-1) as one hex word, element i at bits [width*i+width-1 : width*i]."""
    mask = (1 << width) - 1
    digits = (rows.shape[1] * width + 3) // 4
    words = []
    for row in rows:
        word = 0
        for i, v in enumerate(int(x) for x in row):
            word |= (v & mask) << (i * width)
        words.append(f"{word:0{digits}x}")
    return words


def unpack_hex(word: str, n: int, width: int, signed: bool) -> list[int] | None:
    """The n elements of a hex word (None if it holds undefined bits)."""
    try:
        value = int(word, 16)
    except ValueError:
        return None
    mask, top = (1 << width) - 1, 1 << (width - 1)
    out = []
    for i in range(n):
        v = (value >> (i * width)) & mask
        out.append(v - (1 << width) if signed and v & top else v)
    return out


def netlist_vectors(x_int: np.ndarray, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    """The first MAX_SAMPLES verification inputs, topped up to MIN_SAMPLES with uniform random ones."""
    x = np.asarray(x_int, dtype=np.int64)
    x = x.reshape(len(x), -1)[:MAX_SAMPLES] if x.size else x.reshape(0, -1 if x.ndim < 2 else x.shape[1])
    if len(x) < MIN_SAMPLES:
        extra = np.random.default_rng(seed).integers(lo, hi + 1, size=(MIN_SAMPLES - len(x), x.shape[1]))
        x = np.concatenate([x, extra])
    return x


def handshake(design: VhdlDesign) -> bool:
    """Whether the design's top has the valid/ready interface (in_ready, out_ready) of the streaming top."""
    return design.interface.handshake


def simulate_netlist(netlist: Path, design: VhdlDesign, x: np.ndarray, work: Path) -> tuple[np.ndarray, int, float]:
    """Run the netlist on samples ``x``; (outputs (samples, out_words * n_out [+1 arg-max]), samples with
    undefined bits, seconds)."""
    iverilog, vvp = iverilog_paths()
    work.mkdir(parents=True, exist_ok=True)
    words = np.asarray(x).reshape(len(x) * design.in_words, design.n_in)
    (work / IN_FILE).write_text("\n".join(pack_hex(words, design.w_in)) + "\n")
    bench = work / f"{design.top}_netlist_tb.v"
    ctx = design.to_json() | {"samples": len(x), "in_file": IN_FILE, "out_file": OUT_FILE, "version": __version__,
                              "handshake": handshake(design)}  # fmt: skip
    bench.write_text(environment("mlinfn_compress.sim").get_template("netlist_tb.v.j2").render(ctx))
    t0 = time.perf_counter()
    run_tool(
        [iverilog, "-g2012", "-o", "tb.vvp", "-s", f"{design.top}_netlist_tb", str(bench), str(netlist.resolve())],
        work,
        "iverilog",
    )
    run_tool([vvp, "-n", "tb.vvp"], work, "vvp (netlist simulation)")
    seconds = time.perf_counter() - t0
    cols = design.n_out + (1 if design.argmax else 0)
    rows = []
    for line in (work / OUT_FILE).read_text().split("\n"):
        if not line.strip():
            continue
        parts = line.split()
        data = unpack_hex(parts[0], design.n_out, design.w_out, design.out_signed)
        idx = unpack_hex(parts[1], 1, design.w_idx, False) if design.argmax else []
        rows.append([UNDEFINED] * cols if data is None or idx is None else data + idx)
    read = np.array(rows, dtype=np.int64).reshape(-1, cols)
    per_word = read[: len(read) - len(read) % design.out_words]  # an unfinished sample is a missing one
    by_sample = per_word.reshape(-1, design.out_words, cols)
    # a sample's outputs are its words in order; its arg-max is the one on its last word
    out = by_sample[:, :, : design.n_out].reshape(len(by_sample), -1)
    if design.argmax:
        out = np.concatenate([out, by_sample[:, -1, design.n_out :]], axis=1)
    undefined = np.any(out == UNDEFINED, axis=1)
    out[undefined] = UNDEFINED
    return out, int(undefined.sum()), seconds


def check_netlist(
    netlist: Path, design: VhdlDesign, x: np.ndarray, expected: dict[str, np.ndarray], work: Path
) -> dict[str, Any]:
    """Simulate the netlist on ``x`` and compare with the golden outputs ``expected`` (for report.json)."""
    got, undefined, seconds = simulate_netlist(netlist, design, x, work)
    want = expected["logits"].reshape(len(expected["logits"]), -1)
    if design.argmax:
        want = np.concatenate([want, expected["argmax"][:, None]], axis=1)
    names = [f"out[{i}]" for i in range(design.n_out * design.out_words)] + (["argmax"] if design.argmax else [])
    c = compare(got, want, "golden", names)
    if c.first is not None and c.first.get("got") == UNDEFINED:
        c.first["got"] = "undefined (x or z bits)"
    return {
        "netlist": f"ghdl --synth --out=verilog ({netlist.name})",
        "simulator": iverilog_version(),
        "samples": c.samples,
        "against": "golden",
        "mismatches": c.mismatches,
        "undefined_outputs": undefined,
        "bit_exact": c.bit_exact,
        "first_mismatch": c.first,
        "seconds": round(seconds, 2),
    }
