"""The Brevitas framework twin: a Brevitas model whose inference equals the golden model bit for bit.

``save_twin`` turns a fully quantised IR graph into a Brevitas ``nn.Sequential``
saved as a state_dict (``model.pt``) plus a self-contained class file
(``model.py``) whose constructor takes JSON-able arguments: a ``QuantIdentity``
for the input type, a ``QuantLinear`` per dense node (weights and bias exactly
on their grids, read through fixed-point quantisers), a ``QuantIdentity`` /
``QuantReLU`` for every re-quantisation that changes a value, and the final
softmax when the graph has one.  The project's PyTorch frontend reads the
saved twin back (``load_model(model.pt, model_class="model.py:Twin",
model_args=...)``) as an exactly quantised Brevitas model.

Exactness rests on these facts about Brevitas 0.13.4 (checked by the tests):
every quantiser is an ``Int8*PerTensorFixedPoint`` with ``scaling_impl_type=CONST``,
whose threshold (``scaling_const``, ``max_val``) of ``2**(bits - signed - frac)``
gives the scale ``2**-frac``; it computes ``clamp(round(x / scale), lo, hi) * scale``
with ``torch.round`` (half to even: RND_CONV), floor (TRN) or round toward zero
(TRN_ZERO), ``lo = -hi`` for a narrow signed range (SAT_SYM); and in float64
(TF32 off) every value and partial sum of an accumulator of up to 53 bits is exact.
torch and brevitas are imported only inside the functions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .fixed import FixedType, to_float
from .ir import Cast, Clip, Graph, Linear, UniqueNames
from .quantise import accumulator_bounds

FLOAT64_BITS = 53  # significand of float64, implicit bit included
MAX_FRAC = 120  # scales 2**-frac with |frac| beyond this are refused (far from float limits)
ROUNDING = {"RND_CONV": "ROUND", "TRN": "FLOOR", "TRN_ZERO": "ROUND_TO_ZERO"}  # ours -> Brevitas
STATE_FILE = "model.pt"
MODEL_FILE = "model.py"
INFO_FILE = "twin.json"
CLASS_NAME = "Twin"

MODEL_SOURCE = '''"""A fixed-point network in Brevitas, written by mlinfn-compress: constant power-of-two scales.

Build it with its saved keyword arguments, then load the state_dict; in float64
its inference is exact.  A quantiser is {"bits", "frac", "signed", "narrow",
"rounding"}: integers of that bit width times 2**-frac.
"""

import math

import brevitas.nn as qnn
import torch
from brevitas.inject.enum import FloatToIntImplType, ScalingImplType
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
from brevitas.quant.fixed_point import Int8BiasPerTensorFixedPointInternalScaling
from torch import nn


class ConstWeight(Int8WeightPerTensorFixedPoint):
    scaling_impl_type = ScalingImplType.CONST
    scaling_min_val = None
    narrow_range = False


class ConstBias(Int8BiasPerTensorFixedPointInternalScaling):
    scaling_impl_type = ScalingImplType.CONST
    scaling_min_val = None


class ConstAct(Int8ActPerTensorFixedPoint):
    scaling_impl_type = ScalingImplType.CONST
    scaling_min_val = None


def threshold(q):  # divided by 2**(bits - signed) (PowerOfTwoIntScaling) it is the scale 2**-frac
    return math.ldexp(1.0, q["bits"] - int(q["signed"]) - q["frac"])


def param_quant(prefix, q):
    kw = dict(bit_width=q["bits"], scaling_const=threshold(q), signed=q["signed"], narrow_range=q["narrow"])
    return {f"{prefix}_{k}": v for k, v in kw.items()}


def act_quant(q):
    top, rounding = threshold(q), getattr(FloatToIntImplType, q["rounding"])
    return dict(act_quant=ConstAct, bit_width=q["bits"], max_val=top, min_val=-top if q["signed"] else 0.0,
                signed=q["signed"], narrow_range=q["narrow"], float_to_int_impl_type=rounding)


class __CLASS__(nn.Sequential):
    """The layers in order: a list of {"op", "name", ...}."""

    def __init__(self, layers, dtype="float64"):
        super().__init__()
        for spec in layers:
            op, bias = spec["op"], spec.get("bias")
            if op == "linear":
                kw = param_quant("weight", spec["weight"]) | (param_quant("bias", bias) if bias else {})
                module = qnn.QuantLinear(spec["in"], spec["out"], bias=bias is not None, weight_quant=ConstWeight,
                                         bias_quant=ConstBias if bias else None, **kw)
            elif op in ("quant", "quant_relu"):
                module = (qnn.QuantIdentity if op == "quant" else qnn.QuantReLU)(**act_quant(spec["quant"]))
            elif op in ("relu", "softmax"):
                module = nn.ReLU() if op == "relu" else nn.Softmax(dim=1)
            else:
                raise ValueError(f"unknown layer op {op!r}")
            self.add_module(spec["name"], module)
        self.to(getattr(torch, dtype))
        self.eval()
'''


# ---- which conversions Brevitas can express, and exactly ----


def quant_spec(t: FixedType, rounding: str = "ROUND", narrow: bool = False) -> dict[str, Any]:
    """The class file's description of a quantiser onto the grid and range of ``t``."""
    return {"bits": t.width, "frac": t.frac, "signed": t.signed, "narrow": narrow, "rounding": rounding}


