"""HLS backend: the quantised IR as an hls4ml 1.3 project, every precision taken from the IR.

The hls4ml model is built straight from the IR (``ModelGraph.from_layer_list``,
the step hls4ml's own converters end with), so no framework model is involved:

* the input layer (hls4ml reserves the name ``input``, so it is ``x_in``) has
  the graph's input type;
* an IR ``dense`` node becomes an hls4ml ``Dense`` with the node's weight,
  bias, accumulator and result types (hls4ml multiplies at full precision,
  adds into ``accum_t`` and casts the sum to ``result_t``: the golden model's
  order);
* ``relu`` becomes ``Activation(relu)`` and ``cast`` ``Activation(linear)``,
  with the node's result type (hls4ml drops a linear activation whose result
  type equals its input's: an identity);
* no softmax: hls4ml's is a lookup-table approximation, the hardware output
  is the logits.

Every type goes into the per-layer configuration, the model-level default is
the widest type of the graph, and after conversion each layer's precisions are
checked against the IR.  Vitis/Vivado C simulation reads the weights from
``firmware/weights/*.txt`` (hls4ml's default; compiling them into the binary
takes four times as long), synthesis from the ``.h`` headers: both hold the
same exact decimal strings, which ``hls_csim.precision_differences`` checks.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress import __version__
from mlinfn_compress.fixed import FixedType, to_float
from mlinfn_compress.ir import Cast, Clip, Graph, Linear, Node, UniqueNames

BACKENDS = ("Vitis", "Vivado", "Quartus", "oneAPI")
COMPILABLE = ("Vitis", "Vivado", "Quartus")  # a g++ build_lib.sh; oneAPI needs Intel's icpx
PROJECT_FILE = "mlinfn_hls.json"
INPUT_LAYER = "x_in"
DOUBLE_BITS = 53  # the C simulation exchanges values as double
_RESERVED = {"input", "output_t", "result_t", "input_t", "x_in"}


def hls_type(t: FixedType) -> str:
    """The hls4ml precision string of ``t``, e.g. ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``."""
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{kind}<{t.width},{t.integer},AP_{t.rounding},AP_{t.overflow}>"


def fixed_from_hls(p: Any) -> FixedType:
    """An hls4ml ``FixedPrecisionType`` as a FixedType (ValueError for anything else)."""
    from hls4ml.model.types import FixedPrecisionType

    if not isinstance(p, FixedPrecisionType) or p.saturation_bits:
        raise ValueError(f"not a plain fixed-point precision: {p}")
    return FixedType(int(p.width), int(p.integer), bool(p.signed), p.rounding_mode.name, p.saturation_mode.name)


@dataclass
class HlsLayer:
    """One hls4ml layer and the IR node it implements (``input`` for the input layer)."""

    name: str
    class_name: str
    index: int
    ir_node: str
    precisions: dict[str, FixedType]

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["precisions"] = {k: v.to_dict() for k, v in self.precisions.items()}
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> HlsLayer:
        prec = {k: FixedType.from_dict(v) for k, v in d["precisions"].items()}
        return HlsLayer(d["name"], d["class_name"], int(d["index"]), d["ir_node"], prec)


@dataclass
class HlsProject:
    """What ``render_hls`` wrote: where, for which backend, and the layer-to-node map."""

    outdir: Path
    backend: str
    project_name: str
    input_type: FixedType
    output_type: FixedType
    n_in: int
    n_out: int
    layers: list[HlsLayer]
    eliminated: dict[str, str] = field(default_factory=dict)  # IR node -> why hls4ml has no layer for it
    hls_model: Any = None  # the hls4ml ModelGraph (only in the process that rendered it)

    @property
    def compilable(self) -> bool:
        return self.backend in COMPILABLE

    def to_json(self) -> dict[str, Any]:
        return {
            "generator": f"mlinfn-compress {__version__}",
            "backend": self.backend,
            "project_name": self.project_name,
            "input_type": self.input_type.to_dict(),
            "output_type": self.output_type.to_dict(),
            "n_in": self.n_in,
            "n_out": self.n_out,
            "layers": [lay.to_json() for lay in self.layers],
            "eliminated": self.eliminated,
        }

    def save(self) -> Path:
        path = self.outdir / PROJECT_FILE
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path


def load_project(outdir: Path) -> HlsProject:
    """The project ``render_hls`` wrote into ``outdir`` (recompile it with ``compile_and_predict``)."""
    path = Path(outdir) / PROJECT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{outdir}: no {PROJECT_FILE}; not an HLS project written by mlinfn-compress")
    d = json.loads(path.read_text())
    return HlsProject(
        outdir=Path(outdir),
        backend=d["backend"],
        project_name=d["project_name"],
        input_type=FixedType.from_dict(d["input_type"]),
        output_type=FixedType.from_dict(d["output_type"]),
        n_in=int(d["n_in"]),
        n_out=int(d["n_out"]),
        layers=[HlsLayer.from_json(x) for x in d["layers"]],
        eliminated=dict(d.get("eliminated", {})),
    )


def backend_name(backend: str) -> str:
    for b in BACKENDS:
        if b.lower() == backend.lower():
            return b
    raise ValueError(f"unknown HLS backend {backend!r}; use one of {', '.join(BACKENDS)}")


def _c_names(graph: Graph) -> dict[str, str]:
    """A C identifier for every IR node, unique ignoring case (hls4ml lower-cases names in lookups)."""
    unique = UniqueNames(set(_RESERVED), fold_case=True)
    names = {}
    for node in graph.nodes:
        base = re.sub(r"\W", "_", node.name).strip("_") or "layer"
        names[node.name] = unique(base if base[0].isalpha() else "l_" + base)
    return names


def _node_types(node: Node) -> dict[str, FixedType]:
    assert node.result_type is not None
    return node.types()


def _check_graph(graph: Graph) -> None:
    out_t = graph.output.result_type
    if graph.input_type is None or out_t is None or any(not n.quantised for n in graph.nodes):
        raise ValueError("the graph must be quantised before rendering")
    if graph.input_type.width > DOUBLE_BITS or out_t.width > DOUBLE_BITS:
        raise ValueError(f"input and output types must be at most {DOUBLE_BITS} bits wide (exact as double)")
    for node in graph.nodes:
        if not (isinstance(node, (Linear, Cast)) or (isinstance(node, Clip) and node.lo == 0 and node.hi is None)):
            raise ValueError(f"node '{node.name}': {node.kind} has no hls4ml layer yet")
        types = _node_types(node)
        for what in ("weight", "bias"):
            if what in types and types[what].width > DOUBLE_BITS:
                raise ValueError(f"node '{node.name}': {what} type {types[what]} is wider than {DOUBLE_BITS} bits")
        if isinstance(node, Linear) and types["accum"].overflow != "WRAP":
            # hls4ml adds the terms one by one into accum_t; only wrapping makes partial sums harmless.
            _, _, mag = node.bounds(graph.in_type(node))
            if mag > types["accum"].max_int:
                raise ValueError(f"node '{node.name}': partial sums may overflow {types['accum']}, which saturates")


def _layer_list(graph: Graph, names: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """hls4ml's layer list (as its converters produce it) and the per-layer precision configuration."""
    assert graph.input_type is not None
    layers: list[dict[str, Any]] = [
        {"class_name": "InputLayer", "name": INPUT_LAYER, "input_shape": [graph.input_size]}
    ]
    config: dict[str, Any] = {INPUT_LAYER: {"Precision": {"result": hls_type(graph.input_type)}}}
    for node in graph.nodes:
        name, src = names[node.name], node.inputs[0]
        inputs = [INPUT_LAYER if src == "input" else names[src]]
        types = {k: hls_type(v) for k, v in _node_types(node).items()}
        if isinstance(node, Linear):
            assert node.weight_type and node.bias_type
            layers.append(
                {
                    "class_name": "Dense",
                    "name": name,
                    "inputs": inputs,
                    "n_in": node.n_in,
                    "n_out": node.n_out,
                    "weight_data": to_float(np.asarray(node.weight_int), node.weight_type.frac),
                    "bias_data": to_float(np.asarray(node.bias_int), node.bias_type.frac),
                    "weight_quantizer": None,
                    "bias_quantizer": None,
                    "use_bias": True,
                    "data_format": "channels_last",
                }
            )
            config[name] = {"Precision": types}
        else:
            act = "relu" if isinstance(node, Clip) else "linear"
            layers.append({"class_name": "Activation", "name": name, "inputs": inputs, "activation": act})
            # table_t is unused by relu and linear; set so that no hls4ml default is left in the project.
            config[name] = {"Precision": types, "table_t": types["result"]}
    return layers, config


