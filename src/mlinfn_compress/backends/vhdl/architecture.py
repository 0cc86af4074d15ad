"""The VHDL architectures and the rule that picks one: dataflow (fully parallel or streaming) or bondmachine.

``--arch dataflow`` (the default) has two forms: ``--io parallel`` renders
every node in hardware at once (one sample per clock); ``--io stream`` sends
tensors one pixel per clock through line buffers.  Without ``--io`` the rule
below decides: a network with spatial tensors streams when its parallel
design would exceed either limit.  ``--arch bondmachine --reuse R`` shares
each dense layer's neurons among small processing cores, R to a core, joined
by handshakes: it has the streaming interface, one word per sample.
"""

from __future__ import annotations

import math
from pathlib import Path

from mlinfn_compress.backends.vhdl.design import ArithOptions, VhdlDesign
from mlinfn_compress.backends.vhdl.stream_plan import pixels
from mlinfn_compress.compress.ir import INPUT, Graph, Linear
from mlinfn_compress.errors import UserError

IO_CHOICES = ("parallel", "stream")
ARCH_CHOICES = ("dataflow", "bondmachine")
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
    graph: Graph,
    outdir: Path,
    bench_dir: Path,
    options: ArithOptions | None = None,
    *,
    io: str = "parallel",
    arch: str = "dataflow",
    reuse: int = 1,
) -> VhdlDesign:
    """Write the design and its textio bench: architecture ``arch``; for dataflow, the form ``io``
    (parallel or stream) and ``options``, the arithmetic of the CMVM cores (default: shift-and-add at
    the default clock); for bondmachine, ``reuse`` neurons per core.  (Scripts and tests render
    through here; a run builds its target from its options.)"""
    from mlinfn_compress.backends.vhdl.target import BondmachineVhdl, ParallelVhdl, StreamVhdl

    if arch not in ARCH_CHOICES:
        raise UserError(f"--arch must be one of {', '.join(ARCH_CHOICES)}, got {arch!r}")
    if arch == "bondmachine":
        return BondmachineVhdl(options, reuse=reuse).render(graph, outdir, bench_dir)
    forms = {"parallel": ParallelVhdl, "stream": StreamVhdl}
    if io not in forms:
        raise UserError(f"--io must be one of {', '.join(IO_CHOICES)}, got {io!r}")
    return forms[io](options).render(graph, outdir, bench_dir)
