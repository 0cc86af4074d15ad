"""Pruning and quantisation-aware fine-tuning of a PyTorch model on labelled data.

The model is traced as the frontend traces it (any graph it reads: branches,
skip connections); inputs are in the model's own layout (channels first).
``prune_finetune`` prunes every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d``
by magnitude with ``torch.nn.utils.prune`` (``l1_unstructured`` per layer, or
``global_unstructured``), the sparsity rising polynomially to the target over
the first two thirds of the epochs, then fine-tunes with the masks fixed.
``qat_finetune`` rebuilds a chain of layers in Brevitas (``torch_qat.py``) and
fine-tunes it with the masks re-applied after every step; the frontend reads
the result exactly.  Training uses the outputs before a final softmax or
sigmoid (cross-entropy) or the mean squared error.  torch and brevitas are
imported inside the functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.frameworks.torch.trainable import dtype_of, trainable_trace
from mlinfn_compress.compress.passes.prune import check_target, prune_count

if TYPE_CHECKING:
    pass

Progress = Callable[[str], None] | None
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
RAMP = 2 / 3  # fraction of the epochs over which the sparsity rises


# ---- the model, traced as the frontend traces it ----


def _logits_runner(model: Any) -> Callable[[Any], Any]:
    """A function computing the model's outputs before a final softmax or sigmoid (sharing its parameters)."""
    from mlinfn_compress.compress.frameworks.torch import before_final

    return before_final(trainable_trace(model), model)


# ---- training ----


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
    x = torch.from_numpy(np.asarray(data.x_train, dtype=np.float64)).to(dtype_of(model))
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
    """Prune every Linear and convolution weight by magnitude while fine-tuning; returns (pruned copy, keep-masks).

    The model may be any graph the frontend reads (branches, skip connections).
    Masks are boolean arrays shaped like the weights, keyed by the layer's
    qualified name in the model.  ``model`` itself is not changed.
    """
    import torch
    from torch.nn.utils import prune

    check_target(sparsity, scope)
    trainable_trace(model)  # a model that training can run and the frontend can read
    model = copy.deepcopy(model)
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, kinds)}
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear or convolution layer to prune")
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
    """Fine-tune ``model`` rebuilt in Brevitas (``torch_qat.quantised_copy``); pruned weights (mask 0) stay
    exactly zero.  ``masks`` are keyed by the layer's qualified name (as ``prune_finetune`` returns them).
    """
    from mlinfn_compress.compress.frameworks.torch.qat import quantised_copy

    qmodel = quantised_copy(model, data.x_train, weight_bits, act_bits)
    masks, modules = masks or {}, {}
    for name, mask in masks.items():
        m = getattr(qmodel, name.replace(".", "_"), None)
        if m is None or not hasattr(m, "weight"):
            raise ValueError(f"mask for '{name}': the model has no such Linear or convolution layer")
        if tuple(m.weight.shape) != mask.shape:
            raise ValueError(f"mask for '{name}' has shape {mask.shape}, the weight {tuple(m.weight.shape)}")
        modules[name] = m

    def keep_pruned() -> None:
        _apply_masks(modules, masks)

    keep_pruned()
    _train(qmodel, data, epochs, "qat", progress, batch_size, learning_rate, after_step=keep_pruned)
    return qmodel.eval()


# ---- evaluation ----


def logits(model: Any, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The model's outputs before a final softmax, in its own dtype, as float64."""
    import torch

    run = _logits_runner(model)
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            y = run(torch.from_numpy(np.asarray(x[start : start + batch], dtype=np.float64)).to(dtype_of(model)))
            outs.append(getattr(y, "value", y).detach().cpu().double().numpy())
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0))


def evaluate(model: Any, data: Dataset) -> float:
    """Test accuracy (arg-max of the pre-softmax outputs) or mean squared error."""
    return data.score(logits(model, data.x_test), data.y_test)
