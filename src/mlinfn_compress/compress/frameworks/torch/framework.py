"""PyTorch and Brevitas behind the ``Framework`` interface: torch.nn.utils.prune, Brevitas QAT and twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.frameworks.base import Framework, LoadedModel, TwinRun
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError


class TorchFramework(Framework):
    name = "torch"
    suffixes = (".pt", ".pth", ".pkl", ".ts", ".torchscript")
    graph_frameworks = ("torch", "brevitas")
    pruning_method = "torch.nn.utils.prune"
    package = "mlinfn_compress.compress.frameworks.torch"
    qat_framework = "brevitas"

    def check_arguments(
        self, path: Path, weights: Path | None, model_class: str | None, model_args: Any, input_shape: Any
    ) -> None:
        if weights is not None:
            raise UserError(
                f"{path}: --weights applies only to a Keras architecture .json; for a PyTorch state_dict "
                "pass --model-class FILE.py:ClassName"
            )

    def load(
        self,
        path: Path,
        weights: Path | None,
        model_class: str | None,
        model_args: dict[str, Any] | None,
        input_shape: tuple[int, ...] | None,
    ) -> LoadedModel:
        from mlinfn_compress.compress.frameworks import torch

        return torch.load(path, model_class, model_args, input_shape)

    def reload(self, model: Any, loaded: LoadedModel, workdir: Path) -> LoadedModel:
        from mlinfn_compress.compress.frameworks import torch

        return torch.from_module(model, Path(loaded.graph.source_path), loaded.model_input_shape)

    def save_twin(self, graph: Graph, twin_dir: Path, device: str, x: np.ndarray, x_test: np.ndarray | None) -> TwinRun:
        from mlinfn_compress.compress.frameworks.torch import twin

        _torch_device(device)  # a GPU asked for and missing is refused before anything is written
        try:
            saved = twin.save_twin(graph, twin_dir)
        except ValueError as e:
            return {"framework": "brevitas", "path": None, "reason": str(e)}, None, None
        torch_device, (out, test) = self.run_twin(graph, twin_dir, device, [x, x_test])
        info = {
            "framework": "brevitas",
            "path": f"twin/{saved['state_dict']}",
            "model_class": f"twin/{saved['model_class']}",
            "model_args": "twin/twin.json",
            "load_with": "mlinfn_compress.compress.frameworks.torch.twin.load_twin(OUTDIR/twin)",
            "device": torch_device,
            "float": "float64, TF32 off",
            "reason": None,
        }
        return info, out, test

    def run_twin(
        self, graph: Graph, twin_dir: Path, device: str, inputs: list[np.ndarray | None]
    ) -> tuple[str, list[np.ndarray | None]]:
        from mlinfn_compress.compress.frameworks.torch import twin

        torch_device = _torch_device(device)
        model = twin.load_twin(twin_dir)
        return torch_device, [twin.twin_logits(model, x, device=torch_device) if x is not None else None
                              for x in inputs]  # fmt: skip


def _torch_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no GPU on this machine; use --device auto or cpu")
    return "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
