"""The Brevitas class file: writing and importing it, and a Brevitas model with its scales made constants.

The class file (``twin_model.py``, copied beside the state_dict) stands
alone: it imports only torch, Brevitas and the fixed-point rule, which is
copied beside it (``mlinfn_rounding.py``) for a machine without mlinfn-compress.  ``constant_layers``
describes a Brevitas ``nn.Sequential`` with power-of-two scales (what
quantisation-aware training produces) in the class file's layer list;
``torch.twin`` describes the twin of a quantised graph in the same list.
torch and brevitas are imported only inside the functions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType

ROUNDING = {"RND_CONV": "ROUND", "TRN": "FLOOR", "TRN_ZERO": "ROUND_TO_ZERO"}  # ours -> Brevitas
STATE_FILE = "model.pt"
MODEL_FILE = "model.py"
CLASS_NAME = "Twin"
SOURCE = Path(__file__).with_name("twin_model.py")
ROUNDING_FILE = "mlinfn_rounding.py"  # the fixed-point rule, copied beside the class file so that it stands alone


def quant_spec(t: FixedType, rounding: str = "ROUND", narrow: bool = False) -> dict[str, Any]:
    """The class file's description of a quantiser onto the grid and range of ``t``."""
    return {"bits": t.width, "frac": t.frac, "signed": t.signed, "narrow": narrow, "rounding": rounding}


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
    out_dir: Path,
    layers: list[dict[str, Any]],
    tensors: dict[str, np.ndarray],
    class_name: str = CLASS_NAME,
    extra_args: dict[str, Any] | None = None,
) -> tuple[Path, Path, dict[str, Any]]:
    """Write the class file and the state_dict of the model ``layers`` describes.

    Returns (state_dict path, class file path, the constructor's keyword arguments).
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / MODEL_FILE
    source = SOURCE.read_text()
    if class_name != CLASS_NAME:
        source += f'\n\nclass {class_name}({CLASS_NAME}):\n    """The network, named as it was saved."""\n'
    file.write_text(source)
    from mlinfn_compress.compress.fixed import rounding

    (out_dir / ROUNDING_FILE).write_text(Path(rounding.__file__).read_text())
    args: dict[str, Any] = {"layers": layers, "dtype": "float64"} | (extra_args or {})
    model = import_class(file, class_name)(**args)
    state = model.state_dict()
    if set(state) != set(tensors):
        raise AssertionError(f"parameters {sorted(tensors)} do not fit the model's {sorted(state)}")
    for key, value in tensors.items():
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.float64)).reshape(state[key].shape)
    path = out_dir / STATE_FILE
    torch.save(state, path)
    return path, file, args
