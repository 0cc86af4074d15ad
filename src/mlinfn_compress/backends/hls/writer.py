"""HLS backend: the quantised IR as an hls4ml 1.3 project, every precision taken from the IR.

The hls4ml model is built straight from the IR (``ModelGraph.from_layer_list``,
the step hls4ml's own converters end with), so no framework model is involved:
the input layer (hls4ml reserves the name ``input``, so it is ``x_in``) has the
graph's input type, and every node becomes the hls4ml layer(s) of
``layers.layer_specs`` with its precisions in the per-layer configuration.

The model-level default is the widest type of the graph, and after hls4ml's
optimisation passes each layer's precisions are checked against the ones it
was given; a layer hls4ml removed must be an identity (a cast to the type it
already has, a reshape, which moves no data in io_parallel), and a layer it
inserted is an error.  Vitis/Vivado C simulation reads the weights from
``firmware/weights/*.txt`` (hls4ml's default; compiling them into the binary
takes four times as long), synthesis from the ``.h`` headers: both hold the
same exact decimal strings, which ``sim.hls_csim.precision_differences`` checks.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.hls.layers import LayerSpec, UnsupportedNode, check_backend, layer_specs
from mlinfn_compress.backends.hls.project import (
    DOUBLE_BITS,
    INPUT_LAYER,
    PROJECT_FILE,
    HlsLayer,
    HlsProject,
    backend_name,
    fixed_from_hls,
    hls_type,
)
from mlinfn_compress.backends.hls.readme import readme, write_build_options
from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.ir import Graph

TB_FLOAT_BITS = 24  # hls4ml's test bench reads its data files as float
TB_SAMPLES = 100


def _check_graph(graph: Graph) -> None:
    out_t = graph.output.result_type
    if graph.input_type is None or out_t is None or not graph.quantised:
        raise ValueError("the graph must be quantised before rendering")
    if graph.input_type.width > DOUBLE_BITS or out_t.width > DOUBLE_BITS:
        raise ValueError(f"input and output types must be at most {DOUBLE_BITS} bits wide (exact as double)")


# hls4ml passes that rewrite a Transpose for one particular permutation (the channels-first conversion of
# its own converters): they would change what an IR Transpose computes ("SkipOptimizers" does not reach them)
TRANSPOSE_REWRITES = ("remove_transpose_before_flatten", "remove_single_channel_transpose")


@contextmanager
def _without_passes(names: tuple[str, ...]) -> Iterator[None]:
    """Build an hls4ml model with the named passes left out of its 'convert' flow."""
    from hls4ml.model.flow import get_flow

    flow = get_flow("convert")
    saved = list(flow._optimizers)
    flow._optimizers = [o for o in saved if o not in names]
    try:
        yield
    finally:
        flow._optimizers = saved


def _widest(specs: list[LayerSpec]) -> FixedType:
    return max((t for s in specs for t in s.precisions.values()), key=lambda t: t.width)


def model_precisions(hls_model: Any) -> dict[str, dict[str, FixedType]]:
    """Every fixed-point precision of every hls4ml layer: {layer: {weight|bias|accum|result|table|...: type}}."""
    from hls4ml.model.types import FixedPrecisionType

    out: dict[str, dict[str, FixedType]] = {}
    for layer in hls_model.get_layers():
        types: dict[str, FixedType] = {}
        for key, named in layer.types.items():
            if isinstance(named.precision, FixedPrecisionType):
                types[key.removesuffix("_t")] = fixed_from_hls(named.precision)
        types["result"] = fixed_from_hls(layer.get_output_variable().type.precision)
        out[layer.name] = types
    return out


def _mapping(specs: list[LayerSpec], hls_model: Any, output: str) -> tuple[list[HlsLayer], dict[str, str]]:
    """Match hls4ml's layers with the specs and check that every precision is the one it was given."""
    by_name = {s.name: s for s in specs}
    found = model_precisions(hls_model)
    layers = []
    for lay in hls_model.get_layers():
        spec = by_name.get(lay.name)
        if spec is None:
            raise RuntimeError(f"hls4ml inserted a layer '{lay.name}' ({lay.class_name}) that the IR does not have")
        if spec.class_name not in ("InputLayer", "Reshape") and not lay.get_attr("function_cpp"):
            backend = hls_model.config.config["Backend"]
            raise ValueError(f"node '{spec.ir_node}': hls4ml's {backend} backend writes no code for {lay.class_name}")
        got = found[lay.name]
        if got != spec.precisions:
            raise RuntimeError(f"hls4ml layer '{lay.name}': precisions {got} differ from the IR's {spec.precisions}")
        var = lay.get_output_variable().name
        written = {k: v for k, v in got.items() if k not in spec.unwritten}
        layers.append(HlsLayer(lay.name, lay.class_name, int(lay.index), spec.ir_node, written, var))
    present = {lay.name for lay in layers}
    eliminated = {}
    for spec in specs:
        if spec.name not in present:
            if spec.removable is None:
                raise RuntimeError(f"hls4ml removed layer '{spec.name}' (IR node '{spec.ir_node}'), which is needed")
            eliminated[spec.name] = spec.removable
    last = by_name[output]
    while last.name in eliminated:  # an identity at the end: the output is its source's
        last = by_name[last.inputs[0]]
    if list(hls_model.outputs) != [last.name]:
        raise RuntimeError(f"hls4ml's output is {hls_model.outputs}, not the IR's output node ('{last.name}')")
    return layers, eliminated


