"""The compression stage: pruning and quantisation-aware fine-tuning before the IR is fixed.

With labelled data the model is fine-tuned in its own framework (tf_keras with
tensorflow-model-optimization and QKeras); the result is read back through
the frontend, so that what is verified is exactly what was trained.  Without
data, pruning is one-shot by magnitude on the IR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.frameworks.base import LoadedModel
from mlinfn_compress.compress.passes.prune import check_sparsity, prune_graph
from mlinfn_compress.compress.passes.quantise import QuantConfig
from mlinfn_compress.errors import UserError

DEFAULT_PRUNE_EPOCHS = 10
DEFAULT_QAT_EPOCHS = 10


@dataclass
class CompressOptions:
    prune: float = 0.0
    prune_scope: str = "layer"
    qat: bool = False
    epochs: int | None = None

    def check(self, has_data: bool) -> None:
        check_sparsity(self.prune)
        if self.qat and not has_data:
            raise UserError("--qat needs labelled data: pass --data FILE.npz (x_train, y_train, x_test, y_test)")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")


def compress_model(
    loaded: LoadedModel,
    opts: CompressOptions,
    quant: QuantConfig,
    dataset: Dataset | None,
    progress: Progress,
    workdir: Path,
) -> tuple[LoadedModel, dict[str, Any]]:
    """Prune and/or fine-tune ``loaded``; returns the model to quantise and what was done."""
    info: dict[str, Any] = {"pruning": None, "qat": None, "warnings": []}
    if dataset is None:
        if opts.prune > 0:
            achieved = prune_graph(loaded.graph, opts.prune, opts.prune_scope)
            text = "pruned without data (one-shot by magnitude): accuracy is not checked; pass --data to fine-tune"
            progress.warn(text)
            info["warnings"].append(text)
            info["pruning"] = {"method": "one-shot magnitude", "scope": opts.prune_scope, "target": opts.prune}
            info["pruning"]["layers"] = achieved
            loaded.reference_exact = False  # the framework model still has the pruned weights
        return loaded, info
    if opts.prune == 0 and not opts.qat:
        return loaded, info
    from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden

    with framework_warnings_hidden():
        try:
            return _finetune(loaded, opts, quant, dataset, progress, workdir, info)
        except ValueError as e:  # what the trainers cannot handle (a layer, a mask, a scope)
            raise UserError(f"{loaded.graph.source_path}: cannot fine-tune the model: {e}") from e


def _finetune(
    loaded: LoadedModel,
    opts: CompressOptions,
    quant: QuantConfig,
    dataset: Dataset,
    progress: Progress,
    workdir: Path,
    info: dict[str, Any],
) -> tuple[LoadedModel, dict[str, Any]]:
    from mlinfn_compress.compress.frameworks import framework_of

    framework = framework_of(loaded.graph)
    model = loaded.model
    dataset = loaded.model_dataset(dataset)  # the trainers feed the framework's model its own layout
    masks = None
    if opts.prune > 0:
        epochs = opts.epochs or DEFAULT_PRUNE_EPOCHS
        with progress.step("prune", f"pruning to {opts.prune:.0%} while fine-tuning ({epochs} epochs)"):
            model, masks = framework.prune_finetune(model, dataset, opts.prune, opts.prune_scope, epochs,
                                                    progress.info)  # fmt: skip
        info["pruning"] = {
            "method": f"{framework.pruning_method}, gradual (polynomial) schedule while fine-tuning",
            "scope": opts.prune_scope,
            "target": opts.prune,
            "epochs": epochs,
        }
    if opts.qat:
        epochs = opts.epochs or DEFAULT_QAT_EPOCHS
        with progress.step("qat", f"quantisation-aware fine-tuning in {framework.qat_framework} ({epochs} epochs)"):
            model = framework.qat_finetune(
                model, dataset, masks, quant.weight_bits, quant.act_bits, epochs, progress.info
            )
        info["qat"] = {
            "framework": framework.qat_framework,
            "weight_bits": quant.weight_bits,
            "act_bits": quant.act_bits,
            "epochs": epochs,
        }
    reloaded = framework.reload(model, loaded, workdir)
    reloaded.graph.source_path = loaded.graph.source_path
    reloaded.graph.name = loaded.graph.name
    reloaded.graph.parameters = loaded.graph.parameters
    return reloaded, info