def _check_scale(t: FixedType, where: str) -> None:
    if abs(t.frac) > MAX_FRAC:
        raise ValueError(f"{where}: type {t} has a scale 2^{-t.frac} too far from 1 for exact float64 inference")
    if t.width > FLOAT64_BITS:
        raise ValueError(f"{where}: type {t} is wider than {FLOAT64_BITS} bits; float64 inference cannot be exact")


def _conversion(t_in: FixedType, t_out: FixedType, nonneg: bool) -> tuple[bool, bool]:
    """(whether converting values of ``t_in`` to ``t_out`` can round, whether it can overflow)."""
    shift = t_out.frac - t_in.frac
    if shift < 0:  # any rounding gives the floor or the ceiling
        lo, hi, rounds = t_in.min_int >> -shift, -((-t_in.max_int) >> -shift), True
    else:
        lo, hi, rounds = t_in.min_int << shift, t_in.max_int << shift, False
    lo = max(lo, 0) if nonneg else lo
    lo_out = -t_out.max_int if t_out.overflow == "SAT_SYM" and t_out.signed else t_out.min_int
    return rounds, lo < lo_out or hi > t_out.max_int


def act_spec(t_in: FixedType | None, t_out: FixedType, where: str, nonneg: bool = False) -> dict[str, Any] | None:
    """A quantiser converting ``t_in`` (None: any float) to ``t_out`` exactly; None when nothing changes.

    Raises ValueError naming ``where`` when Brevitas cannot express the conversion.
    """
    rounds, overflows = (True, True) if t_in is None else _conversion(t_in, t_out, nonneg)
    if not rounds and not overflows:
        return None
    _check_scale(t_out, where)
    if t_out.width - t_out.signed < 1:
        raise ValueError(f"{where}: type {t_out} has no magnitude bits; a Brevitas quantiser needs at least one")
    if rounds and t_out.rounding not in ROUNDING:
        raise ValueError(
            f"{where}: type {t_out} cannot be expressed by a Brevitas quantiser, which rounds half to even "
            "(RND_CONV), down (TRN) or toward zero (TRN_ZERO)"
        )
    if overflows and t_out.overflow not in ("SAT", "SAT_SYM"):
        raise ValueError(
            f"{where}: type {t_out} cannot be expressed by a Brevitas quantiser, which saturates (needs SAT or SAT_SYM)"
        )
    narrow = t_out.signed and t_out.overflow == "SAT_SYM"
    return quant_spec(t_out, ROUNDING.get(t_out.rounding, "ROUND"), narrow)


