"""The one path data takes: load -> IR -> quantise -> emit -> verify -> report."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl import ArithOptions, VhdlDesign
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow import quality
from mlinfn_compress.compress.flow.compression import CompressOptions, compress_model
from mlinfn_compress.compress.flow.data import Dataset, load_dataset
from mlinfn_compress.compress.flow.inputs import DEFAULT_CALIBRATION_SAMPLES, load_calibration, verification_inputs
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.flow.report import build_report, float_exactness
from mlinfn_compress.compress.flow.report_html import write_html
from mlinfn_compress.compress.flow.verification import DESIGN_FILE, Verification, load_outdir, run_verification
from mlinfn_compress.compress.frameworks.base import LoadedModel
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import MODEL_QUANTISED, QuantConfig, default_inputs, quantise
from mlinfn_compress.compress.passes.softmax_table import MODES as SOFTMAX_MODES
from mlinfn_compress.errors import UserError

TARGETS = ("vhdl", "hls", "both", "bondmachine")
TEST_OUTPUTS = "sim/test_outputs.npz"  # with --data: every model's outputs on the test set
SIGMOID_NOTE = "the model ends in a sigmoid: the hardware emits the values before it (0 is the decision threshold)"
HLS_SOFTMAX_NOTE = (
    "the model ends in a softmax: the HLS design emits the logits (before the softmax; hls4ml's softmax "
    "is a lookup-table approximation)"
)
BONDMACHINE_SOFTMAX_NOTE = (
    "the model ends in a softmax: the export ends in a layer of BondMachine softmax neurons; the golden "
    "model's outputs here are the logits before it"
)
SOFTMAX_NOTE = (
    "the model ends in a softmax: out_data carries the logits (before the softmax) and "
    "out_argmax the index of the largest one"
)
TABLE_SOFTMAX_NOTE = (
    "--softmax table: the outputs are the probabilities of the lookup-table softmax '{node}' (hls4ml's "
    "softmax_stable); the VHDL's out_argmax is the index of the largest (ties, which the tables' rounding can create "
    "between close logits, go to the lowest index); the framework models are compared on the logits before it"
)


@dataclass
class RunOptions:
    model: Path
    outdir: Path
    target: str = "vhdl"
    hls_backend: str = "Vitis"
    weights: Path | None = None
    model_class: str | None = None
    model_args: dict[str, Any] | None = None
    input_shape: tuple[int, ...] | None = None
    force: bool = False
    quant: QuantConfig = field(default_factory=QuantConfig)
    compression: CompressOptions = field(default_factory=CompressOptions)
    calibration: Path | None = None
    data: Path | None = None
    device: str = "auto"
    simulate: int = 1000
    seed: int = 0
    synth: bool = False
    softmax: str = "logits"  # a final softmax: "logits" (removed) or "table" (hls4ml's lookup-table softmax)
    arith: ArithOptions = field(default_factory=ArithOptions)
    quiet: bool = False
    io: str | None = None  # dataflow's form: parallel or stream (None: by the size rule)
    arch: str = "dataflow"  # VHDL architecture: dataflow or bondmachine
    reuse: int | None = None  # bondmachine: neurons each core serves (None: 1)


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
    from mlinfn_compress.compress.frameworks import load_model
    from mlinfn_compress.sim.ghdl import require_backends

    progress = Progress(opts.quiet)
    if opts.target not in TARGETS:
        raise UserError(f"--target must be one of {', '.join(TARGETS)}, got {opts.target!r}")
    if opts.target in ("hls", "both"):
        from mlinfn_compress.backends.hls import backend_name

        try:
            opts.hls_backend = backend_name(opts.hls_backend)
        except ValueError as e:
            raise UserError(f"--hls-backend: {e}") from e
    if opts.softmax not in SOFTMAX_MODES:
        raise UserError(f"--softmax must be one of {', '.join(SOFTMAX_MODES)}, got {opts.softmax!r}")
    if opts.softmax == "table" and opts.target == "bondmachine":
        raise UserError("--softmax table computes the softmax in the VHDL or HLS design: not with --target bondmachine")
    if opts.synth and opts.target not in ("vhdl", "both"):
        raise UserError("--synth estimates the VHDL design's resources: use it with --target vhdl or both")
    if opts.io is not None:
        from mlinfn_compress.backends.vhdl import IO_CHOICES

        if opts.io not in IO_CHOICES:
            raise UserError(f"--io must be one of {', '.join(IO_CHOICES)}, got {opts.io!r}")
        if opts.target == "hls":
            raise UserError("--io chooses the VHDL design's architecture: use it with --target vhdl or both")
    if opts.target == "hls" and (opts.arith.dsp or opts.arith.arith != "shift-add"):
        raise UserError("--arith and --dsp choose the VHDL design's arithmetic: use them with --target vhdl or both")
    _check_arch(opts)
    if opts.simulate < 1:
        raise UserError(f"--simulate must be at least 1, got {opts.simulate}")
    opts.quant.check()
    opts.compression.check(has_data=opts.data is not None)
    check_outdir(opts.outdir, opts.force)
    require_backends()
    _check_tools(opts)
    with progress.step("load", f"loading {opts.model}"):
        original = load_model(opts.model, opts.weights, opts.model_class, opts.model_args, opts.input_shape)
    if opts.softmax == "table" and original.graph.output_activation != "softmax":
        raise UserError(f"--softmax table: the model {opts.model} does not end in a softmax; leave --softmax out")
    if opts.target == "bondmachine":
        from mlinfn_compress.backends.neuralbond.export import layers_of

        layers_of(original.graph, str(opts.model))  # refuses what the format cannot describe, before any work
    if opts.arch == "bondmachine":
        from mlinfn_compress.backends.vhdl.bondmachine_plan import chain

        chain(original.graph)  # refuses what the architecture does not take, before any work
    # --calibration and --data hold samples as the model takes them: converted to the IR's layout here, once
    in_shape, n_out = original.model_input_shape, original.graph.output_size
    calib = original.ir_inputs(load_calibration(opts.calibration, in_shape)) if opts.calibration else None
    dataset = original.ir_dataset(load_dataset(opts.data, in_shape, n_out)) if opts.data else None
    outdir = opts.outdir
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        report, passed = _run(opts, original, calib, dataset, progress, tmp)
        if outdir.exists():
            shutil.rmtree(outdir)
        tmp.rename(outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return 0 if passed else 1


def _run(
    opts: RunOptions,
    original: LoadedModel,
    calib: np.ndarray | None,
    dataset: Dataset | None,
    progress: Progress,
    tmp: Path,
) -> tuple[dict[str, Any], bool]:
    """Everything after loading; writes into ``tmp``; returns the report and whether it verified."""
    # The float model's own outputs on the test set, before anything changes it.
    float_test = original.reference(dataset.x_test) if dataset is not None else None
    work = tmp / "work"
    work.mkdir()
    loaded, compression = compress_model(original, opts.compression, opts.quant, dataset, progress, work)
    graph = loaded.graph
    if calib is None and dataset is not None:
        calib = dataset.flat(dataset.x_train)
    with progress.step("quantise", "quantising"):
        cal = calib if calib is not None else default_inputs(DEFAULT_CALIBRATION_SAMPLES, graph.input_size, opts.seed)
        cal = cal.reshape(len(cal), *graph.input_shape)
        chosen = quantise(graph, opts.quant, cal)
        assert graph.input_type is not None
        x_int, x_source, n_corners = verification_inputs(
            opts.simulate, graph.input_size, graph.input_type, calib, opts.seed
        )
        expected = golden.run(graph, x_int)
    x_float = to_float(x_int, graph.input_type.frac)
    with progress.step("reference", f"running the {graph.framework} model's own inference"):
        reference = loaded.reference(x_float)
        float_reference = original.reference(x_float) if loaded is not original else reference
    exactness = float_exactness(graph)
    not_exact = _framework_check(loaded.reference_exact, chosen, exactness, graph.framework)
    out_t = graph.output.result_type
    assert out_t is not None
    quant_info: dict[str, Any] = {
        "input_type": str(graph.input_type),
        "weight_bits": opts.quant.weight_bits,
        "act_bits": opts.quant.act_bits,
        "formats_from_model": graph.framework in MODEL_QUANTISED,
        "chosen_post_training": chosen,
        "calibration": _calibration_source(opts, dataset),
        "verification_inputs": x_source,
        "framework": dict(exactness, compared_bit_for_bit=not_exact is None, reason=not_exact),
        "float_model": None,
    }
    if (not_exact is not None or loaded is not original) and len(x_int) > n_corners:
        # The corner rows lie far outside any calibration range: measure on the rest.
        q = to_float(expected["logits"], out_t.frac)[n_corners:]
        f = float_reference[n_corners:]
        quant_info["float_model"] = {
            "max_abs_error": float(np.max(np.abs(q - f))),
            "argmax_agreement": float(np.mean(np.argmax(q, 1) == np.argmax(f, 1))),
            "samples": len(q),
        }
    warnings = quality.zeroed_by_quantisation(graph, chosen, opts.compression.prune)
    warnings += quality.argmax_disagreement(quant_info["float_model"], graph.output.size)
    for text in warnings:
        progress.warn(text)
    references = {graph.framework: reference} if not_exact is None else {}
    twin_info, twin_out, twin_test = _twin(graph, opts.device, tmp / "twin", x_float, dataset, progress)
    if twin_out is not None:
        references["twin"] = twin_out
    test_int = quantize(dataset.flat(dataset.x_test), graph.input_type) if dataset is not None else None
    softmax_info = None
    if opts.softmax == "table":
        from mlinfn_compress.compress.passes.softmax_table import apply_softmax_table, softmax_error

        with progress.step("softmax", "adding the lookup-table softmax"):
            node = apply_softmax_table(graph, opts.quant)
            expected = golden.run(graph, x_int)
            softmax_info = softmax_error(graph, x_int)
        out_t = graph.output.result_type
        assert out_t is not None
    bondmachine = None
    if opts.target == "bondmachine":
        from mlinfn_compress.backends.neuralbond.target import export_and_verify

        verification, bondmachine = export_and_verify(
            graph, tmp, x_int, expected, references, test_int, progress, str(opts.model)
        )
        design = project = None
        _write_design(tmp, graph, None, None, x_int, bondmachine, _layouts(loaded))
    else:
        verification, design, project = _emit_and_verify(
            opts, graph, tmp, x_int, expected, references, progress, test_int, _layouts(loaded)
        )
    argmax = graph.has_argmax and design is not None
    outputs: dict[str, Any] = {"logits": str(out_t), "argmax": argmax}
    if softmax_info is not None:
        outputs["note"] = TABLE_SOFTMAX_NOTE.format(node=node.name)
        outputs["softmax"] = softmax_info
    elif argmax:
        outputs["note"] = SOFTMAX_NOTE
    elif graph.has_argmax:
        outputs["note"] = BONDMACHINE_SOFTMAX_NOTE if opts.target == "bondmachine" else HLS_SOFTMAX_NOTE
    if graph.output_activation == "sigmoid":
        outputs["note"] = SIGMOID_NOTE
    report = build_report(
        graph,
        opts.target,
        design,
        verification.to_json(),
        quant_info,
        outputs,
        progress.timings,
        interval=design.initiation_interval if design is not None else None,
        io=_io_facts(opts, graph) if design is not None else None,
    )
    if loaded.input_layout is not None and loaded.output_layout is not None:  # the framework's own shapes
        report["model"]["framework_input_shape"] = list(loaded.input_layout.model_shape)
        report["model"]["framework_output_shape"] = list(loaded.output_layout.model_shape)
    if project is not None:
        report["hls"] = {"path": "hls/", "backend": project.backend, "project": project.project_name}
    if bondmachine is not None:
        report["bondmachine"] = bondmachine
        report["verification"]["bondmachine"] = bondmachine["check"]
        report["hardware"]["initiation_interval"] = None
    passed = verification.passed
    if opts.synth and design is not None:
        from mlinfn_compress.compress.flow.hardware import SYNTH_DIR, synth_and_check

        hw = synth_and_check(graph, design, tmp / SYNTH_DIR, x_int, progress)
        report["hardware"]["resources"] = hw.resources
        report["hardware"]["timing"] = hw.timing
        report["verification"]["netlist"] = hw.netlist
        passed = passed and hw.netlist_ok
    report["compression"].update(compression)
    report["warnings"] = [*compression.get("warnings", []), *warnings]
    report["twin"] = twin_info
    if dataset is not None and test_int is not None and float_test is not None:
        assert verification.test_golden is not None
        report["accuracy"] = {
            "metric": dataset.metric,
            "samples": len(dataset.x_test),
            "float": dataset.score(float_test, dataset.y_test),
            "compressed": dataset.score(to_float(verification.test_golden, out_t.frac), dataset.y_test),
            "framework_twin": dataset.score(twin_test, dataset.y_test) if twin_test is not None else None,
            "hardware": dataset.score(to_float(verification.test_logits, out_t.frac), dataset.y_test)
            if verification.test_logits is not None
            else None,
        }
    (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (tmp / "sim").mkdir(exist_ok=True)
    np.savez(tmp / "sim" / "references.npz", **references)
    if float_test is not None:
        _save_test_outputs(tmp / TEST_OUTPUTS, float_test, verification, twin_test, out_t.frac)
    with progress.step("report_html", "writing report.html"):
        write_html(tmp, report, graph, original.graph)
    shutil.rmtree(work)
    return report, passed


def _check_tools(opts: RunOptions) -> None:
    """ToolMissing, before any work, where a program the run needs is not installed."""
    from mlinfn_compress.sim import tools

    needed = (["yosys", "iverilog", "vvp"] if opts.synth else []) + (["g++"] if opts.target in ("hls", "both") else [])
    for program in needed:
        tools.find(program)


def _check_arch(opts: RunOptions) -> None:
    """UserError where --arch and --reuse do not fit each other or the other options."""
    from mlinfn_compress.backends.vhdl import ARCH_CHOICES
    from mlinfn_compress.compress.flow.options import check

    if opts.arch not in ARCH_CHOICES:
        raise UserError(f"--arch must be one of {', '.join(ARCH_CHOICES)}, got {opts.arch!r}")
    check("reuse", opts.reuse)
    if opts.arch == "dataflow":
        if opts.reuse is not None:
            raise UserError("--reuse sets how many neurons a bondmachine core serves: use it with --arch bondmachine")
        return
    if opts.target not in ("vhdl", "both"):
        raise UserError("--arch chooses the VHDL design's architecture: use it with --target vhdl or both")
    if opts.io == "parallel":
        raise UserError(
            "--arch bondmachine has the streaming interface (valid/ready handshakes, one word per sample): "
            "--io parallel does not apply to it; leave --io out"
        )
    if opts.arith.arith != "shift-add" or opts.arith.dsp:
        raise UserError(
            "--arith and --dsp choose how the dataflow architecture computes its layers; a bondmachine core is a "
            "multiply-accumulate unit: leave them out with --arch bondmachine"
        )
    if opts.softmax == "table":
        raise UserError(
            "--softmax table: the table softmax has no bondmachine core; leave it out or use --arch dataflow"
        )


def _save_test_outputs(
    path: Path, float_test: np.ndarray, verification: Verification, twin_test: np.ndarray | None, frac: int
) -> None:
    """Every model's outputs on the test set, as floats in flat rows of the IR's order (``api.test_outputs``)."""
    outputs = {"float": float_test}
    if verification.test_golden is not None:
        outputs["compressed"] = to_float(verification.test_golden, frac)
    if twin_test is not None:
        outputs["twin"] = twin_test
    outputs |= {target: to_float(ints, frac) for target, ints in verification.test_outputs.items()}
    np.savez(path, **outputs)


def _io_facts(opts: RunOptions, graph: Graph) -> dict[str, Any]:
    """The VHDL architecture of the run, how it was chosen and why."""
    from mlinfn_compress.backends.vhdl import choose_io

    if opts.arch == "bondmachine":
        reuse = opts.reuse or 1
        why = f"asked for (--arch bondmachine --reuse {reuse}): each core serves up to {reuse} neuron(s) in turn"
        return {"architecture": "bondmachine", "chosen_by": "--arch", "reason": why, "reuse": reuse}
    rule, reason = choose_io(graph)
    if opts.io is None:
        return {"architecture": rule, "chosen_by": "size rule", "reason": reason}
    return {"architecture": opts.io, "chosen_by": "--io", "reason": f"asked for; the size rule gives {rule}: {reason}"}


def _calibration_source(opts: RunOptions, dataset: Dataset | None) -> str:
    if opts.calibration:
        return str(opts.calibration)
    if dataset is not None:
        return f"x_train of {opts.data}"
    return "default: standard normal features"


def _twin(
    graph: Graph, device: str, twin_dir: Path, x_float: np.ndarray, dataset: Dataset | None, progress: Progress
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Build and run the framework twin; returns (report entry, outputs, test-set outputs)."""
    from mlinfn_compress.compress.frameworks.twin import build_and_run_twin

    with progress.step("twin", "building the framework twin and running it"):
        return build_and_run_twin(graph, device, twin_dir, x_float, dataset.x_test if dataset is not None else None)


