"""The one path data takes: load -> IR -> quantise -> emit -> verify -> report."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import golden
from .errors import UserError
from .fixed import to_float
from .inputs import DEFAULT_CALIBRATION_SAMPLES, load_calibration, verification_inputs
from .progress import Progress
from .quantise import MODEL_QUANTISED, QuantConfig, default_inputs, quantise
from .report import build_report, float_exactness, summary
from .verify import DESIGN_FILE, Verification, load_outdir, run_verification

SOFTMAX_NOTE = (
    "the model ends in a softmax: out_data carries the logits (before the softmax) and "
    "out_argmax the index of the largest one"
)


@dataclass
class RunOptions:
    model: Path
    outdir: Path
    target: str = "vhdl"
    weights: Path | None = None
    force: bool = False
    quant: QuantConfig = field(default_factory=QuantConfig)
    calibration: Path | None = None
    simulate: int = 1000
    seed: int = 0
    quiet: bool = False


def check_outdir(outdir: Path, force: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: exists and is not a directory")
    if outdir.exists() and any(outdir.iterdir()) and not force:
        raise UserError(f"{outdir}: exists and is not empty; pass --force to replace it")


def _framework_check(loaded_exact: bool, chosen: list[str], exactness: dict[str, Any], framework: str) -> str | None:
    """Why the framework's inference cannot be compared bit for bit (None if it can)."""
    if not loaded_exact:
        return f"the {framework} model is not quantised by its framework: compared as float model"
    if chosen:
        return f"formats of {', '.join(chosen)} were chosen post-training, not by the model"
    if not exactness["float32_exact"]:
        return f"layers {', '.join(exactness['layers_beyond_float32'])} exceed the float32 mantissa"
    return None


def compress(opts: RunOptions) -> int:
    """Run the whole path; returns the exit code (0 verified, 1 mismatches)."""
    from .frontends import load_model
    from .sim.ghdl import ghdl_path

    progress = Progress(opts.quiet)
    if opts.target != "vhdl":
        raise UserError(f"--target {opts.target}: not yet supported; use --target vhdl")
    if opts.simulate < 1:
        raise UserError(f"--simulate must be at least 1, got {opts.simulate}")
    opts.quant.check()
    check_outdir(opts.outdir, opts.force)
    ghdl_path()
    with progress.step("load", f"loading {opts.model}"):
        loaded = load_model(opts.model, opts.weights)
    graph = loaded.graph
    calib = load_calibration(opts.calibration, graph.input_size) if opts.calibration else None
    with progress.step("quantise", "quantising"):
        cal = calib if calib is not None else default_inputs(DEFAULT_CALIBRATION_SAMPLES, graph.input_size, opts.seed)
        chosen = quantise(graph, opts.quant, cal)
        assert graph.input_type is not None
        x_int, x_source, n_corners = verification_inputs(
            opts.simulate, graph.input_size, graph.input_type, calib, opts.seed
        )
        expected = golden.run(graph, x_int)
    with progress.step("reference", f"running the {graph.framework} model's own inference"):
        reference = loaded.reference(to_float(x_int, graph.input_type.frac))
    exactness = float_exactness(graph)
    not_exact = _framework_check(loaded.reference_exact, chosen, exactness, graph.framework)
    out_t = graph.output.result_type
    assert out_t is not None
    golden_float = to_float(expected["logits"], out_t.frac)
    quant_info: dict[str, Any] = {
        "input_type": str(graph.input_type),
        "weight_bits": opts.quant.weight_bits,
        "act_bits": opts.quant.act_bits,
        "formats_from_model": graph.framework in MODEL_QUANTISED,
        "chosen_post_training": chosen,
        "calibration": str(opts.calibration) if opts.calibration else "default: standard normal features",
        "verification_inputs": x_source,
        "framework": dict(exactness, compared_bit_for_bit=not_exact is None, reason=not_exact),
        "float_model": None,
    }
    if not_exact is not None and len(x_int) > n_corners:
        # The corner rows lie far outside any calibration range: measure on the rest.
        q, f = golden_float[n_corners:], reference[n_corners:]
        quant_info["float_model"] = {
            "max_abs_error": float(np.max(np.abs(q - f))),
            "argmax_agreement": float(np.mean(np.argmax(q, 1) == np.argmax(f, 1))),
            "samples": len(q),
        }
    framework = (graph.framework, reference) if not_exact is None else None
    outdir = opts.outdir
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        verification, design = _emit_and_verify(graph, tmp, x_int, framework, progress)
        outputs = {"logits": str(out_t), "argmax": graph.has_argmax}
        if graph.has_argmax:
            outputs["note"] = SOFTMAX_NOTE
        report = build_report(
            graph, opts.target, design.latency, verification.to_json(), quant_info, outputs, progress.timings
        )
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        if framework is not None:
            np.save(tmp / "sim" / "framework_outputs.npy", reference)
        if outdir.exists():
            shutil.rmtree(outdir)
        tmp.rename(outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(summary(report, outdir))
    return 0 if verification.passed else 1


def _emit_and_verify(
    graph: Any, tmp: Path, x_int: np.ndarray, framework: tuple[str, np.ndarray] | None, progress: Progress
) -> tuple[Verification, Any]:
    from .backends.vhdl import render

    with progress.step("emit", "writing VHDL"):
        design = render(graph, tmp / "vhdl", tmp / "sim")
        np.save(tmp / "sim" / "inputs.npy", x_int)
        (tmp / DESIGN_FILE).write_text(json.dumps({"ir": graph.to_json(), "vhdl": design.to_json()}))
    verification = run_verification(graph, design, x_int, framework, progress, keep_logs=tmp / "sim")
    return verification, design


def verify_outdir(outdir: Path, quiet: bool = False) -> int:
    """Re-run the verification of the design in ``outdir`` as it stands on disk."""
    progress = Progress(quiet)
    graph, design, report = load_outdir(outdir)
    inputs = outdir / "sim" / "inputs.npy"
    if not inputs.exists():
        raise UserError(f"{outdir}: the verification inputs are missing ({inputs})")
    x_int = np.load(inputs)
    fw_file = outdir / "sim" / "framework_outputs.npy"
    framework = (graph.framework, np.load(fw_file)) if fw_file.exists() else None
    verification = run_verification(graph, design, x_int, framework, progress, keep_logs=outdir / "sim")
    if report:
        report["verification"] = verification.to_json()
        report.setdefault("timings_s", {}).update(progress.timings)
        (outdir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(summary(report, outdir))
    return 0 if verification.passed else 1
