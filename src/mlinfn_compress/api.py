"""The Python API: everything the command does, from Python (notebooks, scripts, other tools).

    import mlinfn_compress as mc

    run = mc.compress("model.h5", "out/", target="both", prune=0.7, qat=True, bits=6,
                      data=(x_train, y_train, x_test, y_test))
    run.passed                 # verified bit for bit (golden, framework twin, simulators)
    run.report["hardware"]     # latency, interval, resources (with synth=True)
    print(run.summary())
    y = mc.simulate("out/", x)             # the hardware's outputs on new inputs (GHDL)
    t = mc.simulate("out/", x, backend="twin")   # the framework twin's, on the same inputs
    run.test_outputs()["vhdl"]             # each model's outputs on the test set of ``data``
    mc.verify("out/")                      # re-run the verification of what is on disk

``compress`` takes a model file or a model object (a tf_keras / QKeras /
Keras 3 model, or a torch ``nn.Module``), and data or calibration as arrays
or files.  Its keyword arguments are the command's options (``--weight-bits``
is ``weight_bits``, and so on); numeric ones are checked against the same
ranges.  Bad input raises ``UserError`` (the command's exit code 2) with the
same message; a design that does not verify is a result (``passed`` False),
not an exception.  The command line (``mlinfn_compress.cli``) is a thin layer
over this module.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.flow.options import check_range
from mlinfn_compress.errors import UserError

EXIT_VERIFIED, EXIT_MISMATCH = 0, 1


@dataclass
class Run:
    """What a run wrote and proved: the output folder, the exit code, and report.json."""

    outdir: Path
    exit_code: int
    report: dict[str, Any] = field(repr=False)

    @property
    def passed(self) -> bool:
        """True when every comparison was bit exact (exit code 0)."""
        return self.exit_code == EXIT_VERIFIED

    @property
    def verification(self) -> dict[str, Any]:
        return dict(self.report.get("verification") or {})

    @property
    def hardware(self) -> dict[str, Any]:
        return dict(self.report.get("hardware") or {})

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.report.get("layers") or [])

    @property
    def accuracy(self) -> dict[str, Any] | None:
        return self.report.get("accuracy")

    @property
    def twin(self) -> dict[str, Any]:
        """The framework twin: framework, path, device it ran on (``reason`` when it could not be built)."""
        return dict(self.report.get("twin") or {})

    def test_outputs(self) -> dict[str, np.ndarray]:
        """Each model's outputs on the test set of ``data`` (see ``test_outputs``)."""
        return test_outputs(self.outdir)

    def summary(self) -> str:
        """The lines the command prints at the end of a run."""
        from mlinfn_compress.compress.flow.summary import summary

        return summary(self.report, self.outdir)


def load_report(outdir: str | Path) -> dict[str, Any]:
    """The report.json of a run."""
    path = Path(outdir) / "report.json"
    if not path.exists():
        raise UserError(f"{outdir}: no report.json (not an mlinfn-compress output folder)")
    return dict(json.loads(path.read_text()))


def test_outputs(outdir: str | Path) -> dict[str, np.ndarray]:
    """The outputs on the test set of a run with labelled data (``data=``), one row per test sample.

    Keys: ``float`` (the model as given, before compression), ``compressed``
    (the golden model of the quantised design), ``twin`` (the framework twin,
    when float64 computes it exactly), and the simulated hardware: ``vhdl``
    (GHDL) and/or ``hls`` (the hls4ml C-simulation).  Outputs are floats in the
    model's own layout (flat rows), before a final softmax or sigmoid unless the
    design computes a table softmax; they are what the report's ``accuracy``
    was computed from, recorded when the run was made.
    """
    from mlinfn_compress.compress.flow.run import TEST_OUTPUTS

    path = Path(outdir) / TEST_OUTPUTS
    if not path.exists():
        load_report(outdir)  # not an output folder at all: say so
        raise UserError(f"{outdir}: no test-set outputs; they are recorded by runs with labelled data (data=...)")
    from mlinfn_compress.compress.flow.outdir import layouts as read_layouts

    layouts = read_layouts(Path(outdir))
    with np.load(path) as f:
        return {k: _model_layout(layouts, f[k]) for k in f.files}