def _emit_and_verify(
    opts: RunOptions,
    graph: Graph,
    tmp: Path,
    x_int: np.ndarray,
    expected: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    progress: Progress,
    test_int: np.ndarray | None,
    layouts: dict[str, Any],
) -> tuple[Verification, VhdlDesign | None, Any]:
    design = project = None
    if opts.target in ("vhdl", "both"):
        from mlinfn_compress.backends.vhdl import render

        io = _io_facts(opts, graph)["architecture"]
        how = (
            f"{opts.reuse or 1} neuron(s) per core" if opts.arch == "bondmachine" else f"{opts.arith.arith} arithmetic"
        )
        with progress.step("emit", f"writing VHDL ({io} architecture, {how})"):
            design = render(
                graph, tmp / "vhdl", tmp / "sim", io=io, options=opts.arith, arch=opts.arch, reuse=opts.reuse or 1
            )
    if opts.target in ("hls", "both"):
        from mlinfn_compress.backends.hls import render_hls

        with progress.step("emit_hls", f"writing the hls4ml project ({opts.hls_backend})"):
            try:
                project = render_hls(graph, tmp / "hls", opts.hls_backend, tb_inputs=x_int)
            except ValueError as e:
                raise UserError(f"{opts.model}: cannot write the HLS project: {e}") from e
    _write_design(tmp, graph, design, project, x_int, None, layouts)
    verification = run_verification(
        graph,
        x_int,
        references,
        progress,
        vhdl=design,
        hls=project,
        keep_logs=tmp / "sim",
        test_set=test_int,
        expected=expected,
    )
    return verification, design, project


