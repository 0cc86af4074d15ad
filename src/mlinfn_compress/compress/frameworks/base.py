"""What every framework offers (``Framework``), and what its loading returns (``LoadedModel``)."""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError


@dataclass(frozen=True)
class Layout:
    """Where the elements of the IR's tensor lie in the model's own arrays.

    ``model_shape`` is one sample as the model takes or gives it (PyTorch:
    channels first); ``order[j]`` is the flat (row-major) index, in that
    shape, of the IR tensor's flat element j (None: the same order).
    """

    model_shape: tuple[int, ...]
    order: np.ndarray | None = None

    def to_ir(self, x: np.ndarray) -> np.ndarray:
        """Samples in the model's shape (or flat in its order) as flat rows in the IR's order."""
        flat = np.asarray(x).reshape(len(x), -1)
        return flat if self.order is None else flat[:, self.order]

    def to_model(self, x: np.ndarray) -> np.ndarray:
        """IR samples (any shape with the IR's flat order) as arrays of the model's shape."""
        flat = np.asarray(x).reshape(len(x), -1)
        if self.order is not None:
            out = np.empty_like(flat)
            out[:, self.order] = flat
            flat = out
        return flat.reshape(len(x), *self.model_shape)


@dataclass
class LoadedModel:
    """The float IR plus the source framework's own inference.

    ``reference(x)`` runs the original model on float inputs in the IR's
    layout ((N, *graph.input_shape) or flat rows) and returns its outputs
    before any final softmax or sigmoid as flat float64 rows in the IR's
    order (channels-last).  When
    ``reference_exact`` is true the model is quantised by its own framework and
    its inference must equal the golden model bit for bit.  ``input_layout``
    and ``output_layout`` say how the model's own arrays map to the IR's
    (None: the IR's shapes and order, as for Keras models).
    """

    graph: Graph
    reference: Callable[[np.ndarray], np.ndarray]
    reference_exact: bool
    model: Any = None  # the framework's model object, for fine-tuning
    input_layout: Layout | None = None
    output_layout: Layout | None = None

    @property
    def model_input_shape(self) -> tuple[int, ...]:
        """One input sample as the model takes it (what --data and --calibration arrays hold)."""
        return self.input_layout.model_shape if self.input_layout is not None else self.graph.input_shape

    def ir_inputs(self, x: np.ndarray) -> np.ndarray:
        """Model inputs (N, *model_input_shape) or flat rows in the model's order, as flat IR rows."""
        return self.input_layout.to_ir(x) if self.input_layout is not None else np.asarray(x).reshape(len(x), -1)

    def ir_dataset(self, data: Dataset) -> Dataset:
        """A data set in the model's layout with inputs (and regression targets) in the IR's layout."""
        shape = self.graph.input_shape
        x_train = self.ir_inputs(data.x_train).reshape(len(data.x_train), *shape)
        x_test = self.ir_inputs(data.x_test).reshape(len(data.x_test), *shape)
        y_train, y_test = data.y_train, data.y_test
        if data.task == "regression" and self.output_layout is not None:
            y_train, y_test = self.output_layout.to_ir(y_train), self.output_layout.to_ir(y_test)
        return dataclasses.replace(data, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)

    def model_dataset(self, data: Dataset) -> Dataset:
        """The inverse of ``ir_dataset``: inputs and regression targets back in the model's own layout."""
        if self.input_layout is None:
            return data
        x_train, x_test = self.input_layout.to_model(data.x_train), self.input_layout.to_model(data.x_test)
        y_train, y_test = data.y_train, data.y_test
        if data.task == "regression" and self.output_layout is not None:
            y_train = self.output_layout.to_model(y_train).reshape(len(y_train), -1)
            y_test = self.output_layout.to_model(y_test).reshape(len(y_test), -1)
        return dataclasses.replace(data, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)


def safe_name(name: str) -> str:
    """A lower-case identifier made from a model's name."""
    out = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    if not out or not out[0].isalpha():
        out = "model_" + out
    return out.replace("__", "_")


