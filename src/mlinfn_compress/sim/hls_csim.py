"""C simulation of a written hls4ml project, and what its C++ files say about its precisions.

hls4ml's own ``ModelGraph.compile()`` first rewrites the project from the
model in memory and then loads ``firmware/<project>-<stamp>.so`` with ctypes;
a second load of the same path in one process returns the library already
loaded.  Verification must test the files as they are on disk (someone may
have edited ``defines.h``), possibly several times in one process, so this
module runs the project's own ``build_lib.sh`` (what ``compile()`` runs: g++
on ``firmware/<project>.cpp`` and the Python bridge), copies the library to a
fresh name and calls the bridge's ``<project>_double`` once per sample, as
hls4ml's ``predict`` does.  Doubles carry every value exactly (the backend
allows at most 53-bit inputs and outputs), and ap_fixed/ac_fixed convert
exactly representable doubles without rounding.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.hls.project import HlsProject
from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.sim import tools

_CPP_TYPE = re.compile(r"^\s*(?:nnet::array\s*<\s*)?(ap_fixed|ap_ufixed|ac_fixed)\s*<([^<>]*)>")
_TYPEDEF = re.compile(r"typedef\s+([^;]+?)\s+(\w+)\s*;")
_CALL = re.compile(r"nnet::\w+\s*<([^;]*?)>\s*\(([^;]*)\)\s*;")
_DECL = re.compile(r"\b(\w+)\s+(\w+)\s*\[")
_ALIAS = re.compile(r"auto\s*&\s*(\w+)\s*=\s*(\w+)\s*;")
_STRUCT = re.compile(r"struct\s+(\w+)\s*(?::[^{]*)?\{(.*?)\n\};", re.S)
_FIELD = re.compile(r"typedef\s+(\w+)\s+(\w+_t)\s*;|static\s+const\s+(\w+)\s+(slope|shift)\s*;")
_NOT_PRECISIONS = {"index_t"}  # a dense layer's integer index type


class CSimError(RuntimeError):
    """The project did not compile, or its outputs are not on the output type's grid."""


def parse_cpp_type(text: str) -> FixedType | None:
    """An ap_fixed / ap_ufixed / ac_fixed C++ type as a FixedType (None when it is not fixed-point)."""
    m = _CPP_TYPE.match(text)
    if m is None:
        return None
    kind, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
    width, integer, rest = int(args[0]), int(args[1]), args[2:]
    signed = kind == "ap_fixed"
    if kind == "ac_fixed":
        signed = not rest or rest[0].lower() not in ("false", "0")
        rest = rest[1:]
    if len(rest) > 2 and rest[2] != "0":
        return None  # saturation bits: no IR type has them
    modes = [re.sub(r"^A[PC]_", "", r) for r in rest[:2]]  # AP_RND_CONV -> RND_CONV
    try:
        return FixedType(width, integer, signed, modes[0] if modes else "TRN", modes[1] if len(modes) > 1 else "WRAP")
    except ValueError:  # a mode the IR does not know
        return None


def _firmware(project: HlsProject) -> Path:
    for d in (project.outdir / "firmware", project.outdir / "src" / "firmware"):
        if d.is_dir():
            return d
    raise FileNotFoundError(f"{project.outdir}: no firmware/ directory")


