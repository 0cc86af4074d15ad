"""PyTorch / Brevitas frontend: translate a saved model into the float IR.

Reads a whole pickled ``nn.Module`` (also one saved on a GPU), a TorchScript
archive (a chain of layers), or a state_dict with the file and class that
build the model (``--model-class file.py:ClassName``).  ``forward`` is traced
with torch.fx: branches, skip connections (``+``, ``torch.add``) and
concatenations (``torch.cat``) become a graph.  PyTorch's channels-first
tensors become channels-last ones in the IR (``translate.py``); the model's
own arrays map to the IR's through ``LoadedModel.input_layout`` /
``output_layout``.  Brevitas layers with power-of-two scales are read
exactly (``brevitas.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.frameworks.base import Layout, LoadedModel, check_finite, safe_name
from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden
from mlinfn_compress.compress.frameworks.torch.layers import HANDLERS
from mlinfn_compress.compress.frameworks.torch.loading import STATE_DICT_HELP, load_module
from mlinfn_compress.compress.frameworks.torch.script import script_trace
from mlinfn_compress.compress.frameworks.torch.trace import (
    SUPPORTED,
    Shape,
    Traced,
    apply_call,
    fx_trace,
    input_shape,
    module_class,
    probe,
)
from mlinfn_compress.compress.frameworks.torch.translate import Translator, check_supported
from mlinfn_compress.compress.ir import INPUT

GENERIC = ("Sequential", "GraphModule", "RecursiveScriptModule", "Module")

__all__ = ["STATE_DICT_HELP", "SUPPORTED", "before_final", "from_module", "load", "trace_model"]


def trace_model(path: Path, model: Any) -> Traced:
    """The model's calls: torch.fx for a module, a chain for TorchScript."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return script_trace(path, model)
    if not list(model.children()) and type(model).__module__.startswith(("torch.nn", "brevitas")):
        model = torch.nn.Sequential(model)  # a single layer saved by itself: traced as a layer, not its code
    return fx_trace(path, model)


def load(
    path: Path,
    model_class: str | None = None,
    model_args: dict[str, Any] | None = None,
    input_shape: Shape | None = None,
) -> LoadedModel:
    """Load a PyTorch / Brevitas model file and translate it into the float IR.

    ``input_shape``: one sample as the model takes it (channels first), needed
    when the model does not fix it (a convolution first).
    """
    model = load_module(path, model_class, model_args)
    with framework_warnings_hidden():
        try:
            model = copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - a model that cannot be copied is ours to change anyway
            pass
    return from_module(model, path, input_shape)


def from_module(model: Any, path: Path, shape: Shape | None = None) -> LoadedModel:
    """Translate an in-memory model (``path`` names it in messages and in the graph)."""
    import torch

    model.eval()
    check_finite(path.name, parameters(model))
    traced = trace_model(path, model)
    check_supported(path, traced, HANDLERS)
    in_shape = input_shape(path, traced, shape, model)
    with framework_warnings_hidden():  # TorchScript modules warn about the .grad of their parameters here
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        shapes = probe(path, traced, in_shape, dtype)
    tr = Translator(path, traced, shapes)
    start = tr.input_value(in_shape)
    tr.values[traced.input] = start
    out, final = tr.run(HANDLERS)
    out, out_order = tr.output(out)
    name = module_class(model)
    graph = tr.graph(
        safe_name(name if name not in GENERIC else path.stem),
        "brevitas" if tr.brevitas else "torch",
        tr.ir_shapes[INPUT],
        out.tensor,
        final,
    )
    runnable = model if traced.fx else traced.runner  # TorchScript: the chain of its layers as nn.Modules
    with framework_warnings_hidden():
        try:
            runnable.double()  # exact sums: float64 holds every accumulator of up to 53 bits
        except Exception:  # noqa: BLE001 - float32 then: the reference cannot be exact
            tr.exact = False
    in_layout = Layout(in_shape, start.order)
    out_layout = Layout(out.shape, out_order)
    reference = _reference(traced, in_layout, out_layout, runnable)
    return LoadedModel(
        graph=graph,
        reference=reference,
        reference_exact=tr.brevitas and tr.exact,
        model=model,
        input_layout=in_layout,
        output_layout=out_layout,
    )


def parameters(model: Any) -> Iterator[tuple[str, str, str, Any]]:
    """(layer, class, parameter, values) of every parameter and floating-point buffer (batch-norm statistics)."""
    modules = dict(model.named_modules())
    for qualified, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if not tensor.is_floating_point():
            continue
        layer, _, name = qualified.rpartition(".")
        cls = module_class(modules[layer]) if layer in modules else "module"
        yield layer or "(the model)", cls, name, tensor.detach().double().cpu().numpy()


def _reference(traced: Traced, in_layout: Layout, out_layout: Layout, model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The model's outputs before a final softmax or sigmoid, in the model's dtype (float64 when it allows),
    taking and giving arrays in the IR's layout."""
    import torch

    runner = before_final(traced, model)
    dtype = next((p.dtype for p in model.parameters()), torch.float64)

    def run(x: np.ndarray, batch: int = 4096) -> np.ndarray:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        x = in_layout.to_model(np.asarray(x, dtype=np.float64))
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), batch):
                y = runner(torch.from_numpy(np.ascontiguousarray(x[start : start + batch])).to(dtype))
                outs.append(out_layout.to_ir(getattr(y, "value", y).detach().cpu().double().numpy()))
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, int(np.prod(out_layout.model_shape))))

    return run


def before_final(traced: Traced, model: Any) -> Callable[[Any], Any]:
    """A function computing ``model``'s output before its final softmax or sigmoid (the model if none)."""
    from mlinfn_compress.compress.frameworks.torch.translate import FINAL_ACTIVATIONS

    by_out = {c.out: c for c in traced.calls}
    out = traced.output
    while out in by_out and by_out[out].kind == "identity":
        out = by_out[out].inputs[0]
    last = by_out.get(out)
    if last is None or last.kind not in FINAL_ACTIVATIONS:
        return model  # type: ignore[no-any-return]  # torch types an nn.Module (and its call) as Any
    if traced.fx:
        gm = traced.runner
        node = next(n for n in gm.graph.nodes if n.name == last.out)
        next(n for n in gm.graph.nodes if n.op == "output").args = (node.args[0],)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        return gm  # type: ignore[no-any-return]  # torch types an nn.Module (and its call) as Any
    stop = traced.calls.index(last)

    def layers(x: Any) -> Any:
        for call in traced.calls[:stop]:
            x = apply_call(call, x)
        return x

    return layers
