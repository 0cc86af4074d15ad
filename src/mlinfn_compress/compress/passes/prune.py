"""One-shot magnitude pruning of the IR's float weights (no data, no fine-tuning)."""

from __future__ import annotations

import math

import numpy as np

from mlinfn_compress.compress.ir import Graph, Linear
from mlinfn_compress.errors import UserError

SCOPES = ("layer", "global")


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"--prune must be at least 0 and below 1, got {sparsity}")


def check_target(sparsity: float, scope: str) -> None:
    """ValueError unless ``scope`` is one of SCOPES and 0 <= ``sparsity`` < 1 (for the trainers)."""
    if scope not in SCOPES:
        raise ValueError(f"pruning scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be at least 0 and below 1, got {sparsity}")


def prune_count(size: int, sparsity: float) -> int:
    """Weights to prune so that at least ``sparsity`` of ``size`` are zero, keeping at least one."""
    return min(size - 1, math.ceil(sparsity * size - 1e-9))


def magnitude_masks(weights: dict[str, np.ndarray], sparsity: float, scope: str) -> dict[str, np.ndarray]:
    """Keep-masks that zero the ``sparsity`` fraction of smallest-magnitude weights.

    ``layer``: that fraction of every layer; ``global``: of all weights together,
    with one threshold across layers.  Ties at the threshold are pruned in index
    order so that the count is exact.
    """
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise UserError(f"--prune-scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if scope == "layer":
        return {name: _mask(np.abs(w).ravel(), sparsity).reshape(w.shape) for name, w in weights.items()}
    names = list(weights)
    flat = np.concatenate([np.abs(weights[n]).ravel() for n in names]) if names else np.zeros(0)
    keep = _mask(flat, sparsity)
    masks, start = {}, 0
    for n in names:
        size = weights[n].size
        masks[n] = keep[start : start + size].reshape(weights[n].shape)
        start += size
    return masks


def _mask(magnitudes: np.ndarray, sparsity: float) -> np.ndarray:
    k = int(round(sparsity * magnitudes.size))
    keep = np.ones(magnitudes.size, dtype=bool)
    if k:
        keep[np.argsort(magnitudes, kind="stable")[:k]] = False
    return keep


def prunable(graph: Graph) -> list[Linear]:
    """The nodes whose weights pruning removes: every CMVM but a standalone batch norm's scale."""
    return [n for n in graph.nodes if isinstance(n, Linear) and n.label != "batchnorm" and n.weight is not None]


def prune_graph(graph: Graph, sparsity: float, scope: str) -> dict[str, float]:
    """Zero the smallest float weights of every dense and convolution node; returns each layer's sparsity.

    A batch norm that stands alone (a per-channel scale) is left as it is.
    """
    dense = {n.name: n for n in prunable(graph)}
    weights = {name: n.weight for name, n in dense.items() if n.weight is not None}  # prunable: all have one
    masks = magnitude_masks(weights, sparsity, scope)
    result = {}
    for name, node in dense.items():
        assert node.weight is not None
        node.weight = np.where(masks[name], node.weight, 0.0)
        node.notes.append(f"pruned one-shot by magnitude ({scope} scope) to {1 - masks[name].mean():.1%} zeros")
        result[name] = float(1 - masks[name].mean())
    return result
