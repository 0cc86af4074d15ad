"""The layers of a TorchScript file as the torch.nn modules they were saved from.

``torch.jit.script`` keeps a layer's constants (``in_features``,
``kernel_size``, ...) as attributes; ``torch.jit.trace`` keeps only its
parameters and buffers and writes the constants into the one ATen call of
the layer's traced ``forward``.  A traced layer is rebuilt here as its
torch.nn module from those two sources (the weight's shape, the call's
constant arguments), so the translator reads it like any other module.
"""

from __future__ import annotations

from typing import Any

from mlinfn_compress.errors import UnsupportedLayer

# class -> (the ATen calls its traced forward makes, {constructor argument: position in that call})
POOL = {"kernel_size": 1, "stride": 2, "padding": 3}
ATEN_ARGS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "MaxPool1d": (("max_pool1d",), POOL | {"dilation": 4, "ceil_mode": 5}),
    "MaxPool2d": (("max_pool2d",), POOL | {"dilation": 4, "ceil_mode": 5}),
    "AvgPool1d": (("avg_pool1d",), POOL | {"ceil_mode": 4, "count_include_pad": 5}),
    "AvgPool2d": (("avg_pool2d",), POOL | {"ceil_mode": 4, "count_include_pad": 5, "divisor_override": 6}),
    "AdaptiveAvgPool1d": (("adaptive_avg_pool1d",), {"output_size": 1}),
    "AdaptiveAvgPool2d": (("adaptive_avg_pool2d",), {"output_size": 1}),
    "AdaptiveMaxPool1d": (("adaptive_max_pool1d",), {"output_size": 1}),
    "AdaptiveMaxPool2d": (("adaptive_max_pool2d",), {"output_size": 1}),
    "LeakyReLU": (("leaky_relu",), {"negative_slope": 1}),
    "Hardtanh": (("hardtanh",), {"min_val": 1, "max_val": 2}),
    "Softmax": (("softmax",), {"dim": 1}),
    "Flatten": (("flatten",), {"start_dim": 1, "end_dim": 2}),
    "ZeroPad1d": (("pad", "constant_pad_nd"), {"padding": 1}),
    "ZeroPad2d": (("pad", "constant_pad_nd"), {"padding": 1}),
    "ConstantPad1d": (("pad",), {"padding": 1, "value": 3}),
    "ConstantPad2d": (("pad",), {"padding": 1, "value": 3}),
}
NO_ARGUMENTS = ("ReLU", "ReLU6", "Sigmoid", "Tanh", "Hardsigmoid", "Identity", "Dropout", "Dropout1d", "Dropout2d",
                "AlphaDropout", "FeatureAlphaDropout")  # fmt: skip
CONV = {"_convolution": {"stride": 3, "padding": 4, "dilation": 5, "groups": 8},
        "_convolution_mode": {"stride": 3, "padding": 4, "dilation": 5, "groups": 6}}  # fmt: skip


class NotConstant(Exception):
    pass


def _constant(value: Any) -> Any:
    """The constant a TorchScript value holds (a list of constants too)."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    raise NotConstant(node.kind())


def needs_rebuilding(child: Any) -> bool:
    """Whether a TorchScript layer lacks the constants its torch.nn class keeps (it was traced, not scripted)."""
    import torch

    cls = getattr(torch.nn, str(getattr(child, "original_name", "")), None)
    constants = getattr(cls, "__constants__", [])
    return cls is not None and not all(hasattr(child, name) for name in constants)


def eager_layer(file: str, name: str, child: Any) -> Any:
    """The torch.nn module a traced TorchScript layer was saved from; UnsupportedLayer when it cannot be read."""
    import torch

    cls_name = str(child.original_name)
    cls = getattr(torch.nn, cls_name)
    calls = [n for n in child.graph.nodes() if n.kind().startswith("aten::")]
    where = f"{file}: the traced TorchScript layer '{name}' ({cls_name})"
    if cls_name in NO_ARGUMENTS:
        return cls()
    if len(calls) != 1:
        ops = ", ".join(n.kind() for n in calls) or "none"
        raise UnsupportedLayer(
            f"{where} makes the calls {ops}, not one that it can be read from; save the model with "
            "torch.jit.script, or the nn.Module itself"
        )
    (call,) = calls
    op, args = call.kind().removeprefix("aten::"), list(call.inputs())
    try:
        if cls_name == "Linear" and op == "linear":
            n_out, n_in = child.weight.shape
            return _with_state(torch.nn.Linear(n_in, n_out, bias=_has(child, "bias")), child)
        if cls_name in ("Conv1d", "Conv2d") and op in CONV:
            return _conv(cls, child, {k: _constant(args[i]) for k, i in CONV[op].items()}, op == "_convolution", args)
        if cls_name in ("BatchNorm1d", "BatchNorm2d") and op == "batch_norm":
            if getattr(child, "running_mean", None) is None:
                raise UnsupportedLayer(f"{where} normalises with batch statistics (track_running_stats=False)")
            bn = cls(
                child.running_mean.numel(), eps=_constant(args[7]), affine=getattr(child, "weight", None) is not None
            )
            return _with_state(bn, child)
        if cls_name in ("Upsample", "UpsamplingNearest2d") and op.startswith("upsample_nearest"):
            size, scales = _constant(args[1]), _constant(args[2])
            return (
                torch.nn.Upsample(size=size, mode="nearest") if size else torch.nn.Upsample(scale_factor=tuple(scales))
            )
        ops, positions = ATEN_ARGS.get(cls_name, ((), {}))
        if op in ops:
            kwargs = {k: _constant(args[i]) for k, i in positions.items() if i < len(args)}
            if op == "constant_pad_nd" and cls_name.startswith("ZeroPad"):
                kwargs = {"padding": tuple(kwargs["padding"])}
            return cls(**kwargs)
    except NotConstant as e:
        raise UnsupportedLayer(
            f"{where} computes an argument of aten::{op} ({e}); save it with torch.jit.script"
        ) from e
    raise UnsupportedLayer(
        f"{where} (aten::{op}) cannot be read from a traced file; save the model with torch.jit.script, or the "
        "nn.Module itself"
    )


def _conv(cls: Any, child: Any, found: dict[str, Any], explicit: bool, args: list[Any]) -> Any:
    w = child.weight
    if explicit and _constant(args[6]):
        raise UnsupportedLayer(f"'{child.original_name}' is a transposed convolution; it is not supported")
    groups = int(found["groups"])
    conv = cls(int(w.shape[1]) * groups, int(w.shape[0]), tuple(int(k) for k in w.shape[2:]),
               stride=tuple(found["stride"]), padding=found["padding"] if isinstance(found["padding"], str)
               else tuple(found["padding"]), dilation=tuple(found["dilation"]), groups=groups,
               bias=_has(child, "bias"))  # fmt: skip
    return _with_state(conv, child)


def _has(child: Any, name: str) -> bool:
    """Whether a traced layer holds the parameter ``name`` (tracing leaves out those that are None)."""
    return getattr(child, name, None) is not None


def _with_state(module: Any, child: Any) -> Any:
    """``module`` holding the traced layer's parameters and buffers, in their dtype."""
    state = dict(child.state_dict())
    dtype = next(iter(state.values())).dtype if state else None
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise UnsupportedLayer(f"'{child.original_name}': its parameters {sorted(state)} do not fit the layer")
    return module.to(dtype) if dtype is not None else module
