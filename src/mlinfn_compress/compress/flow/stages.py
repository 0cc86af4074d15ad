"""The stages of a run between loading and the report, each computing once and handing its result on.

``quantise`` gives every tensor a format and draws the verification
inputs; ``reference`` runs the framework's own inference; ``twin`` builds
and runs the framework twin; ``golden`` runs the golden model once on the
verification inputs (after the table softmax, when asked for); ``accuracy``
scores every model on the test set.  ``run`` calls them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import to_float
from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.flow.inputs import DEFAULT_CALIBRATION_SAMPLES, verification_inputs
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.frameworks.base import LoadedModel
from mlinfn_compress.compress.ir import Graph, Softmax, golden
from mlinfn_compress.compress.passes.quantise import MODEL_QUANTISED, QuantConfig, default_inputs, quantise


@dataclass
class Quantised:
    """The formats the quantisation chose and the verification inputs it drew."""

    chosen: list[str]  # nodes whose formats were chosen post-training, not by the model
    x_int: np.ndarray  # verification inputs, integers of the input type
    source: str  # where they come from
    corners: int  # how many of the first rows are the input type's corners


def quantise_stage(
    graph: Graph, quant: QuantConfig, calib: np.ndarray | None, simulate: int, seed: int, progress: Progress
) -> Quantised:
    """Every tensor's format, from the model or the calibration inputs, and the verification inputs."""
    with progress.step("quantise", "quantising"):
        cal = calib if calib is not None else default_inputs(DEFAULT_CALIBRATION_SAMPLES, graph.input_size, seed)
        chosen = quantise(graph, quant, cal.reshape(len(cal), *graph.input_shape))
        assert graph.input_type is not None
        x_int, source, corners = verification_inputs(simulate, graph.input_size, graph.input_type, calib, seed)
    return Quantised(chosen, x_int, source, corners)


@dataclass
class Golden:
    """The golden model on the verification inputs: what every design must output, and the logits."""

    expected: dict[str, np.ndarray]  # logits (the design's outputs) and arg-max
    logits: np.ndarray  # the values before a table softmax (the outputs when there is none)
    logits_frac: int


def golden_stage(graph: Graph, x_int: np.ndarray) -> Golden:
    values = graph.run_int(x_int)
    out = graph.output
    before = out.inputs[0] if isinstance(out, Softmax) else out.name  # a table softmax: the logits feed it
    expected = {"logits": golden.flat(values[out.name])}
    if graph.has_argmax:
        expected["argmax"] = np.argmax(expected["logits"], axis=1).astype(np.int64)
    return Golden(expected, golden.flat(values[before]), graph.type_of(before).frac)


def framework_check(loaded: LoadedModel, chosen: list[str], exactness: dict[str, Any]) -> str | None:
    """Why the framework's inference cannot be compared bit for bit (None if it can)."""
    framework = loaded.graph.framework
    if not loaded.reference_exact:
        return f"the {framework} model is not quantised by its framework: compared as float model"
    if chosen:
        return f"formats of {', '.join(chosen)} were chosen post-training, not by the model"
    if not exactness["float32_exact"]:
        return f"layers {', '.join(exactness['layers_beyond_float32'])} exceed the float32 mantissa"
    return None


def quantisation_section(
    graph: Graph,
    quant: QuantConfig,
    q: Quantised,
    exactness: dict[str, Any],
    not_exact: str | None,
    calibration: str,
    float_model: dict[str, Any] | None,
) -> dict[str, Any]:
    """report.json's ``quantisation``."""
    return {
        "input_type": str(graph.input_type),
        "weight_bits": quant.weight_bits,
        "act_bits": quant.act_bits,
        "formats_from_model": graph.framework in MODEL_QUANTISED,
        "chosen_post_training": q.chosen,
        "calibration": calibration,
        "verification_inputs": q.source,
        "framework": dict(exactness, compared_bit_for_bit=not_exact is None, reason=not_exact),
        "float_model": float_model,
    }


def float_model_error(logits: np.ndarray, frac: int, float_reference: np.ndarray, corners: int) -> dict[str, Any]:
    """How far the quantised logits lie from the float model's, on the inputs past the corner rows (they lie
    far outside any calibration range)."""
    q = to_float(logits, frac)[corners:]
    f = float_reference[corners:]
    return {
        "max_abs_error": float(np.max(np.abs(q - f))),
        "argmax_agreement": float(np.mean(np.argmax(q, 1) == np.argmax(f, 1))),
        "samples": len(q),
    }


def twin_stage(
    graph: Graph, device: str, twin_dir: Path, x_float: np.ndarray, dataset: Dataset | None, progress: Progress
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Build and run the framework twin; returns (report entry, outputs, test-set outputs)."""
    from mlinfn_compress.compress.frameworks.twin import build_and_run_twin

    with progress.step("twin", "building the framework twin and running it"):
        return build_and_run_twin(graph, device, twin_dir, x_float, dataset.x_test if dataset is not None else None)


def accuracy(
    dataset: Dataset,
    float_test: np.ndarray,
    golden_test: np.ndarray | None,
    twin_test: np.ndarray | None,
    hardware_test: np.ndarray | None,
    frac: int,
) -> dict[str, Any]:
    """report.json's ``accuracy``: the float, compressed, twin and hardware models on the test set."""
    assert golden_test is not None
    return {
        "metric": dataset.metric,
        "samples": len(dataset.x_test),
        "float": dataset.score(float_test, dataset.y_test),
        "compressed": dataset.score(to_float(golden_test, frac), dataset.y_test),
        "framework_twin": dataset.score(twin_test, dataset.y_test) if twin_test is not None else None,
        "hardware": dataset.score(to_float(hardware_test, frac), dataset.y_test) if hardware_test is not None else None,
    }


def save_test_outputs(
    path: Path,
    float_test: np.ndarray,
    golden_test: np.ndarray | None,
    twin_test: np.ndarray | None,
    simulated: dict[str, np.ndarray],
    frac: int,
) -> None:
    """Every model's outputs on the test set, as floats in flat rows of the IR's order (``api.test_outputs``)."""
    outputs = {"float": float_test}
    if golden_test is not None:
        outputs["compressed"] = to_float(golden_test, frac)
    if twin_test is not None:
        outputs["twin"] = twin_test
    outputs |= {target: to_float(ints, frac) for target, ints in simulated.items()}
    np.savez(path, **outputs)  # type: ignore[arg-type]  # numpy's stub reads **arrays as its allow_pickle keyword


def layouts(loaded: LoadedModel) -> dict[str, Any]:
    """How the model's own input and output arrays map to the IR's (None: the same), for design.json."""

    def one(layout: Any) -> dict[str, Any] | None:
        if layout is None:
            return None
        order = None if layout.order is None else [int(v) for v in layout.order]
        return {"model_shape": list(layout.model_shape), "order": order}

    return {"input": one(loaded.input_layout), "output": one(loaded.output_layout)}