def run_options(model: Path, outdir: Path | None = None, **options: Any) -> Any:
    """The pipeline's RunOptions for a model file and the command's options as keywords."""
    from mlinfn_compress.compress.fixed import FixedType
    from mlinfn_compress.compress.flow.compression import CompressOptions
    from mlinfn_compress.compress.flow.options import RunOptions
    from mlinfn_compress.compress.passes.quantise import DEFAULT_INPUT_TYPE, QuantConfig

    for name in ("bits", "weight_bits", "act_bits", "epochs", "simulate", "seed", "prune", "reuse"):
        check_range(name, options.get(name))
    bits = options.pop("bits", None)
    weight_bits = options.pop("weight_bits", None)
    act_bits = options.pop("act_bits", None)
    input_type = options.pop("input_type", None)
    if isinstance(input_type, str):
        input_type = FixedType.parse(input_type, rounding="RND_CONV", overflow="SAT")
    quant = QuantConfig(
        weight_bits=weight_bits if weight_bits is not None else bits if bits is not None else 8,
        act_bits=act_bits if act_bits is not None else bits if bits is not None else 16,
        input_type=input_type or FixedType.parse(DEFAULT_INPUT_TYPE),
    )
    compression = CompressOptions(
        options.pop("prune", None) or 0.0,
        options.pop("prune_scope", None) or "layer",
        bool(options.pop("qat", False)),
        options.pop("epochs", None),
    )
    arith = _arith(
        options.pop("arith", None), options.pop("clock_period", None), options.pop("dsp", None),
        options.pop("family", None),
    )  # fmt: skip
    paths = {k: Path(options[k]) for k in ("weights", "data", "calibration") if options.get(k) is not None}
    known = set(RunOptions.__dataclass_fields__) - {"model", "outdir", "quant", "compression", "arith"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)}; the options are {', '.join(sorted(known))}")
    fields = {k: v for k, v in options.items() if v is not None} | paths
    return RunOptions(
        model=model,
        outdir=outdir or Path(f"{model.stem}_out"),
        quant=quant,
        compression=compression,
        arith=arith,
        **fields,
    )


