"""Pruning and quantisation-aware fine-tuning of a PyTorch model on labelled data.

``prune_finetune`` prunes every ``nn.Linear`` by magnitude with ``torch.nn.utils.prune``
(``l1_unstructured`` per layer, or ``global_unstructured``), the sparsity rising
polynomially to the target over the first two thirds of the epochs, then fine-tunes
with the masks fixed.  ``qat_finetune`` rebuilds the model in Brevitas (fixed-point
input, ``Int8WeightPerTensorFixedPoint`` weights, biases on the accumulator's grid,
``QuantReLU`` with power-of-two scales from the activations' ranges) and fine-tunes it
with the masks re-applied after every step; ``save_brevitas`` writes it with constant
scales for the PyTorch frontend.  Training uses the outputs before a final softmax
(cross-entropy) or the mean squared error.  torch and brevitas are imported inside the functions.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset
from .fixed import integer_bits_for
from .prune import check_target, prune_count
from .twins.brevitas_file import constant_layers, write_model

Progress = Callable[[str], None] | None
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
CLASS_NAME = "FixedPointNet"
INPUT_QUANT = "input_quant"
RAMP = 2 / 3  # fraction of the epochs over which the sparsity rises
BIAS_MARGIN = 4.0  # biases may grow this much during fine-tuning before their quantiser saturates


# ---- the model as a chain of layers ----


def _tracer() -> Any:
    import torch
    import torch.fx as fx

    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            library = type(m).__module__.startswith(("torch.nn", "brevitas"))
            return not isinstance(m, containers) and (library or not list(m.children()))

    return Tracer()


def _step_kind(node: Any, module: Any) -> str:
    """'linear', 'relu', 'softmax', 'identity' or what else the fx node does."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    nn = torch.nn
    if module is not None:
        if isinstance(module, nn.Linear):
            return "linear"
        if isinstance(module, nn.ReLU):
            return "relu"
        if isinstance(module, nn.Softmax) and module.dim in (None, 1, -1):
            return "softmax"
        flat = isinstance(module, nn.Flatten) and module.start_dim == 1
        if flat or isinstance(module, nn.Dropout | nn.Identity | nn.AlphaDropout):
            return "identity"
        return type(module).__name__
    target = node.target
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if target in (torch.relu, F.relu, torch.relu_, F.relu_, "relu", "relu_"):
        return "relu"
    if target in (torch.softmax, F.softmax, "softmax") and dim in (1, -1):
        return "softmax"
    if target in (F.dropout, "dropout") or (target in (torch.flatten, "flatten") and dim == 1):
        return "identity"
    return str(getattr(target, "__name__", target))


def _chain(model: Any) -> list[tuple[str, str, Any]]:
    """The layers as (name, kind, module or None); ValueError unless forward is a chain of Linear, ReLU,
    Dropout, Identity and Flatten layers ending, optionally, in a softmax."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError("a TorchScript model cannot be fine-tuned; save the nn.Module itself (torch.save(model))")
    try:
        graph = _tracer().trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure
        raise ValueError(f"cannot trace {type(model).__name__}.forward with torch.fx ({type(e).__name__}: {e})") from e
    steps: list[tuple[str, str, Any]] = []
    cur = None
    for node in graph.nodes:
        if node.op == "placeholder" and cur is None:
            cur = node
            continue
        if node.op == "output":
            if node.args[0] is not cur:
                raise ValueError("forward must return the last layer's output alone")
            break
        if node.op not in ("call_module", "call_function", "call_method") or node.all_input_nodes != [cur]:
            raise ValueError(f"operation '{node.name}' does not continue a single chain of layers")
        module = model.get_submodule(node.target) if node.op == "call_module" else None
        kind = _step_kind(node, module)
        if steps and steps[-1][1] == "softmax" and kind != "identity":
            raise ValueError(f"'{node.name}' follows the softmax; the softmax must be last")
        steps.append((str(node.target) if module is not None else node.name, kind, module))
        cur = node
    return steps


def _logits_runner(model: Any) -> Callable[[Any], Any]:
    """A function computing the model's outputs before a final softmax (sharing its parameters)."""
    import torch.fx as fx

    try:
        graph = _tracer().trace(model)
    except Exception:  # noqa: BLE001 - run the model as it is
        return model  # type: ignore[no-any-return]
    out = next(n for n in graph.nodes if n.op == "output")
    last = out.args[0]
    if not isinstance(last, fx.Node) or last.op not in ("call_module", "call_function", "call_method"):
        return model  # type: ignore[no-any-return]
    if _step_kind(last, model.get_submodule(last.target) if last.op == "call_module" else None) != "softmax":
        return model  # type: ignore[no-any-return]
    gm = fx.GraphModule(model, graph)
    out.args = (last.args[0],)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


