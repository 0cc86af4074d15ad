"""A PyTorch model as a list of calls in topological order: traced with torch.fx (or walked in TorchScript).

Each call names the operation in one canonical word (``linear``, ``conv``,
``add``, ``cat``, ``reshape``, ...), the tensors it reads and the arguments it
was given.  ``probe`` runs the model once on a small batch and records the
shape of every tensor, so that reshapes, flattens and views need no parsing
of their arguments.  The frontend and the trainers share this walk.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import short_error
from mlinfn_compress.errors import UnsupportedLayer, UserError

Shape = tuple[int, ...]
PROBE_BATCH = 3  # samples of the shape probe

SUPPORTED = (
    "Linear (also over the last axis of an N-D tensor), Conv1d/Conv2d (any stride, int/tuple/'same'/'valid' "
    "padding), MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d and AdaptiveMaxPool1d/2d to size 1, "
    "BatchNorm1d/2d, Flatten, view/reshape/flatten, Upsample/F.interpolate (nearest, integer factors), "
    "ZeroPad1d/2d, ConstantPad1d/2d and F.pad with zeros, Identity, Dropout, ReLU, ReLU6, Hardtanh, LeakyReLU, "
    "Hardsigmoid, Sigmoid, Tanh, + / torch.add, torch.maximum, torch.minimum, torch.cat, Brevitas QuantIdentity, "
    "QuantReLU, QuantHardTanh, "
    "QuantLinear, QuantConv1d/2d with power-of-two (FixedPoint) quantisers, and a Softmax or Sigmoid at the output"
)

MODULE_KINDS = {
    "Linear": "linear", "QuantLinear": "linear",
    "Conv1d": "conv", "Conv2d": "conv", "QuantConv1d": "conv", "QuantConv2d": "conv",
    "MaxPool1d": "max_pool", "MaxPool2d": "max_pool", "AvgPool1d": "avg_pool", "AvgPool2d": "avg_pool",
    "AdaptiveAvgPool1d": "adaptive_avg_pool", "AdaptiveAvgPool2d": "adaptive_avg_pool",
    "AdaptiveMaxPool1d": "adaptive_max_pool", "AdaptiveMaxPool2d": "adaptive_max_pool",
    "BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm",
    "Flatten": "reshape", "Unflatten": "reshape",
    "Upsample": "interpolate", "UpsamplingNearest2d": "interpolate",
    "ZeroPad1d": "pad", "ZeroPad2d": "pad", "ConstantPad1d": "pad", "ConstantPad2d": "pad",
    "Identity": "identity", "Dropout": "identity", "Dropout1d": "identity", "Dropout2d": "identity",
    "AlphaDropout": "identity", "FeatureAlphaDropout": "identity",
    "ReLU": "relu", "ReLU6": "relu6", "Hardtanh": "hardtanh", "LeakyReLU": "leaky_relu",
    "Hardsigmoid": "hardsigmoid", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax",
    "QuantReLU": "quant_act", "QuantIdentity": "quant_act", "QuantHardTanh": "quant_act",
}  # fmt: skip
METHOD_KINDS = {
    "relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "add": "add",
    "maximum": "maximum", "minimum": "minimum",
    "view": "reshape", "reshape": "reshape", "flatten": "reshape", "squeeze": "reshape", "unsqueeze": "reshape",
    "contiguous": "identity", "size": "meta", "dim": "meta",
}  # fmt: skip
ELEMENTWISE = ("identity", "relu", "relu6", "hardtanh", "leaky_relu", "hardsigmoid", "sigmoid", "tanh", "quant_act")


def function_kinds() -> dict[Any, str]:
    """Torch functions (as torch.fx records them) by canonical kind."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    kinds = {
        "relu": (F.relu, torch.relu, F.relu_, torch.relu_), "relu6": (F.relu6,), "hardtanh": (F.hardtanh,),
        "leaky_relu": (F.leaky_relu,), "hardsigmoid": (F.hardsigmoid,), "sigmoid": (torch.sigmoid, F.sigmoid),
        "tanh": (torch.tanh, F.tanh), "softmax": (torch.softmax, F.softmax),
        "identity": (F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout),
        "add": (operator.add, operator.iadd, torch.add), "cat": (torch.cat, torch.concat, torch.concatenate),
        "maximum": (torch.maximum,), "minimum": (torch.minimum,),
        "reshape": (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze), "pad": (F.pad,),
        "interpolate": (F.interpolate, F.upsample, F.upsample_nearest),
        "max_pool": (F.max_pool1d, F.max_pool2d), "avg_pool": (F.avg_pool1d, F.avg_pool2d),
        "adaptive_avg_pool": (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d),
        "adaptive_max_pool": (F.adaptive_max_pool1d, F.adaptive_max_pool2d),
        "meta": (getattr, operator.getitem),
    }  # fmt: skip
    return {f: kind for kind, fs in kinds.items() for f in fs}