def written_precisions(project: HlsProject) -> dict[str, dict[str, FixedType | None]]:
    """Each layer's precisions as the project's C++ files declare them now.

    Follows the top function: the type of the variable each layer writes
    (``layerN_out``, declared in the top function or its header), the first
    ``nnet::`` call that takes that variable (the layer's own: every other
    reads it later), the config struct named last in that call's template
    arguments (in ``parameters.h``) and the typedefs of ``defines.h``.  None
    marks a type that is not fixed-point.  A layer without a call is a
    CSimError: hls4ml wrote no code for it.
    """
    fw = _firmware(project)
    typedefs = {name: text for text, name in _TYPEDEF.findall((fw / "defines.h").read_text())}

    def resolve(name: str) -> FixedType | None:
        seen = 0
        while name in typedefs and seen < 20:
            name, seen = typedefs[name], seen + 1
        return parse_cpp_type(name)

    top = (fw / f"{project.project_name}.cpp").read_text()
    header = fw / f"{project.project_name}.h"
    declared = {var: t for t, var in _DECL.findall(top + (header.read_text() if header.exists() else ""))}
    aliases = dict(_ALIAS.findall(top))
    structs = {name: _fields(body) for name, body in _STRUCT.findall((fw / "parameters.h").read_text())}
    calls = [(targs.split(",")[-1].strip(), set(re.findall(r"\w+", args))) for targs, args in _CALL.findall(top)]

    def var_type(var: str) -> FixedType | None:
        while var in aliases:
            var = aliases[var]
        if var not in declared:
            raise CSimError(f"{fw}: variable {var} is not declared in the top function")
        return resolve(declared[var])

    out: dict[str, dict[str, FixedType | None]] = {}
    for layer in project.layers:
        if layer.ir_node == "input":
            out[layer.name] = {"result": var_type(layer.name)}
            continue
        var = (layer.output or f"layer{layer.index}_out").split(".")[-1]  # Quartus: outputs.layerN_out
        result = var_type(var)
        if layer.class_name == "Reshape":  # io_parallel: the output aliases the input, no call
            out[layer.name] = {"result": result}
            continue
        config = next((cfg for cfg, names in calls if var in names), None)
        if config is None:
            raise CSimError(f"{fw}: no call of layer '{layer.name}' (writing {var}) in the top function")
        out[layer.name] = {**{f.removesuffix("_t"): resolve(t) for f, t in structs.get(config, {}).items()}}
        out[layer.name]["result"] = result
    return out


def _fields(body: str) -> dict[str, str]:
    """A config struct's type members: {accum_t: type name, ..., slope: type name}."""
    out = {}
    for typedef_type, typedef_name, const_type, const_name in _FIELD.findall(body):
        if typedef_name and typedef_name not in _NOT_PRECISIONS:
            out[typedef_name] = typedef_type
        elif const_name:
            out[const_name] = const_type
    return out


def precision_differences(project: HlsProject) -> list[str]:
    """Where the C++ files' precisions differ from the IR's, and weight headers (synthesis) from
    the .txt copies (C simulation); empty when all agree."""
    written = written_precisions(project)
    diffs = []
    for layer in project.layers:
        got = written.get(layer.name, {})
        for var, want in layer.precisions.items():
            if got.get(var) != want:
                diffs.append(
                    f"layer '{layer.name}' (IR node '{layer.ir_node}') {var}: written {got.get(var)}, IR {want}"
                )
    for header in sorted((_firmware(project) / "weights").glob("*.h")):
        txt = header.with_suffix(".txt")
        m = re.search(r"=\s*\{(.*)\};", header.read_text(), re.S)
        if txt.exists() and (m is None or m.group(1).strip() != txt.read_text().strip()):
            diffs.append(f"{header.name}: the values synthesis reads differ from {txt.name}, which C simulation reads")
    return diffs