def render_hls(
    graph: Graph,
    outdir: Path,
    backend: str = "Vitis",
    project_name: str | None = None,
    part: str | None = None,
    clock_period: float = 5.0,
    tb_inputs: np.ndarray | None = None,
) -> HlsProject:
    """Write an hls4ml project of the quantised ``graph`` into ``outdir`` (created, or replaced if it is ours).

    ``backend``: Vitis (default), Vivado, Quartus or oneAPI; ``part``: the
    backend's default part when None; ``tb_inputs``: integer input rows for the
    test bench data in ``tb_data/`` (default: corner rows and random rows),
    whose expected outputs come from the golden model.  A node hls4ml cannot
    compute exactly raises ValueError naming it.
    """
    backend = backend_name(backend)
    _check_graph(graph)
    try:
        specs = layer_specs(graph)
        check_backend(specs, backend)
    except UnsupportedNode as e:
        raise ValueError(str(e)) from e
    import hls4ml
    from hls4ml.model.graph import ModelGraph

    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()):
        if not (outdir / PROJECT_FILE).exists():
            raise ValueError(f"{outdir}: exists and is not an HLS project written by mlinfn-compress; not replacing it")
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    project_name = project_name or (re.sub(r"\W", "_", graph.name).strip("_") or "network")
    if not project_name[0].isalpha():
        project_name = "net_" + project_name
    options: dict[str, Any] = {"clock_period": clock_period, "io_type": "io_parallel"}
    if part is not None:
        options["part"] = part
    config = hls4ml.utils.config.create_config(
        output_dir=str(outdir.resolve()), project_name=project_name, backend=backend, **options
    )
    config["HLSConfig"] = {
        "Model": {
            "Precision": hls_type(_widest(specs)),
            "ReuseFactor": 1,
            "Strategy": "Latency",
            "BitExact": False,  # hls4ml's own precision inference must not touch the IR's types
            "TraceOutput": False,
        },
        "LayerName": {s.name: s.config() for s in specs},
    }
    output = _output_spec(specs, graph.output.name)
    with _without_passes(TRANSPOSE_REWRITES):
        hls_model = ModelGraph.from_layer_list(config, [s.layer() for s in specs], [INPUT_LAYER], [output])
    mapped, eliminated = _mapping(specs, hls_model, output)
    hls_model.write()
    out_t = graph.output.result_type
    assert graph.input_type is not None and out_t is not None
    project = HlsProject(
        outdir=outdir,
        backend=backend,
        project_name=project_name,
        input_type=graph.input_type,
        output_type=out_t,
        n_in=graph.input_size,
        n_out=graph.output_size,
        layers=mapped,
        eliminated=eliminated,
        hls_model=hls_model,
    )
    tb_note = write_tb_data(graph, outdir, tb_inputs)
    if backend == "Vitis":
        write_build_options(outdir)
    project.save()
    (outdir / "README.md").write_text(readme(project, graph, tb_note))
    return project


def _output_spec(specs: list[LayerSpec], node: str) -> str:
    """The layer that computes the IR node's tensor: the last of the node's layers."""
    return [s.name for s in specs if s.ir_node == node][-1]


def write_tb_data(graph: Graph, outdir: Path, x_int: np.ndarray | None) -> str:
    """Test-bench inputs and the golden outputs in hls4ml's tb_data format (one sample a line); says what it wrote."""
    t, out_t = graph.input_type, graph.output.result_type
    assert t is not None and out_t is not None
    if t.width > TB_FLOAT_BITS:
        return f"not written: the test bench reads floats, too narrow for the {t.width}-bit input type"
    if x_int is None:
        from mlinfn_compress.compress.flow.inputs import verification_inputs

        x_int, _, _ = verification_inputs(TB_SAMPLES, graph.input_size, t, None, seed=0)
    y = graph.run_int(x_int)[graph.output.name]
    y = np.asarray(y).reshape(len(y), -1)
    tb = outdir / "tb_data"
    tb.mkdir(exist_ok=True)

    def lines(v: np.ndarray, frac: int) -> str:
        return "".join(" ".join(repr(float(a)) for a in row) + "\n" for row in to_float(v, frac))

    (tb / "tb_input_features.dat").write_text(lines(np.asarray(x_int).reshape(len(x_int), -1), t.frac))
    (tb / "tb_output_predictions.dat").write_text(lines(y, out_t.frac))
    return f"{len(x_int)} samples (corner rows of the input type first), expected outputs from the golden model"
