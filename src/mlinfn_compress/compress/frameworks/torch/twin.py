"""The Brevitas framework twin: a Brevitas model whose inference equals the golden model bit for bit.

``save_twin`` turns any quantised IR graph into a model of the class file
``twin_model.py`` (class ``Twin``, an ``nn.Module`` whose forward walks the
graph), saved as a state_dict (``model.pt``), the class file (``model.py``,
self-contained) and its JSON constructor arguments (``twin.json``).  Its
steps are the ones ``plan`` asks for: a ``QuantIdentity`` for the input type,
a ``QuantLinear`` per dense node (also over the last axis of an N-D tensor,
and a standalone batch norm), a ``QuantConv1d``/``QuantConv2d`` per
convolution (weights and bias exactly on their grids), a ``QuantIdentity`` /
``QuantReLU`` for every re-quantisation Brevitas expresses, ``ReLU``,
``Hardtanh`` (relu6, hard tanh), ``LeakyReLU``, ``MaxPool1d/2d``, and the
class file's own modules for the rest: ``FixedQuant`` (rounding and overflow
modes Brevitas lacks), ``TableLookup``, ``TruncAvgPool``, ``Merge``,
``Concat``, ``Reshape``, ``ZeroPad``, ``Crop``, ``Upsample``.  Tensors stay
channels-last, as in the IR (the class file says how).  A model that is a
chain of dense layers, relus and quantisers reads back through the project's
PyTorch frontend (``load_model(model.pt, model_class="model.py:Twin",
model_args=...)``) as an exactly quantised Brevitas model.

Exactness rests on these facts about Brevitas 0.13.4 (checked by the tests):
every quantiser is an ``Int8*PerTensorFixedPoint`` with ``scaling_impl_type=CONST``,
whose threshold (``scaling_const``, ``max_val``) of ``2**(bits - signed - frac)``
gives the scale ``2**-frac``; it computes ``clamp(round(x / scale), lo, hi) * scale``
with ``torch.round`` (half to even: RND_CONV), floor (TRN) or round toward zero
(TRN_ZERO), ``lo = -hi`` for a narrow signed range (SAT_SYM); and in float64
(TF32 off, cuDNN off so that no FFT or Winograd convolution runs) every
value and partial sum that ``plan`` bounds is exact.
torch and brevitas are imported only inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.frameworks.torch.brevitas_file import (
    CLASS_NAME,
    MODEL_FILE,
    ROUNDING,
    STATE_FILE,
    import_class,
    quant_spec,
    write_model,
)
from mlinfn_compress.compress.frameworks.twin_plan import FLOAT64_BITS, NodePlan, Requant, below, kernel, value, walk
from mlinfn_compress.compress.ir import (
    INPUT,
    Cast,
    Clip,
    Concat,
    Crop,
    Graph,
    LeakyRelu,
    Linear,
    Merge,
    Pad,
    Pool,
    Reshape,
    Table,
    Transpose,
    UniqueNames,
    Upsample,
)
from mlinfn_compress.compress.ir.dispatch import OpTable

INFO_FILE = "twin.json"
TWIN_ATTRIBUTES = {"steps", "input_shape", "output", "logits"}  # what the class file's Twin holds beside its steps


def brevitas_quant(rq: Requant) -> dict[str, Any] | None:
    """The class file's Brevitas quantiser computing ``rq`` exactly, or None where Brevitas cannot."""
    t = rq.dst
    if (
        t.width > FLOAT64_BITS
        or t.width - t.signed < 1  # a Brevitas quantiser needs a magnitude bit
        or (rq.rounds and t.rounding not in ROUNDING)
        or (rq.overflows and t.overflow not in ("SAT", "SAT_SYM"))
    ):
        return None
    return quant_spec(t, ROUNDING.get(t.rounding, "ROUND"), t.signed and t.overflow == "SAT_SYM")


def _param_spec(t: FixedType, ints: np.ndarray, where: str) -> dict[str, Any]:
    v = np.asarray(ints)
    if v.size and (int(v.min()) < t.min_int or int(v.max()) > t.max_int):
        raise ValueError(f"{where}: integer values lie outside the range of their type {t}")
    return quant_spec(t)


class _Names(UniqueNames):
    """Unique module names that the class file's Twin accepts as attributes."""

    def __init__(self) -> None:
        import torch

        super().__init__({INPUT})
        self.reserved = set(dir(torch.nn.Module)) | TWIN_ATTRIBUTES

    def __call__(self, base: str) -> str:
        ok = base.isidentifier() and base not in self.reserved
        return super().__call__(base if ok else f"n_{base.replace('.', '_').replace('/', '_')}")


