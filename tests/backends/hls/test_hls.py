"""The hls4ml target: every precision is the IR's, and the C simulation equals the golden model bit for bit."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.hls import (
    BACKENDS,
    PROJECT_FILE,
    HlsProject,
    load_project,
    model_precisions,
    render_hls,
)
from mlinfn_compress.compress.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType, quantize, to_float
from mlinfn_compress.compress.flow.inputs import corner_rows
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, accumulator_bounds, default_inputs, quantise
from mlinfn_compress.sim.hls_csim import CSimError, precision_differences, run_csim, written_precisions

HLS4ML_DEFAULT = FixedType(16, 6)  # hls4ml's model-level default, fixed<16,6> (TRN, WRAP)


@dataclass
class Case:
    graph: Graph
    project: HlsProject
    x_int: np.ndarray
    gold: np.ndarray
    render_seconds: float


def inputs(g: Graph, n: int = 2000) -> np.ndarray:
    assert g.input_type is not None
    body = quantize(default_inputs(n, g.input_size, seed=5), g.input_type)
    return np.concatenate([corner_rows(g.input_size, g.input_type, seed=1), body])  # all-min, all-max, zero, ...


def make_case(model: Path, outdir: Path, backend: str = "Vitis") -> Case:
    g = load_model(model).graph
    quantise(g, QuantConfig(), default_inputs(4096, g.input_size))
    t0 = time.perf_counter()
    project = render_hls(g, outdir, backend)
    seconds = time.perf_counter() - t0
    x = inputs(g)
    return Case(g, project, x, golden.run(g, x)["logits"], seconds)


@pytest.fixture(scope="module")
def cases(float_mlp: Path, qkeras_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    tmp = tmp_path_factory.mktemp("hls")
    return {"float": make_case(float_mlp, tmp / "float" / "hls"), "qkeras": make_case(qkeras_mlp, tmp / "q" / "hls")}


def ir_precisions(g: Graph, node_name: str) -> dict[str, FixedType]:
    if node_name == "input":
        assert g.input_type is not None
        return {"result": g.input_type}
    n = g.node(node_name)
    assert n.result_type is not None
    if n.kind != "dense":
        return {"result": n.result_type, "table": n.result_type}  # table_t: unused by relu/linear, set all the same
    assert n.weight_type and n.bias_type and n.accum_type
    return {"weight": n.weight_type, "bias": n.bias_type, "accum": n.accum_type, "result": n.result_type}


@pytest.mark.slow
@pytest.mark.parametrize("which", ["float", "qkeras"])
def test_c_simulation_is_bit_exact(cases: dict[str, Case], which: str) -> None:
    c = cases[which]
    run = run_csim(c.project, c.x_int)
    assert run.outputs.shape == c.gold.shape == (len(c.x_int), 5) and len(c.x_int) >= 2000
    assert (run.outputs == c.gold).all(), f"{int((run.outputs != c.gold).any(axis=1).sum())} rows differ"
    assert len(np.unique(c.gold)) > 100  # a real test: many distinct logits
    print(
        f"\n{which}: render {c.render_seconds:.2f} s, g++ {run.compile_seconds:.2f} s, "
        f"predict {run.samples_per_second:,.0f} samples/s over {len(c.x_int)} samples"
    )


@pytest.mark.parametrize("which", ["float", "qkeras"])
def test_every_precision_is_the_irs(cases: dict[str, Case], which: str) -> None:
    c = cases[which]
    g, p = c.graph, c.project
    assert [lay.ir_node for lay in p.layers] == ["input"] + [n.name for n in g.nodes] and not p.eliminated
    in_model = model_precisions(p.hls_model)
    on_disk = written_precisions(p)
    ir_types = {t for lay in p.layers for t in ir_precisions(g, lay.ir_node).values()}
    for lay in p.layers:
        want = ir_precisions(g, lay.ir_node)
        assert lay.precisions == want
        assert in_model[lay.name] == want, lay.name  # hls_model.config as converted
        assert on_disk[lay.name] == want, lay.name  # defines.h / parameters.h / the top function
        if HLS4ML_DEFAULT not in ir_types:
            assert HLS4ML_DEFAULT not in in_model[lay.name].values()
    assert precision_differences(p) == []
    cfg = p.hls_model.config.config["HLSConfig"]
    widest = max(t.width for t in ir_types)  # the model-level default: the widest type of the graph
    assert re.match(rf"ap_u?fixed<{widest},", cfg["Model"]["Precision"])
    fw = p.outdir / "firmware"
    defines = (fw / "defines.h").read_text()
    if HLS4ML_DEFAULT not in ir_types:
        assert "ap_fixed<16,6>" not in defines and "ap_fixed<18,8>" not in defines  # no hls4ml default left
    assert (fw / f"{p.project_name}.cpp").exists() and list((fw / "weights").glob("*.h"))
    for f in ("build_prj.tcl", "build_opt.tcl", "project.tcl", "build_lib.sh", "README.md", PROJECT_FILE):
        assert (p.outdir / f).is_file(), f
    readme = (p.outdir / "README.md").read_text()
    assert "vitis_hls -f build_prj.tcl" in readme and "syn/verilog" in readme and "2022.2 to 2024.1" in readme
    assert re.search(r"synth\s+1", (p.outdir / "build_opt.tcl").read_text())
    tb = (p.outdir / "tb_data" / "tb_output_predictions.dat").read_text().splitlines()
    assert len(tb) == 100 and load_project(p.outdir).layers == p.layers


@pytest.mark.slow
def test_a_narrowed_accumulator_on_disk_is_caught(cases: dict[str, Case], tmp_path: Path) -> None:
    c = cases["qkeras"]
    work = tmp_path / "hls"
    shutil.copytree(c.project.outdir, work)
    p = load_project(work)
    fc2 = next(lay for lay in p.layers if lay.ir_node == "fc2")
    acc = fc2.precisions["accum"]
    defines = work / "firmware" / "defines.h"
    text, n = re.subn(
        rf"typedef ap_fixed<{acc.width},{acc.integer}> {fc2.name}_accum_t;",
        f"typedef ap_fixed<{acc.width - 3},{acc.integer - 3}> {fc2.name}_accum_t;",
        defines.read_text(),
    )
    assert n == 1
    defines.write_text(text)
    assert precision_differences(p) == [
        f"layer 'fc2' (IR node 'fc2') accum: written {FixedType(acc.width - 3, acc.integer - 3)}, IR {acc}"
    ]
    got = run_csim(p, c.x_int).outputs
    assert (got != c.gold).any(axis=1).sum() > 10  # the 3 integer bits lost wrap: caught against golden


def all_modes_graph(x: np.ndarray) -> Graph:
    """A chain that uses every rounding and overflow mode, types with I < 0 and I > W, and casts.

    Each result type drops ``drop`` fractional bits of its input's grid (``frac`` fixes the grid
    instead) and gets the integer bits that hold the 97th percentile of its values on ``x``, so
    that rounding and overflow both happen on a fair share of the samples.
    """
    rng = np.random.default_rng(4)
    plan = [  # name, op, size, signed, drop or frac, rounding, overflow, percentile, weight type (W, I)
        ("d1", "dense", 12, True, ("drop", 8), "RND", "SAT_SYM", 85, (7, 2)),
        ("c0", "cast", 12, True, ("same", 0), "", "", 0, None),  # an identity: hls4ml removes it
        ("c1", "cast", 12, True, ("drop", 2), "RND_INF", "WRAP", 97, None),
        ("d2", "dense", 10, True, ("drop", 5), "TRN_ZERO", "SAT_ZERO", 97, (6, -4)),  # weights with I < 0
        ("c2", "cast", 10, True, ("drop", 2), "RND_MIN_INF", "WRAP", 97, None),
        ("d3", "dense", 10, True, ("drop", 6), "RND_CONV", "WRAP", 90, (7, 2)),
        ("r1", "relu", 10, False, ("drop", 2), "RND_CONV", "SAT", 97, None),
        ("d4", "dense", 8, True, ("drop", 6), "TRN", "SAT", 85, (7, 2)),
        ("c3", "cast", 8, True, ("frac", -1), "RND", "SAT_ZERO", 97, None),  # a grid of 2: I > W
        ("d5", "dense", 4, True, ("drop", 4), "RND_ZERO", "SAT_SYM", 70, (7, 2)),
    ]
    g = make_graph(
        "all_modes", "test", "all_modes.h5", x.shape[1], [], input_type=FixedType(10, 3, True, "RND_CONV", "SAT")
    )
    prev = "input"
    for name, op, size, signed, (how, k), rounding, overflow, pct, wt in plan:
        node = make_node(name, op, [prev], size)
        in_t = g.in_type(node)
        if wt is not None:
            node.weight_type, node.bias_type = FixedType(*wt), FixedType(wt[0], wt[1] - 1)
            w = rng.integers(-(2 ** (wt[0] - 1)), 2 ** (wt[0] - 1), (g.in_size(node), size))
            node.weight_int = np.where(rng.random(w.shape) < 0.3, 0, w)
            node.bias_int = rng.integers(-(2 ** (wt[0] - 1)), 2 ** (wt[0] - 1), size)
            node.weight = to_float(node.weight_int, node.weight_type.frac)
            node.bias = to_float(node.bias_int, node.bias_type.frac)
            frac = max(in_t.frac + node.weight_type.frac, node.bias_type.frac)
            lo, hi, _ = accumulator_bounds(g, node, frac)
            node.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
            in_t = node.accum_type
        node.result_type = in_t  # exact, to see the values this node must re-quantise
        g.nodes.append(node)
        if how == "same":
            prev = name
            continue
        v = to_float(golden.run_all(g, x)[name], in_t.frac)
        frac = in_t.frac - k if how == "drop" else k
        top = float(np.percentile(np.abs(v), pct))
        integer = int(np.floor(np.log2(top))) + 1 + int(signed) if top > 0 else 1
        node.result_type = FixedType(integer + frac, integer, signed, rounding, overflow)
        prev = name
    return g


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["Vitis", "Vivado", "Quartus"])
def test_every_rounding_and_overflow_mode(backend: str, tmp_path: Path) -> None:
    t = FixedType(10, 3, True, "RND_CONV", "SAT")
    x = np.random.default_rng(9).integers(t.min_int, t.max_int + 1, (3000, 8))
    x = np.concatenate([corner_rows(8, t, seed=2), x])
    g = all_modes_graph(x)
    gold = golden.run(g, x)["logits"]
    p = render_hls(g, tmp_path / "hls", backend)
    assert precision_differences(p) == [] and list(p.eliminated) == ["c0"]
    assert [lay.ir_node for lay in p.layers] == ["input"] + [n.name for n in g.nodes if n.name != "c0"]
    got = run_csim(p, x).outputs
    assert (got == gold).all(), f"{int((got != gold).any(axis=1).sum())} rows differ"
    if backend == "Vitis":
        assert modes_seen(g, x, gold) == set(ROUNDING_MODES) | set(OVERFLOW_MODES)


# On values >= 0 (an unsigned result) these modes act alike.
_SAME_WHEN_NONNEG = [{"TRN", "TRN_ZERO"}, {"RND", "RND_INF"}, {"RND_ZERO", "RND_MIN_INF"}, {"SAT", "SAT_SYM"}]


def modes_seen(g: Graph, x: np.ndarray, gold: np.ndarray) -> set[str]:
    """The modes the test can tell apart: used by a node where each other mode changes the outputs."""
    seen = set()
    for node in g.nodes:
        saved = node.result_type
        assert saved is not None
        for field, others in (("rounding", ROUNDING_MODES), ("overflow", OVERFLOW_MODES)):
            mine = getattr(saved, field)
            alike = {mine} | set().union(*(s for s in _SAME_WHEN_NONNEG if mine in s and not saved.signed))
            changed = []
            for other in set(others) - alike:
                node.result_type = replace(saved, **{field: other})
                changed.append(bool((golden.run(g, x)["logits"] != gold).any()))
            node.result_type = saved
            if all(changed):
                seen.add(mine)
    return seen


def test_other_backends_and_errors(cases: dict[str, Case], tmp_path: Path) -> None:
    g = cases["qkeras"].graph
    vivado = render_hls(g, tmp_path / "vivado", "vivado")
    assert vivado.backend == "Vivado" and precision_differences(vivado) == []
    assert 'vivado_hls -f build_prj.tcl "reset=1' in (tmp_path / "vivado" / "README.md").read_text()
    oneapi = render_hls(g, tmp_path / "oneapi", "oneAPI")
    assert (tmp_path / "oneapi" / "CMakeLists.txt").is_file() and not oneapi.compilable
    with pytest.raises(CSimError, match="vendor compiler"):
        run_csim(oneapi, cases["qkeras"].x_int[:2])
    with pytest.raises(ValueError, match="Vitis, Vivado, Quartus, oneAPI"):
        render_hls(g, tmp_path / "x", "catapult")
    assert BACKENDS == ("Vitis", "Vivado", "Quartus", "oneAPI")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an HLS project"):
        render_hls(g, tmp_path / "foreign")
    render_hls(g, tmp_path / "vivado", "Vitis")  # replaces a project of ours
    assert load_project(tmp_path / "vivado").backend == "Vitis"
    raw = load_model(Path(g.source_path)).graph
    with pytest.raises(ValueError, match="quantised"):
        render_hls(raw, tmp_path / "raw")