def module_class(m: Any) -> str:
    return str(getattr(m, "original_name", "") or type(m).__name__)


def module_kind(m: Any) -> str:
    """The canonical kind of a leaf module from torch.nn or Brevitas; its class name otherwise."""
    cls = module_class(m)
    library = type(m).__module__.startswith(("torch.nn", "torch.jit", "brevitas"))
    return MODULE_KINDS.get(cls, cls) if library else cls


@dataclass
class Call:
    """One operation of the model: what it is, what it reads, and its arguments."""

    name: str  # the module's qualified name, or the fx node's name for a function
    kind: str  # canonical kind, or the class / function name when it has none
    cls: str  # the module class or the function, as the user wrote it
    module: Any  # the module, or None for a function
    inputs: list[str]  # the values (fx node names) it reads: tensors first, in argument order
    params: dict[str, Any] = field(default_factory=dict)  # a function's arguments by name (normalised)
    out: str = ""  # the value it produces
    users: int = 1  # how many calls read its result

    @property
    def is_module(self) -> bool:
        return self.module is not None

    def param(self, key: str, default: Any = None) -> Any:
        """An argument: the module's attribute, or the function's (normalised) argument."""
        if self.module is not None:
            return getattr(self.module, key, default)
        return self.params.get(key, default)


@dataclass
class Traced:
    """The calls of a model, its input's and output's value names, and the runnable module."""

    calls: list[Call]
    input: str
    output: str
    runner: Any  # fx.GraphModule, or the TorchScript module
    fx: bool


def tracer() -> Any:
    """A torch.fx tracer that keeps every torch.nn / Brevitas module (and every childless module) a leaf."""
    import torch
    import torch.fx as fx

    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            library = type(m).__module__.startswith(("torch.nn", "brevitas"))
            return not isinstance(m, containers) and (library or not list(m.children()))

    return Tracer()


def _function_params(gm: Any, node: Any) -> dict[str, Any]:
    """The non-tensor arguments of an fx call_function / call_method node, by name where torch knows them."""
    if node.op == "call_function":
        try:
            pair = node.normalized_arguments(gm, normalize_to_only_use_kwargs=True)
        except Exception:  # noqa: BLE001 - an argument torch cannot match: keep them positional
            pair = None
        if pair is not None:
            return {k: v for k, v in pair.kwargs.items() if not _has_node(v)}
    params = {f"arg{i}": a for i, a in enumerate(node.args) if not _has_node(a)}
    return params | {k: v for k, v in node.kwargs.items() if not _has_node(v)}


def _has_node(value: Any) -> bool:
    import torch.fx as fx

    found: list[Any] = []
    fx.node.map_arg(value, lambda n: found.append(n) or n)
    return bool(found)


def fx_trace(path: Path, model: Any) -> Traced:
    """Trace ``model.forward`` with torch.fx into calls; UnsupportedLayer when it cannot be traced."""
    import torch.fx as fx

    try:
        gm = fx.GraphModule(model, tracer().trace(model), type(model).__name__)
    except Exception as e:  # noqa: BLE001
        what = f"cannot trace {type(model).__name__}.forward with torch.fx ({short_error(e)})"
        raise UnsupportedLayer(f"{path.name}: {what}; supported: {SUPPORTED}") from e
    functions = function_kinds()
    calls: list[Call] = []
    inputs: list[str] = []
    output = ""
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            inputs.append(node.name)
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                raise UnsupportedLayer(f"{path.name}: forward must return one tensor, not {type(out).__name__}")
            output = out.name
            continue
        reads = [n.name for n in _tensor_args(node)]
        users = len(node.users)
        if node.op == "call_module":
            m = gm.get_submodule(node.target)
            calls.append(Call(str(node.target), module_kind(m), module_class(m), m, reads, {}, node.name, users))
        elif node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            kind = functions.get(node.target, name)
            calls.append(Call(node.name, kind, name, None, reads, _function_params(gm, node), node.name, users))
        elif node.op == "call_method":
            kind = METHOD_KINDS.get(str(node.target), str(node.target))
            cls = f"Tensor.{node.target}"
            calls.append(Call(node.name, kind, cls, None, reads, _function_params(gm, node), node.name, users))
        else:  # get_attr: a parameter or buffer used directly in forward
            raise UnsupportedLayer(
                f"{path.name}: forward reads the tensor '{node.target}' directly; only layers and the supported "
                f"operations on their outputs are supported: {SUPPORTED}"
            )
    if len(inputs) != 1:
        raise UnsupportedLayer(f"{path.name}: forward takes {len(inputs)} inputs; one input tensor is supported")
    return Traced(calls, inputs[0], output, gm, True)