def _layouts(loaded: LoadedModel) -> dict[str, Any]:
    """How the model's own input and output arrays map to the IR's (None: the same), for design.json."""

    def one(layout: Any) -> dict[str, Any] | None:
        if layout is None:
            return None
        order = None if layout.order is None else [int(v) for v in layout.order]
        return {"model_shape": list(layout.model_shape), "order": order}

    return {"input": one(loaded.input_layout), "output": one(loaded.output_layout)}


def _write_design(
    tmp: Path,
    graph: Graph,
    design: VhdlDesign | None,
    project: Any,
    x_int: np.ndarray,
    bondmachine: Any,
    layouts: dict[str, Any],
) -> None:
    """design.json (what ``verify`` reads back) and the verification inputs."""
    (tmp / "sim").mkdir(exist_ok=True)
    np.save(tmp / "sim" / "inputs.npy", x_int)
    description = {
        "ir": graph.to_json(),
        "vhdl": design.to_json() if design is not None else None,
        "hls": {"path": "hls"} if project is not None else None,
        "bondmachine": {"path": "bondmachine"} if bondmachine is not None else None,
        "layouts": layouts,
    }
    (tmp / DESIGN_FILE).write_text(json.dumps(description))


def verify_outdir(outdir: Path, quiet: bool = False) -> int:
    """Re-run the verification of the design in ``outdir`` as it stands on disk."""
    progress = Progress(quiet)
    graph, design, project, report = load_outdir(outdir)
    inputs = outdir / "sim" / "inputs.npy"
    if not inputs.exists():
        raise UserError(f"{outdir}: the verification inputs are missing ({inputs})")
    x_int = np.load(inputs)
    ref_file = outdir / "sim" / "references.npz"
    references: dict[str, np.ndarray] = {}
    if ref_file.exists():
        with np.load(ref_file) as f:
            references = {k: f[k] for k in f.files}
    if design is None and project is None:
        from mlinfn_compress.backends.neuralbond.target import verify_export

        verification, check = verify_export(graph, outdir, x_int, None, references)
    else:
        verification = run_verification(
            graph, x_int, references, progress, vhdl=design, hls=project, keep_logs=outdir / "sim"
        )
    if report:
        netlist = report.get("verification", {}).get("netlist")  # the --synth run's netlist check stays
        report["verification"] = (
            verification.to_json()
            | ({"netlist": netlist} if netlist else {})
            | ({"bondmachine": check} if design is None and project is None else {})
        )
        report.setdefault("timings_s", {}).update(progress.timings)
        (outdir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        write_html(outdir, report, graph, None)
    return 0 if verification.passed else 1
