"""VHDL backend: render the quantised IR into a fully parallel, pipelined design.

Every IR node becomes one entity with one register stage; a softmax output
adds an arg-max stage.  Arithmetic is on constrained integers (fast in GHDL,
sized correctly by synthesis); zero weights are left out of the sums.  A dense
layer whose sums do not fit 32-bit VHDL integers is rendered with
``ieee.numeric_std`` signed arithmetic of the accumulator's width instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from mlinfn_compress import __version__, vhdl_templates
from mlinfn_compress.errors import UserError
from mlinfn_compress.fixed import FixedType, bits_for_range, requantize
from mlinfn_compress.ir import Cast, Clip, Graph, Linear
from mlinfn_compress.quantise import accumulator_bounds

# VHDL integers are guaranteed 32-bit: every value, partial sums included,
# must stay inside this range.
VHDL_INT_MAX = 2**31 - 1
RESERVED = {"abs", "and", "in", "out", "or", "not", "signal", "type", "range", "is", "of", "to"}


@dataclass
class VhdlDesign:
    """What the backend wrote: files in compile order and the interface facts."""

    top: str
    files: list[Path]
    testbench: Path
    latency: int
    n_in: int
    w_in: int
    in_signed: bool
    n_out: int
    w_out: int
    out_signed: bool
    argmax: bool
    w_idx: int

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["files"] = [p.name for p in self.files]
        d["testbench"] = self.testbench.name
        return d


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files(vhdl_templates))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def vhdl_name(name: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in name.lower())
    while "__" in out:
        out = out.replace("__", "_")
    out = out.strip("_") or "x"
    if not out[0].isalpha():
        out = "n_" + out
    return out + "_l" if out in RESERVED else out


def _range(t: FixedType) -> tuple[int, int]:
    return t.min_int, t.max_int


def _requant(in_frac: int, in_lo: int, in_hi: int, t: FixedType, max_shift: int = 30) -> dict[str, Any]:
    """What the requant function needs to turn a value into type ``t``.

    ``max_shift`` bounds the shift: 30 for integer arithmetic; the wide (signed)
    dense template shifts vectors and accepts any shift.
    """
    shift = in_frac - t.frac
    lo, hi = t.min_int, t.max_int
    # Range after the shift, to see whether overflow handling can be skipped.
    after_lo = in_lo >> shift if shift >= 0 else in_lo << -shift
    after_hi = (in_hi >> shift) + 1 if shift > 0 else (in_hi << -shift if shift < 0 else in_hi)
    sat_lo = -hi if (t.overflow == "SAT_SYM" and t.signed) else lo
    if shift > max_shift or t.width > 30:
        raise UserError(f"type {t}: shifts and widths over 30 bits are not supported by the VHDL backend")
    return {
        "frac_in": in_frac,
        "type": t,
        "shift": shift,
        "rounding": t.rounding,
        "overflow": t.overflow,
        "lo": lo,
        "hi": hi,
        "sat_lo": sat_lo,
        "check_range": after_lo < sat_lo or after_hi > hi,
        "describe": f"shift right by {shift} with {t.rounding}, then {t.overflow}"
        if shift >= 0
        else f"shift left by {-shift}, then {t.overflow}",
    }


def _sum_expr(weights: np.ndarray, bias: int) -> str:
    terms = [str(int(bias))] if bias else []
    for i, w in enumerate(int(v) for v in weights):
        if w == 0:
            continue
        sign = "-" if w < 0 else "+"
        mag = abs(w)
        term = f"x({i})" if mag == 1 else f"x({i}) * {mag}"
        if not terms:
            terms.append(term if w > 0 else f"-{term}")
        else:
            terms.append(f"{sign} {term}")
    return " ".join(terms) if terms else "0"


def render(graph: Graph, outdir: Path, bench_dir: Path) -> VhdlDesign:
    """Write the design into ``outdir`` and its textio bench into ``bench_dir``."""
    if graph.input_type is None or any(not n.quantised for n in graph.nodes):
        raise ValueError("the graph must be quantised before rendering")
    env = _env()
    top = vhdl_name(graph.name)
    outdir.mkdir(parents=True, exist_ok=True)
    tensors = [
        {
            "name": "input",
            "size": graph.input_size,
            "type": graph.input_type,
            "elem": "input_t",
            "vec": "input_vec",
        }
    ]
    tensors[0]["lo"], tensors[0]["hi"] = _range(graph.input_type)
    files: list[Path] = []
    stages: list[dict[str, Any]] = []
    prev_signal, prev_valid, prev_vec = "x_in", "in_valid", "input_vec"
    common = {"top": top, "version": __version__, "source": Path(graph.source_path).name}
    for node in graph.nodes:
        assert node.result_type is not None
        name = vhdl_name(node.name)
        entity = f"{top}_{name}"
        lo, hi = _range(node.result_type)
        vec = f"{name}_vec"
        tensors.append(
            {
                "name": node.name,
                "size": node.size,
                "type": node.result_type,
                "elem": f"{name}_t",
                "vec": vec,
                "lo": lo,
                "hi": hi,
            }
        )
        ctx = dict(
            common, entity=entity, node=node, in_vec=prev_vec, out_vec=vec, out_elem=f"{name}_t", n_out=node.size
        )
        if isinstance(node, Linear):
            text = _render_dense(env, graph, node, ctx)
        else:
            if not (isinstance(node, Cast) or (isinstance(node, Clip) and node.lo == 0 and node.hi is None)):
                raise UserError(f"layer '{node.name}' ({node.kind}) has no VHDL implementation yet")
            in_t = graph.in_type(node)
            in_lo = 0 if isinstance(node, Clip) else in_t.min_int
            ctx.update(in_type=in_t, rq=_requant(in_t.frac, in_lo, in_t.max_int, node.result_type))
            text = env.get_template("activation.vhd.j2").render(ctx)
        path = outdir / f"{entity}.vhd"
        path.write_text(text)
        files.append(path)
        stages.append(
            {
                "label": f"u_{name}",
                "entity": entity,
                "signal": f"s_{name}",
                "vec": vec,
                "in_signal": prev_signal,
                "in_valid": prev_valid,
                "argmax": False,
            }
        )
        prev_signal, prev_valid, prev_vec = f"s_{name}", f"s_{name}_valid", vec
    out_t = graph.output.result_type
    assert out_t is not None
    if graph.has_argmax:
        entity = f"{top}_argmax"
        path = outdir / f"{entity}.vhd"
        path.write_text(
            env.get_template("argmax.vhd.j2").render(
                common, entity=entity, in_vec=prev_vec, in_elem=f"{vhdl_name(graph.output.name)}_t", n=graph.output.size
            )
        )
        files.append(path)
        stages.append(
            {
                "label": "u_argmax",
                "entity": entity,
                "signal": "s_argmax",
                "vec": prev_vec,
                "in_signal": prev_signal,
                "in_valid": prev_valid,
                "argmax": True,
            }
        )
        prev_signal = "s_argmax"
    pkg = outdir / f"{top}_pkg.vhd"
    pkg.write_text(env.get_template("pkg.vhd.j2").render(common, tensors=tensors))
    w_idx = max(1, int(graph.output.size - 1).bit_length())
    iface = {
        "n_in": graph.input_size,
        "w_in": graph.input_type.width,
        "in_signed": graph.input_type.signed,
        "in_type": graph.input_type,
        "n_out": graph.output.size,
        "w_out": out_t.width,
        "out_signed": out_t.signed,
        "out_type": out_t,
        "argmax": graph.has_argmax,
        "w_idx": w_idx,
        "latency": len(stages),
        "in_vec": "input_vec",
    }
    description = f"{len(graph.nodes)}-stage network" + (" with arg-max" if graph.has_argmax else "")
    top_path = outdir / f"{top}.vhd"
    top_path.write_text(
        env.get_template("top.vhd.j2").render(
            common | iface | {"stages": stages, "last": prev_signal, "description": description}
        )
    )
    bench_dir.mkdir(parents=True, exist_ok=True)
    tb_path = bench_dir / f"{top}_tb.vhd"
    tb_path.write_text(env.get_template("tb_textio.vhd.j2").render(common | iface))
    return VhdlDesign(
        top=top,
        files=[pkg, *files, top_path],
        testbench=tb_path,
        latency=len(stages),
        n_in=graph.input_size,
        w_in=graph.input_type.width,
        in_signed=graph.input_type.signed,
        n_out=graph.output.size,
        w_out=out_t.width,
        out_signed=out_t.signed,
        argmax=graph.has_argmax,
        w_idx=w_idx,
    )


def _render_dense(env: jinja2.Environment, graph: Graph, node: Linear, ctx: dict[str, Any]) -> str:
    assert node.accum_type is not None and node.result_type is not None
    w, b = node.constants(graph.in_type(node))
    lo, hi, mag = accumulator_bounds(graph, node, node.accum_type.frac)
    zeros = int(np.count_nonzero(np.asarray(node.weight_int) == 0))
    ctx = dict(ctx, zeros=zeros, n_in=w.shape[0])
    if mag > VHDL_INT_MAX or node.accum_type.width > 32:
        return _render_dense_wide(env, graph, node, ctx, lo, hi, mag)
    sums = [_sum_expr(w[:, j], int(b[j])) for j in range(node.size)]
    ctx.update(sums=sums, rq=_requant(node.accum_type.frac, lo, hi, node.result_type))
    return env.get_template("dense.vhd.j2").render(ctx)


def _signed_literal(value: int, width: int) -> str:
    """A signed constant of any width as a bit-string literal (integer literals stop at 32 bits)."""
    return f'signed\'("{value & ((1 << width) - 1):0{width}b}")'


def _render_dense_wide(
    env: jinja2.Environment, graph: Graph, node: Linear, ctx: dict[str, Any], lo: int, hi: int, mag: int
) -> str:
    """A dense layer in ``numeric_std`` signed arithmetic, for sums wider than VHDL integers."""
    assert node.accum_type is not None and node.result_type is not None and node.weight_int is not None
    x_t = graph.in_type(node)
    _, b = node.constants(x_t)
    shift_w, _ = node.shifts(x_t)
    # Wide enough for the accumulator and for every partial sum: the sum is exact.
    acc_w = max(node.accum_type.width + (0 if node.accum_type.signed else 1), bits_for_range(-mag, mag))
    x_w = x_t.width + (0 if x_t.signed else 1)
    rq = _requant(node.accum_type.frac, lo, hi, node.result_type, max_shift=acc_w - 1)
    weights = np.asarray(node.weight_int)
    sums = []
    for j in range(node.size):
        terms = [_signed_literal(int(b[j]), acc_w)] if int(b[j]) else []
        for i, wv in enumerate(int(v) for v in weights[:, j]):
            if wv == 0:
                continue
            if abs(wv) > VHDL_INT_MAX:
                raise UserError(
                    f"layer '{node.name}': weight {wv} does not fit the 32-bit integers of the VHDL backend"
                )
            term = f"resize(to_signed(x({i}), {x_w}) * to_signed({wv}, {bits_for_range(min(wv, -1), wv)}), ACC_W)"
            terms.append(f"shift_left({term}, {shift_w})" if shift_w else term)
        if terms[int(b[j]) != 0 :]:
            sums.append("requant(" + "\n        + ".join(terms) + ")")
        else:  # no weights: a constant, folded here (ghdl --synth cannot fold numeric_std calls)
            const = requantize(np.array([int(b[j])], dtype=object), node.accum_type.frac, node.result_type)
            sums.append(str(int(const[0])))
    shift = rq["shift"]
    ctx.update(
        sums=sums,
        rq=rq,
        acc_w=acc_w,
        q_w=acc_w - shift if shift < 0 else acc_w,
        low_nonzero=f"v({shift - 2} downto 0) /= ({shift - 2} downto 0 => '0')" if shift >= 2 else "false",
    )
    return env.get_template("dense_wide.vhd.j2").render(ctx)