def _widest(graph: Graph) -> FixedType:
    assert graph.input_type is not None
    types = [graph.input_type] + [t for n in graph.nodes for t in _node_types(n).values()]
    return max(types, key=lambda t: t.width)


def model_precisions(hls_model: Any) -> dict[str, dict[str, FixedType]]:
    """Every fixed-point precision of every hls4ml layer: {layer: {weight|bias|accum|result|table: type}}."""
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


def _mapping(graph: Graph, names: dict[str, str], hls_model: Any) -> tuple[list[HlsLayer], dict[str, str]]:
    """Match hls4ml's layers with the IR and check that every precision is the IR's."""
    assert graph.input_type is not None
    by_name = {v: k for k, v in names.items()}
    found = model_precisions(hls_model)
    layers = []
    for lay in hls_model.get_layers():
        ir = "input" if lay.name == INPUT_LAYER else by_name.get(lay.name)
        if ir is None:
            raise RuntimeError(f"hls4ml inserted a layer '{lay.name}' ({lay.class_name}) that the IR does not have")
        want = {"result": graph.input_type} if ir == "input" else _node_types(graph.node(ir))
        if lay.class_name == "Activation":
            want = dict(want, table=want["result"])
        got = found[lay.name]
        if got != want:
            raise RuntimeError(f"hls4ml layer '{lay.name}': precisions {got} differ from the IR's {want}")
        layers.append(HlsLayer(lay.name, lay.class_name, int(lay.index), ir, got))
    present = {lay.ir_node for lay in layers}
    eliminated = {}
    for node in graph.nodes:
        if node.name not in present:
            if not isinstance(node, Cast) or graph.in_type(node) != node.result_type:
                raise RuntimeError(f"hls4ml removed IR node '{node.name}' ({node.kind}), which is not an identity")
            eliminated[node.name] = "identity cast (same type in and out): hls4ml removes the linear activation"
    last = graph.output
    while last.name in eliminated:  # an identity at the end: the output is its source's
        last = graph.node(last.inputs[0])
    if layers[-1].ir_node != last.name:
        raise RuntimeError("the last hls4ml layer is not the IR's output node")
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
    whose expected outputs come from the golden model.
    """
    backend = backend_name(backend)
    _check_graph(graph)
    import hls4ml
    from hls4ml.model.graph import ModelGraph

    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()):
        if not (outdir / PROJECT_FILE).exists():
            raise ValueError(f"{outdir}: exists and is not an HLS project written by mlinfn-compress; not replacing it")
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    names = _c_names(graph)
    project_name = project_name or (re.sub(r"\W", "_", graph.name).strip("_") or "network")
    if not project_name[0].isalpha():
        project_name = "net_" + project_name
    layers, layer_config = _layer_list(graph, names)
    options: dict[str, Any] = {"clock_period": clock_period, "io_type": "io_parallel"}
    if part is not None:
        options["part"] = part
    config = hls4ml.utils.config.create_config(
        output_dir=str(outdir.resolve()), project_name=project_name, backend=backend, **options
    )
    config["HLSConfig"] = {
        "Model": {
            "Precision": hls_type(_widest(graph)),
            "ReuseFactor": 1,
            "Strategy": "Latency",
            "BitExact": False,  # hls4ml's own precision inference must not touch the IR's types
            "TraceOutput": False,
        },
        "LayerName": layer_config,
    }
    hls_model = ModelGraph.from_layer_list(config, layers, [INPUT_LAYER], [layers[-1]["name"]])
    mapped, eliminated = _mapping(graph, names, hls_model)
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
    from mlinfn_compress.sim.hls_csim import write_tb_data

    tb_note = write_tb_data(graph, outdir, tb_inputs)
    if backend == "Vitis":
        _write_build_options(outdir)
    project.save()
    (outdir / "README.md").write_text(_readme(project, graph, tb_note))
    return project


def _write_build_options(outdir: Path) -> None:
    """Vitis: the steps build_prj.tcl runs (hls4ml's build() rewrites this file the same way)."""
    steps = {"reset": 1, "csim": 1, "synth": 1, "cosim": 0, "validation": 0, "export": 1, "vsynth": 0, "fifo_opt": 0}
    body = "".join(f"    {k:<10} {v}\n" for k, v in steps.items())
    (outdir / "build_opt.tcl").write_text("array set opt {\n" + body + "}\n")


_BUILD = {
    "Vitis": "vitis-run --mode hls --tcl build_prj.tcl   # recent Vitis (unified CLI): what hls4ml 1.3's build() runs\n"
    "vitis_hls -f build_prj.tcl                   # Vitis HLS 2022.2 to 2024.1",
    "Vivado": 'vivado_hls -f build_prj.tcl "reset=1 csim=1 synth=1 cosim=0 validation=0 export=1"',
    "Quartus": "make {p}-fpga   # Intel HLS i++ (the Makefile's DEVICE is the part)",
    "oneAPI": "mkdir -p build && cd build && cmake .. && make report   # or fpga_emu, fpga_sim, fpga",
}
_OUTPUTS = {
    "Vitis": "RTL: `{p}_prj/solution1/syn/verilog/` and `syn/vhdl/`; synthesis report "
    "`{p}_prj/solution1/syn/report/{p}_csynth.rpt`; IP catalog archive (export=1): `{p}_prj/solution1/impl/ip/`. "
    "The steps are chosen in `build_opt.tcl` (written: reset, csim, synth and export on; cosim off).",
    "Quartus": "Everything under `{p}-fpga.prj/`: `reports/report.html`, the component's HDL in `components/{p}/`.",
    "oneAPI": "Everything under `build/` (`{p}.report.prj/` for `make report`).",
}
_OUTPUTS["Vivado"] = _OUTPUTS["Vitis"].split(" The steps")[0] + " The steps are the arguments of build_prj.tcl."


_README = """# {p}: HLS project (hls4ml 1.3, {backend} backend)

Generated by mlinfn-compress {version} from `{source}`. Top function `{p}` in `firmware/{p}.cpp`: {n_in} inputs of
`{t_in}`, {n_out} outputs (the logits, no softmax) of `{t_out}`; io_parallel, Latency strategy, reuse factor 1.
Every precision below is the quantised IR's, so the design computes exactly what the golden model does;
mlinfn-compress checks that by compiling this directory with g++ (hls4ml's `build_lib.sh`) and comparing the
C simulation with the golden model bit for bit.

| hls4ml layer | class | IR node | precisions |
|---|---|---|---|
{rows}

## Tools

hls4ml 1.3 is tested with Vivado HLS 2020.1, Vitis HLS 2022.2 to 2024.1 (later versions less tested), Intel HLS
20.1 to 21.4 and oneAPI 2024.1 to 2025.0. Nothing here has run a vendor tool.

## C synthesis and export

```sh
cd {dirname}
{build}
```

{outputs}

Test bench data (`tb_data/`): {tb_note}. The vendor C simulation writes its outputs to `tb_data/csim_results.log`,
to compare with `tb_data/tb_output_predictions.dat`.
"""


def _readme(project: HlsProject, graph: Graph, tb_note: str) -> str:
    p = project.project_name
    rows = [f"| `{x.name}` | {x.class_name} | `{x.ir_node}` | " for x in project.layers]
    rows = [
        r + ", ".join(f"{k} `{hls_type(v)}`" for k, v in x.precisions.items()) + " |"
        for r, x in zip(rows, project.layers, strict=True)
    ]
    rows += [f"| — | (removed) | `{n}` | {why} |" for n, why in project.eliminated.items()]
    return _README.format(
        p=p,
        backend=project.backend,
        version=__version__,
        source=Path(graph.source_path).name,
        n_in=project.n_in,
        t_in=hls_type(project.input_type),
        n_out=project.n_out,
        t_out=hls_type(project.output_type),
        rows="\n".join(rows),
        dirname=project.outdir.name,
        build=_BUILD[project.backend].format(p=p),
        outputs=_OUTPUTS[project.backend].format(p=p),
        tb_note=tb_note,
    )


def compile_and_predict(project: HlsProject, x_int: np.ndarray) -> np.ndarray:
    """Compile the project on disk with g++ (hls4ml's C simulation) and run it on integer inputs.

    Returns the outputs as integers on the output type's grid.
    """
    from mlinfn_compress.sim.hls_csim import run_csim

    return run_csim(project, x_int).outputs