class _Steps:
    """The class file's layer list and state_dict for a quantised graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names = _Names()
        self.layers: list[dict[str, Any]] = []
        self.tensors: dict[str, np.ndarray] = {}

    def add(self, spec: dict[str, Any], inputs: list[str]) -> str:
        """Append a step; returns the name of the tensor it computes."""
        spec["name"] = self.names(spec["name"])
        spec["inputs"] = list(inputs)
        self.layers.append(spec)
        return str(spec["name"])

    def quant(self, x: str, rq: Requant | None, base: str) -> str:
        if rq is None:
            return x
        q = brevitas_quant(rq)
        if q is not None:
            return self.add({"op": "quant", "name": base, "quant": q}, [x])
        return self.add({"op": "fixed", "name": base, "fixed": rq.dst.to_dict()}, [x])

    def linear(self, x: str, p: NodePlan) -> str:
        node = p.node
        assert isinstance(node, Linear) and node.weight_int is not None and node.bias_int is not None
        wt, bt = node.weight_type, node.bias_type
        assert wt is not None and bt is not None
        where = f"node '{node.name}' ({node.kind})"
        weight, bias = kernel(node)
        spec: dict[str, Any] = {"op": "linear", "name": node.name, "in": node.n_in, "out": node.n_out,
                                "weight": _param_spec(wt, node.weight_int, where + " weight")}  # fmt: skip
        if node.window is not None:
            w = node.window
            channels = node.n_in // w.taps
            spec |= {"op": "conv", "in": channels, "kernel": list(w.kernel), "stride": list(w.strides),
                     "pads": [list(pair) for pair in w.pads]}  # fmt: skip
            weight = np.moveaxis(weight, (-1, -2), (0, 1))  # (*kernel, in, out) -> (out, in, *kernel)
        else:
            weight = weight.T
        has_bias = bool(np.any(np.asarray(node.bias_int) != 0))
        if has_bias:
            spec["bias"] = _param_spec(bt, node.bias_int, where + " bias")
        y = self.add(spec, [x])
        self.tensors[f"{y}.weight"] = np.ascontiguousarray(weight)
        if has_bias:
            self.tensors[f"{y}.bias"] = bias
        y = self.quant(y, p.inner, node.name + "_acc")
        return self.quant(y, p.after, node.name + "_q")

    def clip(self, x: str, p: NodePlan) -> str:
        node = p.node
        assert isinstance(node, Clip)
        rq = p.after
        if node.lo == 0 and node.hi is None:
            q = brevitas_quant(rq) if rq is not None else None
            if q is not None:
                return self.add({"op": "quant_relu", "name": node.name, "quant": q}, [x])
            x = self.add({"op": "relu", "name": node.name}, [x])
        else:
            x = self.add({"op": "clamp", "name": node.name, "lo": node.lo, "hi": node.hi}, [x])
        return self.quant(x, rq, node.name + "_q")

    def leaky_relu(self, x: str, p: NodePlan) -> str:
        node = p.node
        assert isinstance(node, LeakyRelu) and node.alpha_type is not None and node.alpha_int is not None
        alpha = value(node.alpha_int, node.alpha_type.frac)
        x = self.add({"op": "leaky_relu", "name": node.name, "alpha": alpha}, [x])
        return self.quant(x, p.after, node.name + "_q")

    def table(self, x: str, p: NodePlan) -> str:
        node = p.node
        assert isinstance(node, Table) and node.index_type is not None and node.table_int is not None
        assert node.result_type is not None
        values = to_float(np.asarray(node.table_int), node.result_type.frac)
        y = self.add({"op": "table", "name": node.name, "index": node.index_type.to_dict(), "size": len(values)}, [x])
        self.tensors[f"{y}.table"] = values
        return y

    def pool(self, x: str, p: NodePlan) -> str:
        node = p.node
        assert isinstance(node, Pool) and node.window is not None
        w, x_t = node.window, self.graph.in_type(node)
        spec: dict[str, Any] = {"name": node.name, "kernel": list(w.kernel), "stride": list(w.strides),
                                "pads": [list(pair) for pair in w.pads]}  # fmt: skip
        if node.mode == "max":  # padding one step below the input's range never wins
            spec |= {"op": "max_pool", "pad_value": below(x_t)}
        else:
            assert node.accum_type is not None
            divisors = node.divisors(self.graph.shape_of(node.inputs[0])).tolist()
            spec |= {"op": "avg_pool", "divisors": divisors, "accum": node.accum_type.to_dict(),
                     "overflow": p.inner is not None}  # fmt: skip
        return self.quant(self.add(spec, [x]), p.after, node.name + "_q")

    def node(self, xs: list[str], p: NodePlan) -> str:
        return STEPS[p.node](self, xs, p)

    def _cast(self, xs: list[str], p: NodePlan) -> str:
        return self.quant(xs[0], p.after, p.node.name)

    def _merge(self, xs: list[str], p: NodePlan) -> str:
        return self.quant(self.add({"op": p.node.op, "name": p.node.name}, xs), p.after, p.node.name + "_q")

    def _move(self, xs: list[str], p: NodePlan, step: dict[str, Any]) -> str:
        """A concatenation or a data movement (their inputs are re-quantised before)."""
        return self.add(step | {"name": p.node.name}, xs)

    def build(self) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], str]:
        g = self.graph
        out = walk(g, INPUT, self.quant, self.node, "input_quant")
        if len(g.output.shape) > 1:
            out = self.add({"op": "flatten", "name": "flatten"}, [out])
        if g.has_argmax:
            self.add({"op": "softmax", "name": "softmax"}, [out])
        return self.layers, self.tensors, out


def _moving(step: Callable[[Any], dict[str, Any]]) -> Callable[[_Steps, list[str], NodePlan], str]:
    return lambda b, xs, p: b._move(xs, p, step(p.node))


# op -> the step of the Brevitas twin's class file that computes it
STEPS: OpTable[Callable[[_Steps, list[str], NodePlan], str]] = OpTable(
    "the Brevitas twin",
    {
        Linear: lambda b, xs, p: b.linear(xs[0], p),
        Clip: lambda b, xs, p: b.clip(xs[0], p),
        LeakyRelu: lambda b, xs, p: b.leaky_relu(xs[0], p),
        Table: lambda b, xs, p: b.table(xs[0], p),
        Pool: lambda b, xs, p: b.pool(xs[0], p),
        Cast: _Steps._cast,
        Merge: _Steps._merge,
        Concat: _moving(lambda n: {"op": "concat", "axis": n.axis}),
        Reshape: _moving(lambda n: {"op": "reshape", "target": list(n.target)}),
        Transpose: _moving(lambda n: {"op": "transpose", "axes": list(n.axes)}),
        Pad: _moving(lambda n: {"op": "pad", "pads": [list(pair) for pair in n.pads]}),
        Crop: _moving(lambda n: {"op": "crop", "crops": [list(pair) for pair in n.crops]}),
        Upsample: _moving(lambda n: {"op": "upsample", "factors": list(n.factors)}),
    },
)


def twin_layers(graph: Graph) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The class file's layer list for ``graph`` and its parameters (state_dict key -> float64 array).

    Raises ValueError naming the node float64 cannot compute exactly.
    """
    layers, tensors, _ = _Steps(graph).build()
    return layers, tensors