@dataclass
class CSimLibrary:
    """A compiled project: its bridge function, ready to run."""

    project: HlsProject
    path: Path
    compile_seconds: float
    handle: Any

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float64 outputs (N, n_out) for float64 inputs (N, n_in), one bridge call a sample."""
        p = self.project
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, p.n_in)
        y = np.zeros((len(x), p.n_out), dtype=np.float64)
        fn = getattr(self.handle, f"{p.project_name}_double")
        extra: list[Any] = []
        if p.backend == "Quartus":  # its bridge also takes two size references
            sizes = (ctypes.c_ushort * 2)()
            extra = [ctypes.addressof(sizes), ctypes.addressof(sizes) + ctypes.sizeof(ctypes.c_ushort)]
        fn.argtypes = [ctypes.c_void_p] * (2 + len(extra))
        fn.restype = None
        xp, yp = x.ctypes.data, y.ctypes.data
        xs, ys = x.strides[0], y.strides[0]
        for i in range(len(x)):
            fn(xp + i * xs, yp + i * ys, *extra)
        return y


def compile_project(project: HlsProject) -> CSimLibrary:
    """Compile the project as it is on disk with its build_lib.sh (g++) and load the library."""
    if not project.compilable:
        raise CSimError(f"the {project.backend} backend's C simulation needs its vendor compiler; not run here")
    script = project.outdir / "build_lib.sh"
    text = script.read_text()
    name = re.search(r"^PROJECT=(\S+)", text, re.M)
    stamp = re.search(r"^LIB_STAMP=(\S+)", text, re.M)
    if name is None or stamp is None:
        raise CSimError(f"{script}: cannot find PROJECT and LIB_STAMP")
    tools.find("g++")
    t0 = time.perf_counter()
    res = subprocess.run(["bash", "build_lib.sh"], cwd=project.outdir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        cmd = ["g++", f"(through {script})"]
        raise tools.failure("compiling the HLS C-simulation", cmd, res.returncode, res.stdout + res.stderr)
    built = project.outdir / "firmware" / f"{name.group(1)}-{stamp.group(1)}.so"
    tmp = Path(tempfile.mkdtemp(prefix="hls_csim_"))
    path = tmp / f"{project.project_name}_{os.getpid()}_{time.monotonic_ns()}.so"
    shutil.copy2(built, path)  # a fresh path: dlopen of a path already loaded returns the old library
    try:
        handle = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the mapping stays valid after the file is gone
    return CSimLibrary(project, path, seconds, handle)


@dataclass
class CSimRun:
    outputs: np.ndarray  # integers on the output type's grid, (N, n_out)
    compile_seconds: float
    predict_seconds: float

    @property
    def samples_per_second(self) -> float:
        return len(self.outputs) / self.predict_seconds if self.predict_seconds > 0 else float("inf")


def predict_ints(lib: CSimLibrary, x_int: np.ndarray) -> np.ndarray:
    """Run integer inputs of the input type through the library; integer outputs of the output type."""
    p = lib.project
    x_int = np.asarray(x_int)
    if x_int.ndim != 2 or x_int.shape[1] != p.n_in:
        raise ValueError(f"inputs must have shape (N, {p.n_in}), got {x_int.shape}")
    if np.any(x_int < p.input_type.min_int) or np.any(x_int > p.input_type.max_int):
        raise ValueError(f"inputs outside the range of {p.input_type}")
    y = lib.predict(to_float(x_int, p.input_type.frac))
    scaled = np.ldexp(y, p.output_type.frac)
    if not np.all(scaled == np.round(scaled)):
        raise CSimError(f"C simulation outputs are not on the grid of {p.output_type}")
    return scaled.astype(np.int64)


def run_csim(project: HlsProject, x_int: np.ndarray) -> CSimRun:
    """Compile the project on disk and run it on integer inputs."""
    lib = compile_project(project)
    t0 = time.perf_counter()
    out = predict_ints(lib, x_int)
    return CSimRun(out, lib.compile_seconds, time.perf_counter() - t0)


def compare_with_golden(project: HlsProject, graph: Graph, x_int: np.ndarray) -> tuple[int, CSimRun, np.ndarray]:
    """Compile and run the project; (rows that differ from the golden model, the run, golden logits)."""
    gold = golden.run(graph, x_int)["logits"]
    run = run_csim(project, x_int)
    return int((run.outputs != gold).any(axis=1).sum()), run, gold


__all__ = [
    "CSimError",
    "CSimLibrary",
    "CSimRun",
    "compare_with_golden",
    "compile_project",
    "parse_cpp_type",
    "precision_differences",
    "predict_ints",
    "run_csim",
    "written_precisions",
]