def short_error(e: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a user-facing message."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:limit]


def check_finite(file: str, parameters: Iterable[tuple[str, str, str, Any]]) -> None:
    """UserError naming the first layer with a NaN or infinite parameter.

    ``parameters``: (layer name, layer class, parameter name, values) for every
    weight, bias and batch-norm statistic of the model.
    """
    for layer, cls, name, values in parameters:
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # not numbers (an integer counter, a string)
        bad = ~np.isfinite(array)
        if not bad.any():
            continue
        nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        what = " and ".join(t for t in (f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else "") if t)
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if array.ndim else ()
        raise UserError(
            f"{file}: layer '{layer}' ({cls}) has {what} value(s) in its parameter '{name}' "
            f"({array.size} values; the first at index {list(first)}); no fixed-point format can hold them: "
            "repair or retrain the model (a training run that diverged writes such values) and convert it again"
        )


Progress = Callable[[str], None] | None  # a trainer's progress lines
TwinRun = tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]  # report entry, outputs, test-set outputs
TWIN_DEVICES = ("auto", "cpu", "cuda")


class Framework(ABC):
    """What the tool does with one framework's models: every framework offers the same operations.

    ``load`` translates a model file into the float IR with the framework's
    own inference beside it; ``prune_finetune`` and ``qat_finetune`` train
    the framework's model on labelled data and ``reload`` reads the result
    back through ``load``'s translation; ``save_twin`` and ``run_twin`` write
    and run the compressed model as a framework model that equals the golden
    model bit for bit.  The heavy libraries are imported inside the methods.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]  # model files it reads
    graph_frameworks: ClassVar[tuple[str, ...]]  # the ``Graph.framework`` values of the models it translates
    pruning_method: ClassVar[str]
    qat_framework: ClassVar[str]
    package: ClassVar[str]  # the subpackage: its ``training`` module holds the trainers

    @abstractmethod
    def check_arguments(
        self, path: Path, weights: Path | None, model_class: str | None, model_args: Any, input_shape: Any
    ) -> None:
        """UserError for a loading option this framework does not take."""

    @abstractmethod
    def load(
        self,
        path: Path,
        weights: Path | None,
        model_class: str | None,
        model_args: dict[str, Any] | None,
        input_shape: tuple[int, ...] | None,
    ) -> LoadedModel: ...

    def prune_finetune(
        self, model: Any, data: Dataset, sparsity: float, scope: str, epochs: int, progress: Progress
    ) -> tuple[Any, Any]:
        """The model pruned to ``sparsity`` while fine-tuning, and its keep-masks."""
        trainers = importlib.import_module(f"{self.package}.training")
        return trainers.prune_finetune(model, data, sparsity, scope, epochs, progress)  # type: ignore[no-any-return]

    def qat_finetune(
        self, model: Any, data: Dataset, masks: Any, weight_bits: int, act_bits: int, epochs: int, progress: Progress
    ) -> Any:
        """The model rebuilt with the framework's quantisers and fine-tuned, the masks kept."""
        trainers = importlib.import_module(f"{self.package}.training")
        return trainers.qat_finetune(model, data, masks, weight_bits, act_bits, epochs, progress)

    @abstractmethod
    def reload(self, model: Any, loaded: LoadedModel, workdir: Path) -> LoadedModel:
        """A fine-tuned model read back through the translation ``load`` uses."""

    @abstractmethod
    def save_twin(self, graph: Graph, twin_dir: Path, device: str, x: np.ndarray, x_test: np.ndarray | None) -> TwinRun:
        """Save the twin of a quantised graph under ``twin_dir`` and run it on ``x`` (and ``x_test``)."""

    @abstractmethod
    def run_twin(
        self, graph: Graph, twin_dir: Path, device: str, inputs: list[np.ndarray | None]
    ) -> tuple[str, list[np.ndarray | None]]:
        """The twin saved under ``twin_dir`` run on each of ``inputs``: the device it ran on, flat float64 rows."""
