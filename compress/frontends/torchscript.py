"""Walking a TorchScript module as a chain of layers (its own tracing cannot use torch.fx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UnsupportedLayer

SUPPORTED = (
    "Linear, ReLU (module, F.relu, torch.relu), Identity, Dropout, Flatten (of a flat input), Brevitas "
    "QuantIdentity, QuantLinear and QuantReLU with power-of-two (FixedPoint) quantisers, "
    "and a Softmax or Sigmoid at the output"
)
SCRIPT_OPS = {"relu": "relu", "relu_": "relu", "softmax": "softmax", "sigmoid": "sigmoid", "dropout": "identity"}

Step = tuple[str, str, Any, Any]  # (name, kind: class name or function, module or None, fx node or None)


def module_class(m: Any) -> str:
    return str(getattr(m, "original_name", "") or type(m).__name__)


def _script_child(path: Path, prefix: str, name: str, child: Any) -> list[Step]:
    if child.original_name == "Sequential":
        return script_chain(path, child, f"{prefix}{name}.")
    return [(prefix + name, module_class(child), child, None)]


def script_chain(path: Path, sm: Any, prefix: str = "") -> list[Step]:
    """The layers of a TorchScript module: a Sequential, or a forward calling its children in a chain."""
    if sm.original_name == "Sequential":
        return [s for name, child in sm.named_children() for s in _script_child(path, prefix, name, child)]
    g = sm.graph
    self_v, *inputs = [v.unique() for v in g.inputs()]
    if len(inputs) != 1:
        raise UnsupportedLayer(f"{path.name}: the TorchScript forward takes {len(inputs)} inputs; one is supported")
    cur = inputs[0]
    named: dict[int, Any] = {}  # value -> child module or function name
    steps: list[Step] = []
    for n in g.nodes():
        kind, vals = n.kind(), list(n.inputs())
        out = next(iter(n.outputs())).unique() if n.outputsSize() else None
        if kind == "prim::Constant":
            named[out] = n.s("name") if "name" in n.attributeNames() else None
            continue
        if kind == "prim::GetAttr" and vals[0].unique() == self_v:
            named[out] = (n.s("name"), getattr(sm, n.s("name")))
            continue
        if kind == "prim::CallFunction" or (kind == "prim::CallMethod" and n.s("name") == "forward"):
            target, vals = named.get(vals[0].unique()), vals[1:]
        else:
            target = kind.removeprefix("aten::")
        op = SCRIPT_OPS.get(target) if isinstance(target, str) else None
        if [v.unique() for v in vals[:1]] != [cur] or (op is None and not isinstance(target, tuple)):
            raise UnsupportedLayer(
                f"{path.name}: TorchScript operation {kind} in {sm.original_name}.forward cannot be translated; "
                f"a Sequential or a forward calling a chain of supported layers is supported: {SUPPORTED}"
            )
        if isinstance(target, tuple):
            steps += _script_child(path, prefix, *target)
        else:
            dim = vals[1].toIValue() if op == "softmax" and vals[1].node().kind() == "prim::Constant" else 1
            op = op if dim in (1, -1) else "softmax over a dim other than 1"
            steps.append((f"{prefix}{target}_{len(steps)}", op, None, None))
        cur = out
    if [v.unique() for v in g.return_node().inputs()] != [cur]:
        raise UnsupportedLayer(f"{path.name}: the TorchScript forward must return the last layer's output alone")
    return steps
