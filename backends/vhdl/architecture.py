"""The VHDL architectures and the rule that picks one: fully parallel (dataflow) or streaming.

``--io parallel`` renders every node in hardware at once (one sample per
clock); ``--io stream`` sends tensors one pixel per clock through line
buffers.  Without ``--io`` the rule below decides: a network with spatial
tensors streams when its parallel design would exceed either limit.
"""

from __future__ import annotations

import math
from pathlib import Path

from mlinfn_compress.errors import UserError
from mlinfn_compress.ir import INPUT, Graph, Linear

from .dataflow import render as render_dataflow
from .design import ArithOptions, VhdlDesign
from .stream import render_stream
from .stream_plan import pixels

IO_CHOICES = ("parallel", "stream")
PARALLEL_MAX_MULTIPLIERS = 16_384  # constant multiplications: window positions x non-zero weights, all layers
PARALLEL_MAX_VALUES = 1_024  # values of the largest tensor


def parallel_size(graph: Graph) -> tuple[int, int]:
    """(constant multiplications, values of the largest tensor) of the fully parallel design."""
    mults = 0
    for node in graph.nodes:
        if isinstance(node, Linear):  # one copy of the core per output position
            mults += math.prod(node.shape[:-1]) * node.multipliers()
    largest = max(math.prod(graph.shape_of(t)) for t in [INPUT, *(n.name for n in graph.nodes)])
    return mults, largest


def choose_io(graph: Graph) -> tuple[str, str]:
    """(architecture, why) by the documented rule."""
    spatial = [t for t in [INPUT, *(n.name for n in graph.nodes)] if pixels(graph.shape_of(t))[0] > 1]
    mults, largest = parallel_size(graph)
    if not spatial:
        return "parallel", "no tensor has spatial axes: the network is one word per sample either way"
    facts = f"the parallel design has {mults:,} constant multiplications and its largest tensor {largest:,} values"
    limits = f"limits {PARALLEL_MAX_MULTIPLIERS:,} and {PARALLEL_MAX_VALUES:,}"
    if mults > PARALLEL_MAX_MULTIPLIERS or largest > PARALLEL_MAX_VALUES:
        return "stream", f"{facts}, over the {limits}"
    return "parallel", f"{facts}, within the {limits}"


def render(
    graph: Graph, outdir: Path, bench_dir: Path, options: ArithOptions | None = None, *, io: str = "parallel"
) -> VhdlDesign:
    """Write the design in architecture ``io`` (parallel or stream) and its textio bench; ``options``:
    the arithmetic of the CMVM cores (default: shift-and-add at the default clock)."""
    if io == "parallel":
        return render_dataflow(graph, outdir, bench_dir, options)
    if io == "stream":
        return render_stream(graph, outdir, bench_dir, options)
    raise UserError(f"--io must be one of {', '.join(IO_CHOICES)}, got {io!r}")