def _arith(arith: str | None, clock_period: float | None, dsp: bool | None, family: str | None) -> Any:
    """The VHDL arithmetic options (``--arith``, ``--clock-period``, ``--dsp``, ``--family``), checked."""
    from mlinfn_compress.backends.vhdl import ARITHMETIC, DEFAULT_CLOCK_NS, ArithOptions
    from mlinfn_compress.backends.vhdl.delay import DEFAULT_FAMILY, FAMILIES

    if arith is not None and arith not in ARITHMETIC:
        raise UserError(f"--arith must be one of {', '.join(ARITHMETIC)}, got {arith!r}")
    period = DEFAULT_CLOCK_NS if clock_period is None else clock_period
    if not isinstance(period, (int, float)) or not 0.0 < float(period) <= 1000.0:
        raise UserError(f"--clock-period must be a number of nanoseconds in (0, 1000], got {period!r}")
    if family is not None and family not in FAMILIES:
        raise UserError(f"--family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return ArithOptions(arith or ARITHMETIC[0], float(period), bool(dsp), family or DEFAULT_FAMILY)


def compress(model: Any, outdir: str | Path | None = None, *, quiet: bool = True, **options: Any) -> Run:
    """Compress, emit, verify and report, as ``mlinfn-compress MODEL -o OUTDIR [options]`` does.

    ``model``: a model file, or a tf_keras / QKeras / Keras 3 model or a torch
    ``nn.Module`` (saved to a temporary file first).  ``data``: an .npz file,
    a tuple (x_train, y_train, x_test, y_test), a dict with those keys, or an
    object with those attributes.  ``calibration``: an .npy file or an array.
    Other keywords are the command's options (``target``, ``prune``, ``qat``,
    ``bits``, ``io``, ``arch``, ``reuse``, ``synth``, ...).  An existing ``outdir`` is replaced
    (``force`` defaults to True here).
    """
    from mlinfn_compress.compress.flow.run import compress as run_pipeline

    options.setdefault("force", True)
    options["quiet"] = quiet
    out = Path(outdir) if outdir is not None else None
    staging = Path(tempfile.mkdtemp(prefix="mlinfn-api-"))
    path, described = staging, "the model"
    try:
        path, described = _model_file(model, staging)
        if options.get("data") is not None and not isinstance(options["data"], (str, Path)):
            options["data"] = _data_file(options["data"], staging)
        if options.get("calibration") is not None and not isinstance(options["calibration"], (str, Path)):
            np.save(staging / "calibration.npy", np.asarray(options["calibration"], dtype=np.float64))
            options["calibration"] = staging / "calibration.npy"
        opts = run_options(path, out or Path(f"{described}_out"), **options)
        code = run_pipeline(opts)
        report = load_report(opts.outdir)
        if path.parent == staging:  # name what the user gave, not the staging file
            report["model"]["path"] = described
            (opts.outdir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        return Run(opts.outdir, code, report)
    except UserError as e:
        if path.parent != staging:
            raise
        # name what the user gave, not the temporary file it was saved to
        raise type(e)(str(e).replace(str(path), described).replace(str(staging), "(in memory)")) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify(outdir: str | Path, quiet: bool = True) -> Run:
    """Re-run the verification of the design in ``outdir`` as it stands on disk (``mlinfn-compress verify``)."""
    from mlinfn_compress.compress.flow.run import verify_outdir

    code = verify_outdir(Path(outdir), quiet)
    return Run(Path(outdir), code, load_report(outdir))


def simulate(outdir: str | Path, x: np.ndarray, backend: str = "vhdl", device: str = "auto") -> np.ndarray:
    """The outputs of the design in ``outdir`` on float inputs ``x`` (as the model takes them).

    ``backend``: ``vhdl`` (GHDL), ``hls`` (the hls4ml C-simulation),
    ``golden`` (the golden model), or ``twin`` (the framework twin in
    ``OUTDIR/twin``, QKeras or Brevitas in float64, on ``device``: auto, cpu or
    cuda; the report's ``twin.device`` says where the run put it).  Inputs are
    quantised to the design's input type; outputs are floats, one row per
    sample, in the model's own output layout (before a final softmax or sigmoid
    unless the design computes it).  All four are equal, bit for bit, on a
    design that verified.
    """
    from mlinfn_compress.compress.fixed import quantize, to_float
    from mlinfn_compress.compress.flow.outdir import layouts as read_layouts
    from mlinfn_compress.compress.flow.outdir import load_outdir
    from mlinfn_compress.compress.ir import golden

    outdir = Path(outdir)
    graph, designs, _ = load_outdir(outdir)
    layouts = read_layouts(outdir)
    x = np.asarray(x, dtype=np.float64)
    x_ir = layouts["input"].to_ir(x) if layouts.get("input") else graph.batch(x).reshape(len(x), -1)
    assert graph.input_type is not None
    x_int = quantize(x_ir, graph.input_type)
    # the backend names this function takes -> (design.json key, what the design is, the other simulator)
    simulators = {"vhdl": ("vhdl", "VHDL design", "hls"), "hls": ("hls", "HLS project", "vhdl")}
    if backend == "golden":
        out = golden.run(graph, x_int)["logits"]
    elif backend in simulators:
        key, what, other = simulators[backend]
        found = [e for e in designs if e.target.key == key]
        if not found:
            raise UserError(f"{outdir}: holds no {what}; use backend='{other}' or 'golden'")
        with tempfile.TemporaryDirectory(prefix="mlinfn-sim-") as tmp:
            out = found[0].target.outputs(found[0].design, x_int, Path(tmp))
    elif backend == "twin":
        return _model_layout(layouts, _run_twin(outdir, graph, to_float(x_int, graph.input_type.frac), device))
    else:
        raise UserError(f"backend must be vhdl, hls, golden or twin, got {backend!r}")
    out_t = graph.output.result_type
    assert out_t is not None
    return _model_layout(layouts, to_float(out, out_t.frac))


def _run_twin(outdir: Path, graph: Any, x: np.ndarray, device: str) -> np.ndarray:
    """The framework twin saved in ``outdir``, run on float inputs in the IR's layout."""
    from mlinfn_compress.compress.frameworks.twin import run_saved_twin

    info = load_report(outdir).get("twin") or {}
    if not info.get("path"):
        why = info.get("reason") or "the run wrote none"
        raise UserError(f"{outdir}: holds no framework twin ({why}); use backend='golden'")
    _, (out,) = run_saved_twin(graph, outdir / "twin", device, [x])
    assert out is not None
    return out


def _model_layout(layouts: dict[str, Any], y: np.ndarray) -> np.ndarray:
    """Flat output rows in the IR's order as flat rows in the model's own order."""
    return layouts["output"].to_model(y).reshape(len(y), -1) if layouts.get("output") else y


def _model_file(model: Any, staging: Path) -> tuple[Path, str]:
    """A file holding ``model`` (itself when it is a path) and how to name it in the report."""
    if isinstance(model, (str, Path)):
        return Path(model), Path(model).stem
    module = type(model).__module__
    name = str(getattr(model, "name", "") or type(model).__name__)
    if module.startswith(("tf_keras", "keras", "qkeras")) or hasattr(model, "count_params"):
        is_keras3 = module.startswith("keras") and not module.startswith("keras._tf_keras")
        path = staging / (f"{name}.keras" if is_keras3 else f"{name}.h5")
        from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden

        with framework_warnings_hidden():  # HDF5 is tf_keras's own format here, not a choice to warn about
            if is_keras3:
                model.save(path)
            else:
                model.save(path, include_optimizer=False)
        return path, f"in-memory Keras model '{name}'"
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]  # no torch installed: a torch model cannot be given either
    if torch is not None and isinstance(model, torch.nn.Module):
        path = staging / f"{type(model).__name__}.pt"
        torch.save(model, path)
        return path, f"in-memory PyTorch model '{type(model).__name__}'"
    raise UserError(f"model must be a file, a Keras model or a torch nn.Module, got {type(model).__name__}")


def _data_file(data: Any, staging: Path) -> Path:
    """An .npz with x_train, y_train, x_test, y_test from a tuple, a dict or an object with those attributes."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    if isinstance(data, (tuple, list)) and len(data) == 4:
        arrays = dict(zip(keys, data, strict=True))
    elif isinstance(data, dict):
        arrays = {k: data[k] for k in keys if k in data}
    else:
        arrays = {k: getattr(data, k) for k in keys if hasattr(data, k)}
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise UserError(f"data: missing {', '.join(missing)}; give (x_train, y_train, x_test, y_test)")
    path = staging / "data.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]  # numpy's stub reads **arrays as its allow_pickle keyword
    return path