def save_twin(graph: Graph, out_dir: Path) -> dict[str, Any]:
    """Build the twin of ``graph`` and save it under ``out_dir`` (load it with ``load_twin``).

    Returns {"state_dict": "model.pt", "model_class": "model.py:Twin", "model_args": {...}},
    paths relative to ``out_dir``.  Raises ValueError naming the node float64
    cannot compute exactly.
    """
    layers, tensors, output = _Steps(graph).build()
    extra = {"input_shape": list(graph.input_shape), "output": output}
    _, _, args = write_model(Path(out_dir), layers, tensors, extra_args=extra)
    info = {"state_dict": STATE_FILE, "model_class": f"{MODEL_FILE}:{CLASS_NAME}", "model_args": args}
    (Path(out_dir) / INFO_FILE).write_text(json.dumps(info))
    return info


def load_twin(out_dir: Path) -> Any:
    """The twin saved under ``out_dir`` (float64, eval mode; run it with ``twin_logits``)."""
    import torch

    out_dir = Path(out_dir)
    info = json.loads((out_dir / INFO_FILE).read_text())
    file, _, name = info["model_class"].rpartition(":")
    model = import_class(out_dir / file, name)(**info["model_args"])
    model.load_state_dict(torch.load(out_dir / info["state_dict"], map_location="cpu", weights_only=True))
    return model.eval()


def twin_logits(model: Any, x_float: np.ndarray, batch: int = 4096, device: str | None = None) -> np.ndarray:
    """Run the twin without its final softmax on float inputs, (N, *input_shape) or flat rows (N, input_size).

    Returns float64 rows (N, output_size), channels-last.  ``device`` ("cpu",
    "cuda"): where to run (default: where the model is).
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = model.double().eval()
    if device is not None:
        model = model.to(device)
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = np.asarray(x_float, dtype=np.float64)
    outs = []
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
        for start in range(0, max(len(x), 1), batch):
            y = model.logits(torch.from_numpy(x[start : start + batch]).to(dev))
            y = getattr(y, "value", y)
            outs.append(y.reshape(y.shape[0], -1).detach().cpu().double().numpy())
    return np.concatenate(outs, axis=0)
