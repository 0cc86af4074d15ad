"""report.json follows its versioned JSON Schema, and the schema catches a report that does not."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from conftest import REPORT_SCHEMA, report

from mlinfn_compress.cli import main
from mlinfn_compress.compress.flow.report import SCHEMA_VERSION


@pytest.fixture(scope="module")
def written(small_mlp: Callable[[str, float], Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("schema") / "out"
    assert main([str(small_mlp("schema_mlp", 0.3)), "-o", str(out), "--simulate", "50", "-q"]) == 0
    return report(out)  # validated against the schema


def test_a_report_names_its_schema_version(written: dict) -> None:
    assert written["schema_version"] == SCHEMA_VERSION == 1
    assert json.loads(REPORT_SCHEMA.read_text())["properties"]["schema_version"] == {"const": SCHEMA_VERSION}


@pytest.mark.parametrize(
    "break_it",
    [
        lambda r: r.pop("verification"),
        lambda r: r["model"].update(parameters="many"),
        lambda r: r["layers"][0].update(result_type="float32"),
        lambda r: r.update(surprise=1),
        lambda r: r["hardware"]["io"].update(architecture="systolic"),
    ],
    ids=["missing section", "wrong type", "not a fixed-point type", "unknown field", "unknown architecture"],
)
def test_the_schema_catches_a_report_that_does_not_follow_it(written: dict, break_it: Callable[[dict], object]) -> None:
    broken = copy.deepcopy(written)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(REPORT_SCHEMA.read_text()))