# ---- training ----


def _dtype(model: Any) -> Any:
    import torch

    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _train(
    model: Any,
    data: Dataset,
    epochs: int,
    stage: str,
    progress: Progress,
    batch_size: int,
    learning_rate: float,
    before_epoch: Callable[[int], None] = lambda epoch: None,
    after_step: Callable[[], None] = lambda: None,
) -> None:
    """Adam on the outputs before a final softmax; one progress line per epoch."""
    import torch

    run = _logits_runner(model)
    classify = data.task == "classification"
    x = torch.from_numpy(np.asarray(data.x_train, dtype=np.float64)).to(_dtype(model))
    y = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64 if classify else np.float64))
    y = y if classify else y.reshape(len(y), -1).to(x.dtype)
    loss_fn = torch.nn.CrossEntropyLoss() if classify else torch.nn.MSELoss()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    for epoch in range(epochs):
        before_epoch(epoch)
        model.train()
        total, score = 0.0, 0.0
        for idx in torch.randperm(len(x)).split(batch_size):
            out = run(x[idx])
            out = getattr(out, "value", out)  # a Brevitas QuantTensor
            target = y[idx]
            loss = loss_fn(out, target) if classify else loss_fn(out.reshape(target.shape), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            after_step()
            total += float(loss.detach()) * len(idx)
            with torch.no_grad():
                if classify:
                    score += float((out.argmax(dim=1) == target).sum())
                else:
                    score += float(((out.reshape(target.shape) - target) ** 2).mean(dim=1).sum())
        model.eval()
        if progress is not None:
            n = max(1, len(x))
            progress(f"{stage} epoch {epoch + 1}/{epochs}: loss {total / n:.4f}, {data.metric} {score / n:.4f}")


# ---- pruning ----


def _pruned(module: Any) -> int:
    mask = getattr(module, "weight_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


def _scores(module: Any) -> Any:  # the magnitudes of the current weights, pruned ones too (their mask excludes them)
    return getattr(module, "weight_orig", module.weight).detach().abs()


def _prune_to(linears: dict[str, Any], sparsity: float, scope: str) -> None:
    """Prune more weights (the smallest of those left) until ``sparsity`` is reached."""
    from torch.nn.utils import prune

    if scope == "layer":
        for m in linears.values():
            amount = prune_count(m.weight.numel(), sparsity) - _pruned(m)
            if amount > 0:
                prune.l1_unstructured(m, "weight", amount=amount, importance_scores=_scores(m))
        return
    total = sum(m.weight.numel() for m in linears.values())
    amount = prune_count(total, sparsity) - sum(_pruned(m) for m in linears.values())
    if amount > 0:
        params = [(m, "weight") for m in linears.values()]
        scores = {(m, "weight"): _scores(m) for m in linears.values()}
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount, importance_scores=scores)


def schedule(sparsity: float, epochs: int) -> list[float]:
    """Sparsity at the start of each epoch: polynomial (cubic) rise to the target over ~2/3 of the epochs."""
    ramp = max(1, round(RAMP * epochs))
    return [sparsity * (1.0 - (1.0 - min(e + 1, ramp) / ramp) ** 3) for e in range(epochs)]


def prune_finetune(
    model: Any,
    data: Dataset,
    sparsity: float,
    scope: str,
    epochs: int,
    progress: Progress = None,
    *,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Prune every Linear weight by magnitude while fine-tuning; returns (pruned copy, keep-masks).

    Masks are boolean arrays shaped like the weights (out, in), keyed by the
    Linear's qualified name in the model.  ``model`` itself is not changed.
    """
    import torch
    from torch.nn.utils import prune

    check_target(sparsity, scope)
    _chain(model)  # a chain of layers that training can run (not TorchScript, no unsupported layer)
    model = copy.deepcopy(model)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer to prune")
    targets = schedule(sparsity, epochs)

    def before_epoch(epoch: int) -> None:
        _prune_to(linears, targets[epoch], scope)

    _train(model, data, epochs, "prune", progress, batch_size, learning_rate, before_epoch=before_epoch)
    masks = {}
    for name, m in linears.items():
        if hasattr(m, "weight_mask"):
            masks[name] = m.weight_mask.detach().cpu().numpy() != 0
            prune.remove(m, "weight")
        else:
            masks[name] = np.ones(tuple(m.weight.shape), dtype=bool)
    return model.eval(), masks


# ---- quantisation-aware training ----


@functools.cache
def _quantizers() -> dict[str, Any]:
    """Fixed-point quantisers: weights scaled from their statistics, constant activations, biases on the grid."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias

    class ConstAct(Int8ActPerTensorFixedPoint):  # type: ignore[misc]
        scaling_impl_type = ScalingImplType.CONST
        scaling_min_val = None

    return {"weight": Int8WeightPerTensorFixedPoint, "act": ConstAct, "bias": Int16Bias}


def _act_kwargs(bits: int, integer: int, signed: bool) -> dict[str, Any]:
    """A constant power-of-two activation quantiser: ``bits`` bits, ``integer`` of them above the point."""
    top = math.ldexp(1.0, integer - int(signed))  # the threshold: scale 2**(integer - bits)
    q = _quantizers()["act"]
    return {"act_quant": q, "bit_width": bits, "max_val": top, "min_val": -top if signed else 0.0, "signed": signed}


def _ranges(steps: list[tuple[str, str, Any]], x: np.ndarray) -> list[float]:
    """Largest absolute output of every step of the float model on ``x``."""
    import torch

    v = torch.from_numpy(np.asarray(x, dtype=np.float64))
    out = []
    with torch.no_grad():
        for _, kind, m in steps:
            if kind == "linear":
                v = torch.nn.functional.linear(v, m.weight.double(), None if m.bias is None else m.bias.double())
            elif kind == "relu":
                v = torch.relu(v)
            out.append(float(v.abs().max()) if v.numel() else 0.0)
    return out


def quantised_copy(model: Any, x: np.ndarray, weight_bits: int, act_bits: int) -> Any:
    """The model rebuilt in Brevitas with its weights (a new ``nn.Sequential``).

    Layers keep their names ('.' becomes '_'); the input quantiser is named
    ``input_quant``.  Activation scales are powers of two from the ranges on ``x``.
    """
    import brevitas.nn as qnn
    import torch

    steps = _chain(model)
    for name, kind, m in steps:
        if kind not in ("linear", "relu", "softmax", "identity"):
            raise ValueError(f"layer '{name}' ({kind}) cannot be quantisation-aware trained")
        if type(m).__module__.startswith("brevitas"):
            raise ValueError(f"layer '{name}' ({type(m).__name__}) is already quantised by Brevitas")
    steps = [s for s in steps if s[1] != "identity"]
    if not any(kind == "linear" for _, kind, _ in steps):
        raise ValueError(f"{type(model).__name__} has no Linear layer")
    ranges = _ranges(steps, x)
    last = max(i for i, s in enumerate(steps) if s[1] != "softmax")
    q = _quantizers()
    x_max = float(np.max(np.abs(x))) if np.size(x) else 0.0
    x_integer = integer_bits_for(x_max, signed=True)
    layers = [(INPUT_QUANT, qnn.QuantIdentity(**_act_kwargs(act_bits, x_integer, True), return_quant_tensor=True))]
    in_frac = act_bits - x_integer
    used = {INPUT_QUANT}
    for i, (name, kind, m) in enumerate(steps):
        key = name.replace(".", "_")
        key = f"{key}_{i}" if key in used else key
        used.add(key)
        rqt = i < last
        if kind == "linear":
            w = m.weight.detach().double()
            w_frac = weight_bits - 1 - math.ceil(math.log2(max(float(w.abs().max()), 2.0**-60)))
            kw: dict[str, Any] = {}
            if m.bias is not None:  # on the accumulator's grid, wide enough for the bias's range
                top = max(float(m.bias.detach().abs().max()) * BIAS_MARGIN, 1.0)
                bits = max(2, integer_bits_for(top, signed=True) + in_frac + w_frac)
                kw = {"bias_quant": q["bias"], "bias_bit_width": bits}
            layer = qnn.QuantLinear(
                m.in_features, m.out_features, bias=m.bias is not None, weight_quant=q["weight"],
                weight_bit_width=weight_bits, return_quant_tensor=rqt, **kw,
            )  # fmt: skip
            with torch.no_grad():
                layer.weight.copy_(m.weight)
                if m.bias is not None:
                    layer.bias.copy_(m.bias)
            in_frac += w_frac
        elif kind == "relu":
            integer = integer_bits_for(ranges[i], signed=False)
            layer = qnn.QuantReLU(**_act_kwargs(act_bits, integer, False), return_quant_tensor=rqt)
            in_frac = act_bits - integer
        else:
            layer = torch.nn.Softmax(dim=1)
        layers.append((key, layer))
    return torch.nn.Sequential(OrderedDict(layers)).to(_dtype(model)).eval()


def _apply_masks(modules: dict[str, Any], masks: dict[str, np.ndarray]) -> None:
    import torch

    with torch.no_grad():
        for name, m in modules.items():
            m.weight.mul_(torch.from_numpy(masks[name]).to(m.weight.dtype))


def qat_finetune(
    model: Any,
    data: Dataset,
    masks: dict[str, np.ndarray] | None,
    weight_bits: int,
    act_bits: int,
    epochs: int,
    progress: Progress = None,
    *,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
) -> Any:
    """Fine-tune ``model`` rebuilt in Brevitas (``quantised_copy``); pruned weights (mask 0) stay exactly zero.

    ``masks`` are keyed by the Linear's qualified name (as ``prune_finetune`` returns them).
    """
    qmodel = quantised_copy(model, data.x_train, weight_bits, act_bits)
    masks, modules = masks or {}, {}
    for name, mask in masks.items():
        m = getattr(qmodel, name.replace(".", "_"), None)
        if m is None or not hasattr(m, "weight"):
            raise ValueError(f"mask for '{name}': the model has no such Linear layer")
        if tuple(m.weight.shape) != mask.shape:
            raise ValueError(f"mask for '{name}' has shape {mask.shape}, the weight {tuple(m.weight.shape)}")
        modules[name] = m

    def keep_pruned() -> None:
        _apply_masks(modules, masks)

    keep_pruned()
    _train(qmodel, data, epochs, "qat", progress, batch_size, learning_rate, after_step=keep_pruned)
    return qmodel.eval()


# ---- saving ----


def save_brevitas(model: Any, out_dir: Path) -> tuple[Path, str, dict[str, Any]]:
    """Save a model from ``qat_finetune`` with its scales as constants: state_dict + class file.

    Returns (state_dict path, "out_dir/model.py:FixedPointNet", the constructor's
    arguments) for ``load_model(path, model_class=..., model_args=...)``; the
    saved model's inference equals ``model``'s (in float64) bit for bit.
    """
    path, file, args = write_model(Path(out_dir), *constant_layers(model), CLASS_NAME)
    return path, f"{file}:{CLASS_NAME}", args


# ---- evaluation ----


def logits(model: Any, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The model's outputs before a final softmax, in its own dtype, as float64."""
    import torch

    run = _logits_runner(model)
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            y = run(torch.from_numpy(np.asarray(x[start : start + batch], dtype=np.float64)).to(_dtype(model)))
            outs.append(getattr(y, "value", y).detach().cpu().double().numpy())
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0))


def evaluate(model: Any, data: Dataset) -> float:
    """Test accuracy (arg-max of the pre-softmax outputs) or mean squared error."""
    return data.score(logits(model, data.x_test), data.y_test)