def _param_spec(t: FixedType, ints: np.ndarray, where: str) -> dict[str, Any]:
    _check_scale(t, where)
    v = np.asarray(ints)
    if v.size and (int(v.min()) < t.min_int or int(v.max()) > t.max_int):
        raise ValueError(f"{where}: integer values lie outside the range of their type {t}")
    return quant_spec(t)


class _Names(UniqueNames):
    """Unique module names that nn.Sequential accepts."""

    def __init__(self) -> None:
        import torch

        super().__init__()
        self.reserved = set(dir(torch.nn.Sequential))

    def __call__(self, base: str) -> str:
        ok = base.isidentifier() and base not in self.reserved
        return super().__call__(base if ok else f"n_{base.replace('.', '_')}")


def _dense(graph: Graph, node: Linear, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    where = f"node '{node.name}' (dense)"
    wt, bt, acc = node.weight_type, node.bias_type, node.accum_type
    if wt is None or bt is None or acc is None or node.weight_int is None or node.bias_int is None:
        raise ValueError(f"{where}: not quantised")
    lo, hi, mag = accumulator_bounds(graph, node, acc.frac)
    if mag.bit_length() > FLOAT64_BITS or acc.width > FLOAT64_BITS:
        raise ValueError(f"{where}: accumulator {acc} is too wide for exact float64 inference")
    lo_acc = -acc.max_int if acc.overflow == "SAT_SYM" and acc.signed else acc.min_int
    if lo < lo_acc or hi > acc.max_int:
        raise ValueError(f"{where}: accumulator {acc} can overflow, which a Brevitas QuantLinear does not model")
    spec: dict[str, Any] = {
        "op": "linear",
        "name": name,
        "in": node.n_in,
        "out": node.n_out,
        "weight": _param_spec(wt, node.weight_int, where + " weight"),
    }
    tensors = {f"{name}.weight": to_float(node.weight_int, wt.frac).T.copy()}
    if np.any(np.asarray(node.bias_int) != 0):
        spec["bias"] = _param_spec(bt, node.bias_int, where + " bias")
        tensors[f"{name}.bias"] = to_float(node.bias_int, bt.frac)
    return spec, tensors


def twin_layers(graph: Graph) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The class file's layer list for ``graph`` and its parameters (state_dict key -> float64 array).

    Raises ValueError naming the node whose type Brevitas cannot express or
    float64 cannot compute exactly.
    """
    if graph.input_type is None:
        raise ValueError("graph is not quantised: no input type")
    names = _Names()
    spec = act_spec(None, graph.input_type, "input")
    assert spec is not None
    layers: list[dict[str, Any]] = [{"op": "quant", "name": names("input_quant"), "quant": spec}]
    tensors: dict[str, np.ndarray] = {}
    prev, t_in = "input", graph.input_type
    for node in graph.nodes:
        res = node.result_type
        where = f"node '{node.name}' ({node.kind})"
        if not node.quantised or res is None:
            raise ValueError(f"{where} is not quantised")
        if node.inputs[0] != prev:
            raise ValueError(f"node '{node.name}': the twin supports only a chain of nodes")
        if isinstance(node, Linear) and node.window is None:
            layer, params = _dense(graph, node, names(node.name))
            layers.append(layer)
            tensors.update(params)
            assert node.accum_type is not None
            spec = act_spec(node.accum_type, res, where)
            if spec is not None:
                layers.append({"op": "quant", "name": names(node.name + "_q"), "quant": spec})
        elif isinstance(node, Clip) and node.lo == 0 and node.hi is None:
            spec = act_spec(t_in, res, where, nonneg=True)
            if spec is None:
                layers.append({"op": "relu", "name": names(node.name)})
            else:
                layers.append({"op": "quant_relu", "name": names(node.name), "quant": spec})
        elif isinstance(node, Cast):
            spec = act_spec(t_in, res, where)
            if spec is not None:
                layers.append({"op": "quant", "name": names(node.name), "quant": spec})
        else:
            raise ValueError(f"{where}: no Brevitas twin yet")
        prev, t_in = node.name, res
    if graph.has_argmax:
        layers.append({"op": "softmax", "name": names("softmax")})
    return layers, tensors


# ---- a Brevitas model with power-of-two scales, its scales made constants ----


def _po2_frac(scale: Any, where: str) -> int:
    s = np.asarray(scale.detach().double().cpu().numpy(), dtype=np.float64).ravel()
    mant, exp = np.frexp(s)
    if s.size != 1 or mant[0] != 0.5:
        raise ValueError(f"{where}: scale {s.tolist()} is not a single power of two")
    return int(1 - exp[0])


def _proxy_spec(proxy: Any, where: str) -> dict[str, Any]:
    bits, signed, narrow = int(proxy.bit_width()), bool(proxy.is_signed), bool(proxy.is_narrow_range)
    rounding = str(proxy.rounding_mode).upper()
    if rounding not in ROUNDING.values():
        raise ValueError(f"{where}: rounding {rounding} is not supported")
    frac = _po2_frac(proxy.scale(), where)
    return quant_spec(FixedType(bits, bits - frac, signed), rounding, narrow and signed)


def constant_layers(model: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The class file's layer list and parameters for a Brevitas ``nn.Sequential`` with power-of-two scales.

    Its children: QuantIdentity, QuantReLU, QuantLinear (per-tensor weight and
    bias scales), ReLU, Softmax, Identity, Dropout.  Weights and biases are
    stored as their quantised values; a bias type is as wide as its values need.
    """
    import torch
    from brevitas.quant_tensor import IntQuantTensor

    layers: list[dict[str, Any]] = []
    tensors: dict[str, np.ndarray] = {}
    frac: int | None = None  # fractional bits of the current activation's scale
    for name, m in model.named_children():
        cls = type(m).__name__
        where = f"layer '{name}' ({cls})"
        if cls in ("QuantIdentity", "QuantReLU"):
            if not m.act_quant.is_quant_enabled:
                raise ValueError(f"{where} does not quantise")
            spec = _proxy_spec(m.act_quant, where)
            layers.append({"op": "quant" if cls == "QuantIdentity" else "quant_relu", "name": name, "quant": spec})
            frac = spec["frac"]
        elif cls == "QuantLinear":
            if m.input_quant.is_quant_enabled or m.output_quant.is_quant_enabled or not m.weight_quant.is_quant_enabled:
                raise ValueError(f"{where}: only a quantised weight and bias are supported (no input or output quant)")
            qw = m.quant_weight()
            w_frac = _po2_frac(qw.scale, where + " weight")
            weight = quant_spec(FixedType(int(qw.bit_width), int(qw.bit_width) - w_frac, bool(qw.signed)))
            layers.append({"op": "linear", "name": name, "in": m.in_features, "out": m.out_features, "weight": weight})
            tensors[f"{name}.weight"] = qw.value.detach().double().cpu().numpy()
            if m.bias is not None:
                needs_input = getattr(m.bias_quant, "requires_input_scale", False)
                if not m.bias_quant.is_quant_enabled or (needs_input and frac is None):
                    raise ValueError(f"{where}: a float bias, or a bias scaled by an input of unknown scale")
                one = torch.tensor(1.0, dtype=torch.float64)
                scale = one * 2.0 ** -(frac or 0)
                qin = IntQuantTensor(torch.zeros(1, m.in_features), scale, one * 0, one * 8, True, False)
                qb = m.bias_quant(m.bias.detach().double(), qin if needs_input else None, qw)
                b_frac = _po2_frac(qb.scale, where + " bias")
                values = qb.value.detach().double().cpu().numpy()
                ints = np.ldexp(values, b_frac)
                t = FixedType.for_range(min(int(ints.min()), -1), max(int(ints.max()), 1), b_frac)
                layers[-1]["bias"] = quant_spec(t)
                tensors[f"{name}.bias"] = values
            frac = None if frac is None else frac + w_frac
        elif cls == "ReLU":
            layers.append({"op": "relu", "name": name})
        elif cls == "Softmax":
            layers.append({"op": "softmax", "name": name})
        elif cls not in ("Identity", "Dropout"):
            raise ValueError(f"{where} cannot be saved with constant scales")
    return layers, tensors


# ---- the class file ----


def import_class(file: Path, name: str) -> Any:
    """The class ``name`` defined in the Python file ``file``."""
    file = Path(file).resolve()
    mod_name = f"_mlinfn_brevitas_{hashlib.sha1(str(file).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)


def write_model(
    out_dir: Path, layers: list[dict[str, Any]], tensors: dict[str, np.ndarray], class_name: str = CLASS_NAME
) -> tuple[Path, Path, dict[str, Any]]:
    """Write the class file and the state_dict of the model ``layers`` describes.

    Returns (state_dict path, class file path, the constructor's keyword arguments).
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / MODEL_FILE
    file.write_text(MODEL_SOURCE.replace("__CLASS__", class_name))
    args: dict[str, Any] = {"layers": layers, "dtype": "float64"}
    model = import_class(file, class_name)(**args)
    state = model.state_dict()
    if set(state) != set(tensors):
        raise AssertionError(f"parameters {sorted(tensors)} do not fit the model's {sorted(state)}")
    for key, value in tensors.items():
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.float64)).reshape(state[key].shape)
    path = out_dir / STATE_FILE
    torch.save(state, path)
    return path, file, args


def save_twin(graph: Graph, out_dir: Path) -> dict[str, Any]:
    """Build the twin of ``graph`` and save it under ``out_dir`` (load it with ``load_twin``).

    Returns {"state_dict": "model.pt", "model_class": "model.py:Twin", "model_args": {...}},
    paths relative to ``out_dir``.  Raises ValueError naming the node Brevitas
    cannot express exactly.
    """
    layers, tensors = twin_layers(graph)
    _, _, args = write_model(Path(out_dir), layers, tensors)
    info = {"state_dict": STATE_FILE, "model_class": f"{MODEL_FILE}:{CLASS_NAME}", "model_args": args}
    (Path(out_dir) / INFO_FILE).write_text(json.dumps(info))
    return info


def load_twin(out_dir: Path) -> Any:
    """The twin saved under ``out_dir`` (float64, eval mode; run it with ``twin_logits``)."""
    import torch

    out_dir = Path(out_dir)
    info = json.loads((out_dir / INFO_FILE).read_text())
    file, _, name = info["model_class"].rpartition(":")
    model = import_class(out_dir / file, name)(**info["model_args"])
    model.load_state_dict(torch.load(out_dir / info["state_dict"], map_location="cpu", weights_only=True))
    return model.eval()


def twin_logits(model: Any, x_float: np.ndarray, batch: int = 4096, device: str | None = None) -> np.ndarray:
    """Run the twin on float inputs (N, features) without its final softmax; float64 outputs.

    ``device`` ("cpu", "cuda"): where to run (default: where the model is).
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = model.double().eval()
    if device is not None:
        model = model.to(device)
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    children = list(model.children())
    body = torch.nn.Sequential(*children[:-1]) if isinstance(children[-1], torch.nn.Softmax) else model
    x = np.asarray(x_float, dtype=np.float64)
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            y = body(torch.from_numpy(x[start : start + batch]).to(dev))
            outs.append(getattr(y, "value", y).detach().cpu().double().numpy())
    if not outs:
        last = next(m for m in reversed(list(body)) if hasattr(m, "out_features"))
        return np.zeros((0, int(last.out_features)))
    return np.concatenate(outs, axis=0)
