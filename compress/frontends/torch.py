"""PyTorch / Brevitas frontend: translate a saved model into the float IR.

Reads a whole pickled ``nn.Module`` (also one saved on a GPU), a TorchScript
archive, or a state_dict with the file and class that build the model
(``--model-class file.py:ClassName``).  forward is traced with torch.fx and
must be a chain of supported layers.  Brevitas layers with power-of-two scales
are read exactly: integer values, scales and bit widths come from Brevitas
itself.  Loading a pickle runs code from it: load only models you trust.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedLayer, UserError
from ..fixed import FixedType, on_grid
from ..ir import INPUT, Cast, Clip, Graph, Linear, Node
from ..tfkeras import framework_warnings_hidden
from .base import LoadedModel, safe_name, short_error
from .torchscript import SCRIPT_OPS, SUPPORTED, Step, module_class, script_chain

FIXED_POINT = (
    "use the fixed-point quantisers (Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, "
    "Uint8ActPerTensorFixedPoint) or a bias quantiser with a power-of-two scale"
)
STATE_DICT_HELP = "pass --model-class FILE.py:ClassName (and --model-args '{...}' for its constructor)"
_IDENTITY = ("Identity", "Dropout", "AlphaDropout", "FeatureAlphaDropout", "identity")
_ROUNDING = {"ROUND": "RND_CONV", "FLOOR": "TRN", "ROUND_TO_ZERO": "TRN_ZERO"}  # Brevitas -> ours
_GENERIC = ("Sequential", "GraphModule", "RecursiveScriptModule", "Module")


# ---- loading ----------------------------------------------------------------


def _model_class(path: Path, spec: str) -> Any:
    """Import the file of ``--model-class FILE.py:ClassName`` and return the class."""
    import torch

    file_s, sep, name = spec.rpartition(":")
    file = Path(file_s)
    if not sep or not file_s or not name:
        raise UserError(f"{path}: --model-class {spec!r} must be FILE.py:ClassName")
    if not file.is_file():
        raise UserError(f"{path}: --model-class {spec}: no such file {file}")
    # Registered under its stem when no module has that name, so that a whole pickled model of this class
    # finds it too (one that imports by itself needs no help).
    free = file.stem.isidentifier() and file.stem not in sys.modules and importlib.util.find_spec(file.stem) is None
    mod_name = file.stem if free else f"_mlinfn_model_{abs(hash(file.resolve()))}"
    mod_spec = importlib.util.spec_from_file_location(mod_name, file)
    if mod_spec is None or mod_spec.loader is None:
        raise UserError(f"{path}: --model-class {spec}: {file} is not a Python file")
    module = sys.modules[mod_name] = importlib.util.module_from_spec(mod_spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of the user's file
        sys.modules.pop(mod_name, None)
        raise UserError(f"{path}: --model-class {spec}: importing {file} failed ({short_error(e)})") from e
    finally:
        sys.path.remove(str(file.resolve().parent))
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, torch.nn.Module))
        raise UserError(
            f"{path}: --model-class {spec}: {file} defines no nn.Module class '{name}' "
            f"(it defines: {', '.join(found) or 'none'})"
        )
    return cls


def _load_module(path: Path, model_class: str | None, model_args: dict[str, Any] | None) -> Any:
    import torch

    cls = _model_class(path, model_class) if model_class else None
    with framework_warnings_hidden():
        try:
            if path.suffix.lower() in (".ts", ".torchscript"):
                obj = torch.jit.load(str(path), map_location="cpu")
            else:  # map_location: a model saved on a GPU loads on a CPU-only machine
                obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any loader failure is a bad input
            try:  # a TorchScript archive that torch.load did not recognise
                obj = torch.jit.load(str(path), map_location="cpu")
            except Exception:  # noqa: BLE001
                hint = ""
                if isinstance(e, AttributeError | ImportError):
                    hint = f"; the model's class must be importable: save model.state_dict() and {STATE_DICT_HELP}"
                raise UserError(f"{path}: cannot load the model ({short_error(e)}){hint}") from e

    def is_sd(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if isinstance(obj, dict) and not is_sd(obj):  # a checkpoint holding the state_dict or the model
        keys = ", ".join(map(str, list(obj)[:8]))
        obj = next((obj[k] for k in ("state_dict", "model_state_dict", "model", "net", "module") if k in obj), obj)
        if not (isinstance(obj, torch.nn.Module) or is_sd(obj)):
            raise UserError(f"{path}: holds a dict with keys {keys}, neither a model nor a state_dict")
    if isinstance(obj, torch.nn.Module):
        return obj
    if not is_sd(obj):
        raise UserError(f"{path}: holds a {type(obj).__name__}, neither a model nor a state_dict")
    if cls is None:
        raise UserError(f"{path}: holds a state_dict (weights only), not a whole model; {STATE_DICT_HELP}")
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    args = dict(model_args or {})
    built = f"{cls.__name__}(**{args}) of --model-class {model_class}"
    try:
        model = cls(**args)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: cannot build {built} ({short_error(e)})") from e
    try:
        model.load_state_dict(obj, strict=True)
    except Exception as e:  # noqa: BLE001
        # Brevitas leaves out the scales of activations never calibrated: the fresh model has the same ones.
        try:
            missing, unexpected = model.load_state_dict(obj, strict=False)
        except Exception:  # noqa: BLE001
            missing, unexpected = [""], []
        if unexpected or not all(k.endswith("scaling_impl.value") for k in missing):
            raise UserError(f"{path}: the state_dict does not fit {built} ({short_error(e, 600)})") from e
    return model


# ---- the chain of layers ------------------------------------------------------


def _fx_chain(path: Path, model: Any) -> tuple[list[Step], Any]:
    """Trace ``model`` with torch.fx; returns its layers in order and the GraphModule."""
    import torch
    import torch.fx as fx
    import torch.nn.functional as F  # noqa: N812

    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            library = type(m).__module__.startswith(("torch.nn", "brevitas"))
            return not isinstance(m, containers) and (library or not list(m.children()))

    try:
        gm = fx.GraphModule(model, Tracer().trace(model), type(model).__name__)
    except Exception as e:  # noqa: BLE001
        what = f"cannot trace {type(model).__name__}.forward with torch.fx ({short_error(e)})"
        raise UnsupportedLayer(f"{path.name}: {what}; it must be a chain of: {SUPPORTED}") from e
    functions = {
        torch.relu: "relu", F.relu: "relu", torch.relu_: "relu", F.relu_: "relu", torch.softmax: "softmax",
        F.softmax: "softmax", F.dropout: "identity", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
        torch.flatten: "flatten",
    }  # fmt: skip
    steps: list[Step] = []
    cur = None
    for node in gm.graph.nodes:
        ins: list[Any] = []
        fx.node.map_arg((node.args, node.kwargs), ins.append)
        if node.op == "output":
            if node.args[0] is not cur:
                raise UnsupportedLayer(f"{path.name}: forward must return the last layer's output alone")
            break
        if node.op == "placeholder" and cur is None:
            cur = node
            continue
        if node.op not in ("call_module", "call_function", "call_method") or ins != [cur]:
            raise UnsupportedLayer(
                f"{path.name}: operation '{node.name}' ({node.target}) does not continue a chain of one input "
                f"through supported layers: {SUPPORTED}"
            )
        if node.op == "call_module":
            m = gm.get_submodule(node.target)
            steps.append((str(node.target), module_class(m), m, node))
        else:
            f = functions.get(node.target) if node.op == "call_function" else SCRIPT_OPS.get(node.target)
            f = f or ("flatten" if node.target == "flatten" else getattr(node.target, "__name__", str(node.target)))
            arg1 = node.args[1] if len(node.args) > 1 else None
            if f == "softmax" and node.kwargs.get("dim", arg1) not in (1, -1):
                f = "softmax over a dim other than 1"
            if f == "flatten":
                f = "identity" if node.kwargs.get("start_dim", arg1) == 1 else "flatten from a dim other than 1"
            steps.append((node.name, f, None, node))
        cur = node
    return steps, gm


# ---- translation ----------------------------------------------------------------


def _po2_fracs(scale: Any, zero_point: Any, where: str) -> np.ndarray:
    """Fractional bits of power-of-two scales (scale = 2**-frac); a UserError for any other scale."""
    if zero_point is not None and float(zero_point.detach().abs().max()) != 0.0:
        raise UnsupportedLayer(f"{where}: a non-zero zero point is not supported; {FIXED_POINT}")
    s = np.asarray(scale.detach().double().cpu().numpy(), dtype=np.float64).ravel()
    mant, exp = np.frexp(s)
    if s.size == 0 or not np.all(mant == 0.5):
        bad = float(s[mant != 0.5][0]) if s.size else None
        raise UserError(f"{where}: scale {bad} is not a power of two; {FIXED_POINT}")
    return (1 - exp).astype(np.int64)


def _quant_values(qt: Any, where: str) -> tuple[np.ndarray, FixedType, bool]:
    """(values, a type holding them exactly, whether it is the per-tensor type) of a Brevitas QuantTensor."""
    fracs = _po2_fracs(qt.scale, qt.zero_point, where)
    values = qt.value.detach().double().cpu().numpy()
    bits, frac = int(qt.bit_width), int(fracs.max())  # per-channel scales: stored with the finest
    if bits != float(qt.bit_width):
        raise UnsupportedLayer(f"{where}: a bit width of {float(qt.bit_width)} is not a whole number")
    t = FixedType(bits, bits - frac, bool(qt.signed), "RND_CONV", "SAT")
    ints = np.ldexp(values, frac)
    if not on_grid(values, frac):
        raise UserError(f"{where}: quantised values are not on the grid of their scale")
    lo, hi = (int(ints.min()), int(ints.max())) if ints.size else (0, 0)
    if fracs.min() == frac and t.min_int <= lo and hi <= t.max_int:
        return values, t, True
    return values, FixedType.for_range(min(lo, -1), max(hi, 1), frac, rounding="RND_CONV", overflow="SAT"), False


def _act_type(proxy: Any, where: str) -> FixedType | None:
    """The fixed-point type of a Brevitas activation quantiser (None when it does not quantise)."""
    if proxy is None or not proxy.is_quant_enabled:
        return None
    try:
        scale, bits, zp = proxy.scale(), proxy.bit_width(), proxy.zero_point()
    except Exception as e:  # noqa: BLE001
        raise UnsupportedLayer(f"{where}: cannot read its activation quantiser ({short_error(e)})") from e
    if scale is not None and scale.numel() != 1:
        raise UnsupportedLayer(f"{where}: a per-channel activation scale is not supported")
    if scale is None:
        return None
    frac = int(_po2_fracs(scale, zp, where)[0])
    rounding = _ROUNDING.get(str(proxy.rounding_mode).upper())
    signed, narrow = bool(proxy.is_signed), bool(proxy.is_narrow_range)
    if rounding is None or (narrow and not signed) or float(bits) != int(bits):
        raise UnsupportedLayer(
            f"{where}: rounding {proxy.rounding_mode}, unsigned narrow range or {float(bits)} bits is not supported"
        )
    return FixedType(int(bits), int(bits) - frac, signed, rounding, "SAT_SYM" if narrow else "SAT")


class _Translator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.nodes: list[Node] = []
        self.final_at: int | None = None  # index of the step that is the final softmax or sigmoid
        self.final: str | None = None
        self.exact = True  # every format comes from the model
        self.brevitas = False
        self.parameters = 0
        self.cur_frac: int | None = None  # fractional bits of the activation's Brevitas scale, when known

    def where(self, name: str, cls: str) -> str:
        return f"{self.path.name}: {'module' if cls[:1].isupper() else 'operation'} '{name}' ({cls})"

    def reject(self, name: str, cls: str, what: str = "is not supported") -> None:
        raise UnsupportedLayer(f"{self.where(name, cls)} {what}; supported: {SUPPORTED}")

    def add(self, name: str, op: str, size: int, source: str, **kw: Any) -> Node:
        base = name.replace(".", "_") if name[:1].isalpha() else f"layer_{name.replace('.', '_')}"
        names, name, i = {n.name for n in self.nodes}, base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        cls = {"dense": Linear, "relu": Clip, "cast": Cast}[op]
        prev = self.nodes[-1].name if self.nodes else INPUT
        node = cls(name=name, inputs=[prev], shape=(size,), source=source, **kw)
        self.nodes.append(node)
        return node

    def translate(self, steps: list[Step], model_name: str) -> Graph:
        linears = [m for _, kind, m, _ in steps if kind in ("Linear", "QuantLinear")]
        if not linears:
            raise UnsupportedLayer(f"{self.path.name}: the model has no Linear layer; supported: {SUPPORTED}")
        input_size = size = int(linears[0].weight.shape[1])
        for i, (name, kind, m, _) in enumerate(steps):
            if self.final_at is not None and kind not in _IDENTITY:
                raise UnsupportedLayer(f"{self.path.name}: '{name}' ({kind}) follows the {self.final}; it must be last")
            self.brevitas |= kind.startswith("Quant") and type(m).__module__.startswith("brevitas")
            size = self.step(name, kind, m, size, i)
        graph = Graph(
            name=safe_name(model_name if model_name not in _GENERIC else self.path.stem),
            framework="brevitas" if self.brevitas else "torch",
            source_path=str(self.path),
            input_shape=(input_size,),
            nodes=self.nodes,
            output_activation=self.final,
            parameters=self.parameters,
        )
        graph.infer_shapes()
        return graph

    def step(self, name: str, kind: str, m: Any, size: int, index: int) -> int:
        if kind in _IDENTITY or (kind == "Flatten" and m.start_dim == 1 and m.end_dim == -1):
            return size  # a Flatten of a flat (batch, features) input does nothing
        if kind in ("Softmax", "softmax") and getattr(m, "dim", 1) in (None, 1, -1):
            self.final_at, self.final = index, "softmax"
        elif kind in ("Sigmoid", "sigmoid"):
            self.final_at, self.final = index, "sigmoid"
        elif kind in ("ReLU", "relu"):
            self.add(name, "relu", size, "ReLU" if m is not None else "F.relu")
        elif kind == "Linear":
            self.exact, self.cur_frac = False, None  # formats chosen post-training
            size = self.dense(name, kind, m, size).size
        elif kind == "QuantLinear":
            size = self.quant_linear(name, m, size)
        elif kind in ("QuantIdentity", "QuantReLU"):
            t = _act_type(m.act_quant, self.where(name, kind))
            if kind == "QuantReLU" or t is not None:
                self.add(name, "relu" if kind == "QuantReLU" else "cast", size, kind, result_type=t)
            self.cur_frac = t.frac if t is not None else self.cur_frac
        elif kind == "Softmax":
            self.reject(name, kind, f"over dim={m.dim} is not supported (use dim=1)")
        else:
            self.reject(name, kind)
        return size

    def dense(self, name: str, cls: str, m: Any, size: int) -> Linear:
        weight = m.weight.detach().double().cpu().numpy()
        if weight.ndim != 2 or weight.shape[1] != size:
            self.reject(name, cls, f"expects {weight.shape[-1]} inputs but receives {size}")
        bias = np.zeros(weight.shape[0]) if m.bias is None else m.bias.detach().double().cpu().numpy()
        self.parameters += weight.size + (0 if m.bias is None else bias.size)
        node = self.add(name, "dense", int(weight.shape[0]), cls, weight=weight.T.copy(), bias=bias.copy())
        assert isinstance(node, Linear)
        return node

    def quant_linear(self, name: str, m: Any, size: int) -> int:
        where = self.where(name, "QuantLinear")
        t_in = _act_type(m.input_quant, where + " input_quant")
        if t_in is not None:
            self.add(f"{name}_input", "cast", size, "QuantLinear.input_quant", result_type=t_in)
            self.cur_frac = t_in.frac
        node = self.dense(name, "QuantLinear", m, size)
        qw = None
        if m.weight_quant.is_quant_enabled:
            try:
                qw = m.quant_weight()
            except Exception as e:  # noqa: BLE001
                raise UnsupportedLayer(f"{where}: cannot read its weight quantiser ({short_error(e)})") from e
            weight, node.weight_type, per_tensor = _quant_values(qw, where + " weight")
            node.weight = weight.T.copy()
            if not per_tensor:
                node.notes.append(f"weight: per-channel power-of-two scales stored exactly as {node.weight_type}")
        else:
            self.exact = False
            node.notes.append("weight has no quantiser: quantised post-training")
        if m.bias is None:
            node.bias_type = node.weight_type or FixedType(1, 1)
        elif m.bias_quant.is_quant_enabled:
            node.bias, node.bias_type = self.quant_bias(m, qw, where, size)
        else:
            self.exact = False
            node.notes.append("float bias quantised to the accumulator's fractional bits")
        # Brevitas's output scale: input scale times weight scale
        known = self.cur_frac is not None and qw is not None and qw.scale.numel() == 1
        self.cur_frac = self.cur_frac + node.weight_type.frac if known else None  # type: ignore[operator, union-attr]
        t_out = _act_type(m.output_quant, where + " output_quant")
        if t_out is not None:
            self.add(f"{name}_output", "cast", node.size, "QuantLinear.output_quant", result_type=t_out)
            self.cur_frac = t_out.frac
        return node.size

    def quant_bias(self, m: Any, qw: Any, where: str, size: int) -> tuple[np.ndarray, FixedType]:
        import torch
        from brevitas.quant_tensor import IntQuantTensor

        qin = None
        if getattr(m.bias_quant, "requires_input_scale", False):  # e.g. Int16Bias: scale = input x weight scale
            if self.cur_frac is None or qw is None:
                raise UnsupportedLayer(
                    f"{where}: its bias quantiser takes its scale from the input, but the input is not quantised "
                    "by the model; put a QuantIdentity(..., return_quant_tensor=True) before it or give the bias "
                    "a quantiser with its own power-of-two scale"
                )
            one = torch.tensor(1.0)
            qin = IntQuantTensor(torch.zeros(1, size), one * 2.0**-self.cur_frac, one * 0, one * 8, True, False)
        try:
            qb = m.bias_quant(m.bias, qin, qw)
        except Exception as e:  # noqa: BLE001
            raise UnsupportedLayer(f"{where}: cannot read its bias quantiser ({short_error(e)})") from e
        values, t, _ = _quant_values(qb, where + " bias")
        return values.ravel(), t


# ---- the model's own inference ----------------------------------------------------


def _reference(steps: list[Step], gm: Any, model: Any, final_at: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """The model's outputs before a final softmax or sigmoid, in the model's dtype (float64 when it allows)."""
    import torch

    def layers(x: Any) -> Any:  # TorchScript: the layers before the final activation
        for _, kind, m, _ in steps[:final_at]:
            x = torch.relu(x) if kind == "relu" else x if m is None else m(x)
        return x

    runner: Callable[[Any], Any] = model if gm is None else gm
    if final_at is not None and gm is not None:  # end the traced graph at the final activation's input
        next(n for n in gm.graph.nodes if n.op == "output").args = (steps[final_at][3].args[0],)
        gm.graph.eliminate_dead_code()
        gm.recompile()
    elif final_at is not None:
        runner = layers
    dtype = next((p.dtype for p in model.parameters()), torch.float32)

    def run(x: np.ndarray, batch: int = 4096) -> np.ndarray:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), batch):
                y = runner(torch.from_numpy(np.asarray(x[start : start + batch], dtype=np.float64)).to(dtype))
                outs.append(getattr(y, "value", y).detach().cpu().double().numpy())  # value of a QuantTensor
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0))

    return run


def load(path: Path, model_class: str | None = None, model_args: dict[str, Any] | None = None) -> LoadedModel:
    """Load a PyTorch / Brevitas model file and translate it into the float IR."""
    import torch

    model = _load_module(path, model_class, model_args)
    with framework_warnings_hidden():
        try:
            model = copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - a model that cannot be copied is ours to change anyway
            pass
    model.eval()
    if isinstance(model, torch.jit.ScriptModule):
        steps, gm = script_chain(path, model), None
        if any(k.startswith("Quant") for _, k, _, _ in steps):
            raise UnsupportedLayer(f"{path.name}: Brevitas layers in TorchScript are not supported; {STATE_DICT_HELP}")
    else:
        steps, gm = _fx_chain(path, model)
    tr = _Translator(path)
    graph = tr.translate(steps, module_class(model))
    with framework_warnings_hidden():  # TorchScript modules warn about the .grad of their parameters here
        try:
            model.double()  # exact sums: float64 holds every accumulator of up to 53 bits
        except Exception:  # noqa: BLE001 - float32 then: the reference cannot be exact
            tr.exact = False
    reference = _reference(steps, gm, model, tr.final_at)
    try:
        probe = reference(np.random.default_rng(0).standard_normal((4, graph.input_size)))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: the model's own inference fails ({short_error(e)})") from e
    if probe.shape != (4, graph.output.size):
        raise UnsupportedLayer(
            f"{path.name}: the model returns shape {tuple(probe.shape)} for 4 samples but its layers give "
            f"(4, {graph.output.size}); forward must be a chain of supported layers: {SUPPORTED}"
        )
    return LoadedModel(graph=graph, reference=reference, reference_exact=tr.brevitas and tr.exact, model=model)
