"""The one path data takes: load -> compress -> quantise -> emit -> verify -> synthesise -> report.

``compress`` checks every option and tool, loads the model, builds the
run's targets and writes the output folder in full or not at all; ``_run``
is the short list of stages, each computing once and handing its result on.
``verify_outdir`` re-runs the verification of a folder as it stands on disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.base import Emitted, Target
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow import options, quality, stages
from mlinfn_compress.compress.flow.compression import compress_model
from mlinfn_compress.compress.flow.data import Dataset, load_dataset
from mlinfn_compress.compress.flow.inputs import load_calibration
from mlinfn_compress.compress.flow.options import RunOptions
from mlinfn_compress.compress.flow.outdir import check_outdir, load_outdir, staging, write_design
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.flow.report import HardwareSection, Report, float_exactness, layer_rows, model_section
from mlinfn_compress.compress.flow.report import compression as compression_facts
from mlinfn_compress.compress.flow.report_html import write_html
from mlinfn_compress.compress.flow.verification import verify
from mlinfn_compress.compress.frameworks.base import LoadedModel
from mlinfn_compress.errors import UserError

TEST_OUTPUTS = "sim/test_outputs.npz"  # with --data: every model's outputs on the test set
SIGMOID_NOTE = "the model ends in a sigmoid: the hardware emits the values before it (0 is the decision threshold)"
TABLE_SOFTMAX_NOTE = (
    "--softmax table: the outputs are the probabilities of the lookup-table softmax '{node}' (hls4ml's "
    "softmax_stable); the VHDL's out_argmax is the index of the largest (ties, which the tables' rounding can create "
    "between close logits, go to the lowest index); the framework models are compared on the logits before it"
)
SYNTH_TOOLS = ("yosys", "iverilog", "vvp")


def compress(opts: RunOptions) -> int:
    """Run the whole path; returns the exit code (0 verified, 1 mismatches)."""
    from mlinfn_compress.compress.frameworks import load_model

    progress = Progress(opts.quiet)
    options.check(opts)
    check_outdir(opts.outdir, opts.force)
    _check_tools(opts)
    with progress.step("load", f"loading {opts.model}"):
        original = load_model(opts.model, opts.weights, opts.model_class, opts.model_args, opts.input_shape)
    if opts.softmax == "table" and original.graph.output_activation != "softmax":
        raise UserError(f"--softmax table: the model {opts.model} does not end in a softmax; leave --softmax out")
    targets = options.targets(original.graph, opts)
    for target in targets:
        target.check_model(original.graph, str(opts.model))  # refuses what it cannot build, before any work
    # --calibration and --data hold samples as the model takes them: converted to the IR's layout here, once
    in_shape, n_out = original.model_input_shape, original.graph.output_size
    calib = original.ir_inputs(load_calibration(opts.calibration, in_shape)) if opts.calibration else None
    dataset = original.ir_dataset(load_dataset(opts.data, in_shape, n_out)) if opts.data else None
    with staging(opts.outdir) as tmp:
        passed = _run(opts, targets, original, calib, dataset, progress, tmp)
    return 0 if passed else 1


def _check_tools(opts: RunOptions) -> None:
    """ToolMissing, before any work, where a program the run needs is not installed."""
    from mlinfn_compress.backends.targets import KINDS
    from mlinfn_compress.sim import tools
    from mlinfn_compress.sim.ghdl import require_backends

    needed = [p for kind in options.TARGET_KINDS[opts.target] for p in KINDS[kind].tools()]
    for program in [*needed, *(SYNTH_TOOLS if opts.synth else ())]:
        if program == "ghdl":
            require_backends()  # any one backend, by its own program
        else:
            tools.find(program)


def _run(
    opts: RunOptions,
    targets: list[Target],
    original: LoadedModel,
    calib: np.ndarray | None,
    dataset: Dataset | None,
    progress: Progress,
    tmp: Path,
) -> bool:
    """Everything after loading; writes into ``tmp``; whether every check passed."""
    float_test = original.reference(dataset.x_test) if dataset is not None else None  # before anything changes
    work = tmp / "work"
    work.mkdir()
    loaded, compression = compress_model(original, opts.compression, opts.quant, dataset, progress, work)
    graph = loaded.graph
    if calib is None and dataset is not None:
        calib = dataset.flat(dataset.x_train)
    q = stages.quantise_stage(graph, opts.quant, calib, opts.simulate, opts.seed, progress)
    assert graph.input_type is not None
    x_float = to_float(q.x_int, graph.input_type.frac)
    with progress.step("reference", f"running the {graph.framework} model's own inference"):
        reference = loaded.reference(x_float)
        float_reference = original.reference(x_float) if loaded is not original else reference
    twin_info, twin_out, twin_test = stages.twin_stage(graph, opts.device, tmp / "twin", x_float, dataset, progress)
    exactness = float_exactness(graph)  # of the network the frameworks compute: before a table softmax
    softmax_info = _softmax_table(graph, opts, q.x_int, progress)
    gold = stages.golden_stage(graph, q.x_int)
    not_exact = stages.framework_check(loaded, q.chosen, exactness)
    float_model = None
    if (not_exact is not None or loaded is not original) and len(q.x_int) > q.corners:
        float_model = stages.float_model_error(gold.logits, gold.logits_frac, float_reference, q.corners)
    warnings = quality.zeroed_by_quantisation(graph, q.chosen, opts.compression.prune)
    warnings += quality.argmax_disagreement(float_model, graph.output.size)
    for text in warnings:
        progress.warn(text)
    references = {graph.framework: reference} if not_exact is None else {}
    if twin_out is not None:
        references["twin"] = twin_out
    test_int = quantize(dataset.flat(dataset.x_test), graph.input_type) if dataset is not None else None
    designs = [Emitted(t, t.emit(graph, tmp, q.x_int, progress)) for t in targets]
    write_design(tmp, graph, designs, q.x_int, stages.layouts(loaded))
    verification = verify(graph, designs, q.x_int, references, progress, keep_logs=tmp / "sim", test_set=test_int,
                          expected=gold.expected)  # fmt: skip
    verified = verification.to_json()
    hardware = _hardware(graph, designs, softmax_info)
    passed = verification.passed
    hw_design = next((d for e in designs if (d := e.target.hardware_design(e.design)) is not None), None)
    if opts.synth and hw_design is not None:
        from mlinfn_compress.compress.flow.hardware import SYNTH_DIR, synth_and_check

        hw = synth_and_check(graph, hw_design, tmp / SYNTH_DIR, q.x_int, progress)
        hardware.resources, hardware.timing, verified["netlist"] = hw.resources, hw.timing, hw.netlist
        passed = passed and hw.netlist_ok
    out_frac = graph.output.result_type.frac  # type: ignore[union-attr]  # quantised
    calibration = str(opts.calibration) if opts.calibration else f"x_train of {opts.data}" if dataset else (
        "default: standard normal features")  # fmt: skip
    report = Report(
        model=model_section(graph, stages.layouts(loaded)),
        target=opts.target,
        layers=layer_rows(graph, hw_design),
        compression=compression_facts(graph) | compression,
        quantisation=stages.quantisation_section(
            graph, opts.quant, q, exactness, not_exact, calibration, float_model
        ),  # fmt: skip
        verification=verified,
        hardware=hardware,
        timings_s=progress.timings,
        twin=twin_info,
        accuracy=stages.accuracy(
            dataset, float_test, verification.test_golden, twin_test, verification.test_logits, out_frac
        )
        if dataset is not None and float_test is not None
        else None,  # fmt: skip
        warnings=[*compression.get("warnings", []), *warnings],
        targets={k: v for e in designs for k, v in e.target.report(e.design).items()},
    )
    data = report.write(tmp)
    (tmp / "sim").mkdir(exist_ok=True)
    np.savez(tmp / "sim" / "references.npz", **references)  # type: ignore[arg-type]  # numpy's stub reads **arrays as its allow_pickle keyword
    if float_test is not None:
        stages.save_test_outputs(tmp / TEST_OUTPUTS, float_test, verification.test_golden, twin_test,
                                 verification.test_outputs, out_frac)  # fmt: skip
    with progress.step("report_html", "writing report.html"):
        write_html(tmp, data, graph, original.graph)
    shutil.rmtree(work)
    return passed


def _softmax_table(graph: Any, opts: RunOptions, x_int: np.ndarray, progress: Progress) -> dict[str, Any] | None:
    """--softmax table: the lookup-table softmax added after the logits; its node's name and its error."""
    if opts.softmax != "table":
        return None
    from mlinfn_compress.compress.passes.softmax_table import apply_softmax_table, softmax_error

    with progress.step("softmax", "adding the lookup-table softmax"):
        node = apply_softmax_table(graph, opts.quant)
        return {"node": node.name, "error": softmax_error(graph, x_int)}


