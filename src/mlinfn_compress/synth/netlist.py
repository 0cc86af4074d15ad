"""The netlist: ``ghdl --synth --out=verilog``, with the repairs GHDL 2.0's Verilog writer needs.

GHDL 2.0 synthesises VHDL correctly but writes a few operations into Verilog
with other meanings (all measured on its netlists, and caught by the netlist
simulation of ``backends/netlist_sim.py`` before these repairs):

- signed division, remainder and modulo (marked ``// sdiv``, ``// srem``,
  ``// smod``) as ``/`` and ``%`` of unsigned operands;
- an arithmetic right shift of a signed value as ``$signed(a) >> n``, which
  Verilog fills with zeros (``>>>`` keeps the sign);
- constants wider than 32 bits as string literals (``"0101..."``), which
  Verilog reads as 8 bits per character;
- a negative constant held as 32 bits and sign-extended to a wider net
  (``Id_Const_SB32``) with zeros above bit 31.  The text cannot tell it from a
  zero-extended 32-bit constant with bit 31 set (``Id_Const_UB32``); GHDL
  makes those from values of 2**31 or more, which VHDL integers never reach,
  and a wrong repair would show as mismatches of the netlist simulation.

It also writes a signed product of two signals (``// smul``) with unsigned
operands, sign-extended to the product's width: the right low bits, but a
multiplier as wide as the product, which yosys cannot narrow (a 16 x 6-bit
product became two DSP48E1 blocks).  Such products are written as signed
(``signed_products``), the same bits, which yosys maps to one.

The netlist written to disk is the repaired one: yosys synthesises exactly the
file that the netlist simulation runs.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from mlinfn_compress.sim.ghdl import synth_verilog

_BINARY = re.compile(r"^(\s*assign\s+\S+\s*=\s*)(\S+) ([/%]) (\S+);(\s*//\s*(sdiv|srem|smod))\s*$")
_SMUL = re.compile(r"^(\s*assign\s+\S+\s*=\s*)([A-Za-z_]\w*) \* ([A-Za-z_]\w*);(\s*//\s*smul)\s*$")
_ASR = re.compile(r"(\$signed\([^()]+\)) >> ")
_WIDE = re.compile(r'"([01xzXZ]+)"')
_SB32 = re.compile(r"\b(\d+)'b([01]+)\b")


def repair(text: str) -> tuple[str, dict[str, int]]:
    """GHDL's Verilog with signed division, remainder, modulo, arithmetic shifts and wide constants
    written with their VHDL meaning, and products of two signals as signed; also the number of
    repairs of each kind."""
    counts = {"sdiv": 0, "srem": 0, "smod": 0, "asr": 0, "wide_constants": 0, "sign_extended": 0,
              "signed_products": 0, "unrepaired": 0}  # fmt: skip
    lines = []
    for line in text.split("\n"):
        m = _BINARY.match(line)
        if m:
            head, a, _, b, tail, kind = m.groups()
            sa, sb = f"$signed({a})", f"$signed({b})"
            if kind == "smod":  # the sign of the divisor: the remainder, moved by b when the signs differ
                r = f"({sa} % {sb})"
                expr = f"(({r} != 0) && (({r} < 0) != ({sb} < 0))) ? ({r} + {sb}) : {r}"
            else:
                expr = f"{sa} {'/' if kind == 'sdiv' else '%'} {sb}"
            line = f"{head}{expr};{tail}"
            counts[kind] += 1
        elif p := _SMUL.match(line):
            head, a, b, tail = p.groups()
            line = f"{head}$signed({a}) * $signed({b});{tail}"
            counts["signed_products"] += 1
        elif re.search(r"//\s*(sdiv|srem|smod)\s*$", line):
            counts["unrepaired"] += 1
        line, n = _ASR.subn(r"\1 >>> ", line)
        counts["asr"] += n
        if not line.lstrip().startswith(("/*", "//")):
            line, n = _WIDE.subn(lambda w: f"{len(w.group(1))}'b{w.group(1)}", line)
            counts["wide_constants"] += n
            extended = _SB32.sub(_sign_extend, line)
            counts["sign_extended"] += sum(
                a != b for a, b in zip(_SB32.findall(line), _SB32.findall(extended), strict=True)
            )
            line = extended
        lines.append(line)
    return "\n".join(lines), counts


def _sign_extend(m: re.Match[str]) -> str:
    """A literal wider than 32 bits with bit 31 set and zeros above it, sign-extended (else unchanged)."""
    width, bits = int(m.group(1)), m.group(2)
    if width <= 32 or len(bits) != width or bits[: width - 32].strip("0") or bits[width - 32] != "1":
        return m.group(0)
    return f"{width}'b{'1' * (width - 32)}{bits[width - 32 :]}"


def ghdl_netlist(sources: list[Path], top: str, dest: Path) -> tuple[Path, dict[str, int]]:
    """``ghdl --synth --out=verilog`` of ``top``, repaired, into ``dest``; (path, repairs made)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlinfn-ghdl-") as tmp:
        work = Path(tmp)
        text = synth_verilog(sources, top, work)
    fixed, counts = repair(text)
    made = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "none"
    dest.write_text(f"// {top}: ghdl --synth --out=verilog, repaired by mlinfn-compress (repairs: {made})\n{fixed}")
    return dest, counts
