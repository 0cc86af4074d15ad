"""Reading a PyTorch model file: a whole pickled ``nn.Module`` (also one saved on a GPU), a TorchScript
archive, or a state_dict with the file and class that build the model (``--model-class file.py:ClassName``).

Loading a pickle runs code from it: load only models you trust.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import short_error
from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden
from mlinfn_compress.errors import UserError

STATE_DICT_HELP = "pass --model-class FILE.py:ClassName (and --model-args '{...}' for its constructor)"


# ---- loading ----------------------------------------------------------------


def import_model_class(path: Path, spec: str) -> Any:
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


def load_module(path: Path, model_class: str | None, model_args: dict[str, Any] | None) -> Any:
    import torch

    cls = import_model_class(path, model_class) if model_class else None
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
