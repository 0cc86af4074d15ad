"""Walking a TorchScript module as a chain of calls (its own code cannot be traced with torch.fx).

A ``Sequential`` (nested ones too), or a ``forward`` that calls its children
and relu/sigmoid/tanh/softmax/dropout one after the other, is read; branches
(``+``, ``torch.cat``) and reshapes need the module itself: save the
``nn.Module`` (``torch.save(model)``) or its state_dict instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import UnsupportedLayer
from .trace import SUPPORTED, Call, Traced, module_class, module_kind

SCRIPT_OPS = {
    "relu": "relu", "relu_": "relu", "softmax": "softmax", "sigmoid": "sigmoid", "tanh": "tanh",
    "dropout": "identity",
}  # fmt: skip
CHAIN_ONLY = (
    "TorchScript models are read as a chain of layers; for branches, reshapes or functional layers save "
    "the nn.Module itself (torch.save(model)) or its state_dict with --model-class"
)


def _child(prefix: str, name: str, child: Any) -> list[Call]:
    if child.original_name == "Sequential":
        return _sequential(child, f"{prefix}{name}.")
    return [Call(prefix + name, module_kind(child), module_class(child), child, [])]


def _sequential(sm: Any, prefix: str) -> list[Call]:
    return [c for name, child in sm.named_children() for c in _child(prefix, name, child)]


def _chain(path: Path, sm: Any) -> list[Call]:
    """The calls of a TorchScript module: a Sequential, or a forward calling its children in a chain."""
    if sm.original_name == "Sequential":
        return _sequential(sm, "")
    g = sm.graph
    self_v, *inputs = [v.unique() for v in g.inputs()]
    if len(inputs) != 1:
        raise UnsupportedLayer(f"{path.name}: the TorchScript forward takes {len(inputs)} inputs; one is supported")
    cur = inputs[0]
    named: dict[int, Any] = {}  # value -> child module or function name
    calls: list[Call] = []
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
                f"{CHAIN_ONLY}"
            )
        if isinstance(target, tuple):
            calls += _child("", *target)
        else:
            dim = vals[1].toIValue() if op == "softmax" and vals[1].node().kind() == "prim::Constant" else 1
            calls.append(Call(f"{target}_{len(calls)}", op, target, None, [], {"dim": dim}))
        cur = out
    if [v.unique() for v in g.return_node().inputs()] != [cur]:
        raise UnsupportedLayer(f"{path.name}: the TorchScript forward must return the last layer's output alone")
    return calls


def script_trace(path: Path, sm: Any) -> Traced:
    """The TorchScript module ``sm`` as a chain of calls, each reading the one before."""
    calls = _chain(path, sm)
    prev = "input"
    for i, call in enumerate(calls):
        if call.cls.startswith("Quant"):
            raise UnsupportedLayer(
                f"{path.name}: Brevitas layers in TorchScript are not supported ({call.cls} '{call.name}'); save "
                "the model's state_dict and pass --model-class FILE.py:ClassName"
            )
        call.inputs, call.out = [prev], f"v{i}"
        prev = call.out
    if not calls:
        raise UnsupportedLayer(f"{path.name}: the TorchScript model has no layers; supported: {SUPPORTED}")
    return Traced(calls, "input", prev, sm, False)
