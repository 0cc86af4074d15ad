"""Walking a TorchScript module as a chain of calls (its own code cannot be traced with torch.fx).

A ``Sequential``, or a ``forward`` that calls its children and
relu/sigmoid/tanh/softmax/dropout/flatten one after the other, is read, and so
is every module of the user's inside it whose ``forward`` is such a chain
(nested to any depth), whether the file was written by ``torch.jit.script``
or ``torch.jit.trace`` (a traced layer is rebuilt as its torch.nn module by
``script_layers``); branches (``+``, ``torch.cat``) and other reshapes need
the module itself: save the ``nn.Module`` (``torch.save(model)``) or its
state_dict instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.torch.script_layers import eager_layer, needs_rebuilding
from mlinfn_compress.compress.frameworks.torch.trace import (
    MODULE_KINDS,
    SUPPORTED,
    Call,
    Traced,
    apply_call,
    module_class,
    module_kind,
)
from mlinfn_compress.errors import UnsupportedLayer

SCRIPT_OPS = {
    "relu": "relu", "relu_": "relu", "softmax": "softmax", "sigmoid": "sigmoid", "tanh": "tanh",
    "dropout": "identity", "flatten": "reshape",
}  # fmt: skip
CHAIN_ONLY = (
    "TorchScript models are read as a chain of layers; for branches, reshapes other than flatten or other "
    "functional layers save the nn.Module itself (torch.save(model)) or its state_dict with --model-class"
)


def _child(path: Path, prefix: str, name: str, child: Any) -> list[Call]:
    """The calls of one child module: a layer, or the chain inside a Sequential or a module of the user's."""
    qual = prefix + name
    cls = str(child.original_name)
    if cls == "Sequential":
        return _sequential(path, child, f"{qual}.")
    if cls not in MODULE_KINDS and list(child.named_children()):
        return _chain(path, child, f"{qual}.")
    module = eager_layer(path.name, qual, child).eval() if needs_rebuilding(child) else child
    return [Call(qual, module_kind(child), module_class(child), module, [])]


def _sequential(path: Path, sm: Any, prefix: str) -> list[Call]:
    return [c for name, child in sm.named_children() for c in _child(path, prefix, name, child)]


def _function_params(op: str, vals: list[Any]) -> dict[str, Any]:
    """The constant arguments of a function the chain applies (softmax's dim, flatten's dims)."""

    def const(i: int, default: Any) -> Any:
        return vals[i].toIValue() if len(vals) > i and vals[i].node().kind() == "prim::Constant" else default

    if op == "softmax":
        return {"dim": const(1, 1)}
    if op == "reshape":
        return {"start_dim": const(1, 0), "end_dim": const(2, -1)}
    return {}


def _chain(path: Path, sm: Any, prefix: str = "") -> list[Call]:
    """The calls of a TorchScript module: a Sequential, or a forward calling its children in a chain."""
    if sm.original_name == "Sequential":
        return _sequential(path, sm, prefix)
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
            if not vals:  # a traced layer that passes its input on (Identity) is called with nothing
                continue
        else:
            target = kind.removeprefix("aten::")
        op = SCRIPT_OPS.get(target) if isinstance(target, str) else None
        if [v.unique() for v in vals[:1]] != [cur] or (op is None and not isinstance(target, tuple)):
            raise UnsupportedLayer(
                f"{path.name}: TorchScript operation {kind} in {sm.original_name}.forward cannot be translated; "
                f"{CHAIN_ONLY}"
            )
        if isinstance(target, tuple):
            calls += _child(path, prefix, *target)
        else:
            assert op is not None
            calls.append(Call(f"{prefix}{target}_{len(calls)}", op, target, None, [], _function_params(op, vals)))
        cur = out
    if [v.unique() for v in g.return_node().inputs()] != [cur]:
        raise UnsupportedLayer(f"{path.name}: the TorchScript forward must return the last layer's output alone")
    return calls


def chain_module(calls: list[Call]) -> Any:
    """An nn.Module running ``calls`` in order (its layers are its children, so ``.double()`` reaches them)."""
    import torch

    class ScriptChain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = calls
            for i, call in enumerate(calls):
                if call.module is not None:
                    self.add_module(f"layer{i}", call.module)

        def forward(self, x: Any) -> Any:
            for call in self.steps:
                x = apply_call(call, x)
            return x

    return ScriptChain().eval()


def script_trace(path: Path, sm: Any) -> Traced:
    """The TorchScript module ``sm`` as a chain of calls, each reading the one before; its runner is an
    nn.Module of the same layers (``chain_module``)."""
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
    return Traced(calls, "input", prev, chain_module(calls), False)