def _tensor_args(node: Any) -> list[Any]:
    """The fx nodes an fx node reads, in argument order (a list argument, as torch.cat's, is flattened)."""
    import torch.fx as fx

    found: list[Any] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found


def probe(path: Path, traced: Traced, shape: Shape, dtype: Any) -> dict[str, Shape]:
    """Run the model once on PROBE_BATCH samples of ``shape``; the shape (without batch) of every tensor value.

    Values that are not tensors (sizes, shapes) are left out.  A UserError says when the model does not run
    on that shape or changes the batch axis.
    """
    import torch
    import torch.fx as fx

    shapes: dict[str, Shape] = {}

    def record(name: str, out: Any) -> None:
        value = getattr(out, "value", out)  # a Brevitas QuantTensor
        if isinstance(value, torch.Tensor):
            if value.dim() == 0 or value.shape[0] != PROBE_BATCH:
                raise UnsupportedLayer(
                    f"{path.name}: operation '{name}' gives a tensor of shape {tuple(value.shape)} for a batch of "
                    f"{PROBE_BATCH}: operations across the batch axis are not supported"
                )
            shapes[name] = tuple(int(s) for s in value.shape[1:])

    class Recorder(fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            record(n.name, out)
            return out

    x = torch.randn(PROBE_BATCH, *shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    try:
        with torch.no_grad():
            if traced.fx:
                Recorder(traced.runner).run(x)
            else:
                record(traced.input, x)
                for call in traced.calls:
                    x = apply_call(call, x)
                    record(call.out, x)
    except UnsupportedLayer:
        raise
    except Exception as e:  # noqa: BLE001 - the model does not run on inputs of this shape
        raise UserError(
            f"{path}: the model does not run on an input of shape {shape} (batch axis excluded): "
            f"{short_error(e)}; give the input shape with --input-shape"
        ) from e
    return shapes


def apply_call(call: Call, x: Any) -> Any:
    """One call of a TorchScript chain on ``x``: its module, or the function it names."""
    import torch

    if call.module is not None:
        return call.module(x)
    if call.kind == "softmax":
        return torch.softmax(x, call.params.get("dim", 1))
    if call.kind == "reshape":
        return torch.flatten(x, call.params.get("start_dim", 0), call.params.get("end_dim", -1))
    functions = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": lambda v: v}
    return functions[call.kind](x)


def input_shape(path: Path, traced: Traced, given: Shape | None, model: Any) -> Shape:
    """The model's input shape (without batch): given, the model's ``example_input_array``, or a first Linear's."""
    if given is not None:
        return tuple(int(s) for s in given)
    example = getattr(model, "example_input_array", None)
    if example is not None and hasattr(example, "shape") and len(example.shape) >= 2:
        return tuple(int(s) for s in example.shape[1:])
    first = _first_layer(traced)
    if first is not None and first.kind == "linear" and first.module is not None:
        return (int(first.module.in_features),)
    what = f"its first layer is {first.cls} '{first.name}', which" if first is not None else "it"
    raise UserError(
        f"{path}: the model's input shape cannot be read from the model ({what} takes inputs of any size); "
        "pass --input-shape with the shape of one sample as the model takes it, e.g. --input-shape 1,28,28 "
        "for (channels, height, width)"
    )


def _first_layer(traced: Traced) -> Call | None:
    """The first call that reads the input other than element-wise."""
    seen = {traced.input}
    for call in traced.calls:
        if call.inputs and call.inputs[0] in seen:
            if call.kind not in ELEMENTWISE:
                return call
            seen.add(call.out)
    return None
