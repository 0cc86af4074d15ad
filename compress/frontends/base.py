"""What every frontend returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir import Graph


@dataclass
class LoadedModel:
    """The float IR plus the source framework's own inference.

    ``reference(x)`` runs the original model on float inputs (N, features) and
    returns its outputs before any final softmax, as float64.  When
    ``reference_exact`` is true the model is quantised by its own framework and
    its inference must equal the golden model bit for bit.
    """

    graph: Graph
    reference: Callable[[np.ndarray], np.ndarray]
    reference_exact: bool
