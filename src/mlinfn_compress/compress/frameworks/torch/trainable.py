"""The model as the trainers see it: traced as the frontend traces it, and the dtype it computes in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.torch.trace import Traced
from mlinfn_compress.errors import UserError


def trainable_trace(model: Any) -> Traced:
    """The model's calls (torch.fx); ValueError for a TorchScript model or a layer the frontend cannot read."""
    import torch

    from mlinfn_compress.compress.frameworks.torch import trace_model
    from mlinfn_compress.compress.frameworks.torch.layers import HANDLERS
    from mlinfn_compress.compress.frameworks.torch.translate import check_supported

    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError("a TorchScript model cannot be fine-tuned; save the nn.Module itself (torch.save(model))")
    name = Path(type(model).__name__)
    try:
        tr = trace_model(name, model)
        check_supported(name, tr, HANDLERS)
    except UserError as e:
        raise ValueError(str(e).removeprefix(f"{name}: ")) from e
    return tr


def dtype_of(model: Any) -> Any:
    """The floating-point dtype of the model's parameters (float32 when it has none)."""
    import torch

    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
