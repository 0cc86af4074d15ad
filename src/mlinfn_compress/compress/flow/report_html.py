"""OUTDIR/report.html: the summary people read first and the plots, in one self-contained page.

The page comes from the Jinja2 template ``report.html.j2``; every plot is
drawn by matplotlib (figures of its own, without pyplot, so that a notebook's
backend and figures are left alone) and embedded as a base64 PNG, so the
file opens offline and can be mailed on its own.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.flow.summary import latency_text, netlist_text, timing_text, verdict
from mlinfn_compress.compress.ir import Graph, Linear

MAX_LAYERS = 12  # weight histograms drawn for at most this many layers


def write_html(outdir: Path, report: dict[str, Any], graph: Graph, before: Graph | None) -> Path:
    """Write report.html from the report and the quantised graph (``before``: the graph as loaded)."""
    from mlinfn_compress.templating import environment

    env = environment("mlinfn_compress.compress.flow")
    env.filters["basename"] = lambda p: Path(str(p)).name
    hw, ver = report["hardware"], report["verification"]
    res = hw.get("resources")
    resources = "not measured (--synth)"
    if res and "LUT" in res:
        resources = f"{res['LUT']} LUT, {res['FF']} FF, {res['DSP']} DSP, {res['CARRY']} CARRY4 ({res['tool']})"
    elif res:
        resources = f"synthesis failed: {res.get('error', '')[:200]}"
    net = ver.get("netlist")
    text = env.get_template("report.html.j2").render(
        r=report,
        latency=latency_text(report),
        resources=resources,
        timing=timing_text(hw["timing"]) if hw.get("timing") else "not measured (--synth)",
        verdict=verdict(ver),
        passed=verdict(ver) in ("BIT-EXACT", "EXPORTED EXACTLY (not simulated)"),
        netlist=f"; netlist: {netlist_text(net)}" if net else "",
        figures=figures(report, graph, before),
    )
    path = outdir / "report.html"
    path.write_text(text)
    return path


def figures(report: dict[str, Any], graph: Graph, before: Graph | None) -> dict[str, str | None]:
    res = report["hardware"].get("resources") or {}
    return {
        "weights": _weights(graph, before),
        "layers": _layers(graph),
        "resources": _resources(res["per_layer"]) if res.get("per_layer") else None,
        "accuracy": _accuracy(report["accuracy"]) if report.get("accuracy") else None,
    }


def _figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib figure of its own (no pyplot: the session's backend and figures are left alone)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _weights(graph: Graph, before: Graph | None) -> str | None:
    dense = [n for n in graph.nodes if isinstance(n, Linear) and n.weight_int is not None][:MAX_LAYERS]
    if not dense:
        return None
    fig = _figure((10, 2.2 * len(dense)))
    axes = fig.subplots(len(dense), 2, squeeze=False)
    for row, node in zip(axes, dense, strict=True):
        t = node.weight_type
        assert t is not None
        after = np.ldexp(np.asarray(node.weight_int, dtype=np.float64), -t.frac).ravel()
        original = _original_weights(before, node)
        lo, hi = t.min_int * t.lsb, t.max_int * t.lsb
        bins = np.linspace(min(lo, original.min(initial=lo)), max(hi, original.max(initial=hi)), 61)
        for ax, values, title in ((row[0], original, "as loaded"), (row[1], after, f"quantised, {t}")):
            ax.hist(values, bins=bins, color="#4a78b5")
            ax.axvline(lo, color="#c0392b", linestyle="--", linewidth=1)
            ax.axvline(hi, color="#c0392b", linestyle="--", linewidth=1)
            if t.max_int - t.min_int <= 128:
                ax.plot(np.arange(t.min_int, t.max_int + 1) * t.lsb, np.zeros(t.max_int - t.min_int + 1), "|",
                        color="#888", markersize=6)  # fmt: skip
            ax.set_title(f"{node.name}: {title}", fontsize=9)
            ax.tick_params(labelsize=7)
        row[1].text(0.99, 0.95, f"step {t.lsb:g}, {np.mean(after == 0):.0%} zero", transform=row[1].transAxes,
                    ha="right", va="top", fontsize=8)  # fmt: skip
    return _png(fig)


def _original_weights(before: Graph | None, node: Linear) -> np.ndarray:
    """The node's float weights as loaded (before pruning and quantisation), else the quantised graph's."""
    source = node
    if before is not None:
        match = [n for n in before.nodes if n.name == node.name and isinstance(n, Linear) and n.weight is not None]
        source = match[0] if match else node
    w = source.weight if source.weight is not None else np.zeros(0)
    return np.asarray(w, dtype=np.float64).ravel()


def _layers(graph: Graph) -> str:
    names = [n.name for n in graph.nodes]
    x = np.arange(len(names))
    fig = _figure((10, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(x, [100 * n.sparsity() for n in graph.nodes], color="#4a78b5")
    ax1.set_ylabel("zero weights (%)")
    ax1.set_ylim(0, 100)
    for k, role in enumerate(("weight", "accum", "result")):
        widths = [t.width if (t := n.types().get(role)) is not None else 0 for n in graph.nodes]
        ax2.bar(x + (k - 1) * 0.27, widths, width=0.27, label=role)
    ax2.set_ylabel("bits")
    ax2.legend(fontsize=8)
    for ax, title in ((ax1, "sparsity"), (ax2, "bit widths")):
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    return _png(fig)


def _resources(rows: list[dict[str, Any]]) -> str:
    names = [r["layer"] for r in rows]
    x = np.arange(len(names))
    fig = _figure((11, 3.2))
    axes = fig.subplots(1, 3)
    for ax, key in zip(axes, ("LUT", "FF", "DSP"), strict=True):
        ax.bar(x - 0.2, [r["default"][key] for r in rows], width=0.4, label="default")
        ax.bar(x + 0.2, [r["nodsp"][key] for r in rows], width=0.4, label="-nodsp")
        ax.set_title(key, fontsize=9)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    return _png(fig)


def _accuracy(acc: dict[str, Any]) -> str:
    labels = ["float", "compressed", "framework_twin", "hardware"]
    values = [acc.get(k) for k in labels]
    fig = _figure((6, 3))
    ax = fig.subplots()
    bars = ax.bar([k.replace("_", " ") for k in labels], [v if v is not None else 0 for v in values], color="#4a78b5")
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), "n/a" if v is None else f"{v:.4g}",
                ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_ylabel(acc.get("metric", ""))
    return _png(fig)