def _hardware(graph: Any, designs: list[Emitted], softmax: dict[str, Any] | None) -> HardwareSection:
    """report.json's ``hardware``: the hardware design's facts, and what the outputs are."""
    facts = next((f for e in designs if (f := e.target.hardware(e.design)) is not None), {})
    out_t = graph.output.result_type
    argmax = graph.has_argmax and bool(facts)
    outputs: dict[str, Any] = {"logits": str(out_t), "argmax": argmax}
    if softmax is not None:
        outputs["note"] = TABLE_SOFTMAX_NOTE.format(node=softmax["node"])
        outputs["softmax"] = softmax["error"]
    elif graph.has_argmax:
        outputs["note"] = designs[0].target.softmax_note
    if graph.output_activation == "sigmoid":
        outputs["note"] = SIGMOID_NOTE
    facts = dict(facts)
    return HardwareSection(
        outputs,
        latency_cycles=facts.pop("latency_cycles", None),
        initiation_interval=facts.pop("initiation_interval", None),
        io=facts.pop("io", None),
        design=facts,
    )


def verify_outdir(outdir: Path, quiet: bool = False) -> int:
    """Re-run the verification of the design in ``outdir`` as it stands on disk."""
    progress = Progress(quiet)
    graph, designs, report = load_outdir(outdir)
    inputs = outdir / "sim" / "inputs.npy"
    if not inputs.exists():
        raise UserError(f"{outdir}: the verification inputs are missing ({inputs})")
    x_int = np.load(inputs)
    ref_file = outdir / "sim" / "references.npz"
    references: dict[str, np.ndarray] = {}
    if ref_file.exists():
        with np.load(ref_file) as f:
            references = {k: f[k] for k in f.files}
    verification = verify(graph, designs, x_int, references, progress, keep_logs=outdir / "sim")
    if report:
        netlist = report.get("verification", {}).get("netlist")  # the --synth run's netlist check stays
        report["verification"] = verification.to_json() | ({"netlist": netlist} if netlist else {})
        report.setdefault("timings_s", {}).update(progress.timings)
        (outdir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        write_html(outdir, report, graph, None)
    return 0 if verification.passed else 1
