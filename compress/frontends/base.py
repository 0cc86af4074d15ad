"""What every frontend returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph


@dataclass
class LoadedModel:
    """The float IR plus the source framework's own inference.

    ``reference(x)`` runs the original model on float inputs, (N, *input_shape)
    or flat rows (N, features), and returns its outputs before any final
    softmax or sigmoid as flat float64 rows (N, outputs), channels-last.  When
    ``reference_exact`` is true the model is quantised by its own framework and
    its inference must equal the golden model bit for bit.
    """

    graph: Graph
    reference: Callable[[np.ndarray], np.ndarray]
    reference_exact: bool
    model: Any = None  # the framework's model object, for fine-tuning


def safe_name(name: str) -> str:
    """A lower-case identifier made from a model's name."""
    out = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    if not out or not out[0].isalpha():
        out = "model_" + out
    return out.replace("__", "_")


def short_error(e: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a user-facing message."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:limit]
