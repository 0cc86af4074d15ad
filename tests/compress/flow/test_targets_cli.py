"""--target hls and --target both through the command: hls4ml's C-simulation against golden and VHDL."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import report, retype_hls

from mlinfn_compress.cli import main


@pytest.fixture(scope="module")
def hls_run(qkeras_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("hls") / "out"
    assert main([str(qkeras_mlp), "--target", "hls", "-o", str(outdir), "-q"]) == 0
    return outdir


@pytest.mark.slow
def test_hls_target_matches_golden_and_qkeras(hls_run: Path) -> None:
    r = report(hls_run)
    v = r["verification"]
    assert r["target"] == "hls"
    assert v["against"] == ["golden", "qkeras", "twin"] and v["mismatches"] == 0 and v["samples"] == 1000
    assert "C-simulation (Vitis project, g++)" in v["simulator"] and v["protocol"] is None
    assert v["hls"]["precision_differences"] == [] and v["hls"]["backend"] == "Vitis"
    assert r["hardware"]["latency_cycles"] is None and r["hardware"]["outputs"]["argmax"] is False
    for name in ("README.md", "build_prj.tcl", "firmware/defines.h", "firmware/parameters.h"):
        assert (hls_run / "hls" / name).exists(), name
    assert not (hls_run / "vhdl").exists()


@pytest.mark.slow
def test_verify_catches_a_changed_hls_precision(hls_run: Path, tmp_path: Path, capsys: Any) -> None:
    outdir = tmp_path / "mutant"
    shutil.copytree(hls_run, outdir)
    assert main(["verify", str(outdir), "-q"]) == 0
    retype_hls(outdir, "fc2_accum_t", "ap_fixed<12,1>")
    assert main(["verify", str(outdir), "-q"]) == 1
    v = report(outdir)["verification"]
    assert v["mismatches"] > 0 and v["first_mismatch"]["against"] == "golden"
    (difference,) = v["hls"]["precision_differences"]
    assert difference.startswith("layer 'fc2' (IR node 'fc2') accum: written fixed<12,1,TRN,WRAP>, IR fixed<")
    assert "MISMATCH" in capsys.readouterr().out


@pytest.mark.slow
def test_both_targets_agree(float_mlp: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "both"
    assert main([str(float_mlp), "--target", "both", "-o", str(outdir), "-q", "--simulate", "500"]) == 0
    r = report(outdir)
    v = r["verification"]
    assert v["against"] == [
        "vhdl: golden", "vhdl: golden (arg-max)", "vhdl: twin",
        "hls: golden", "hls: twin", "hls vs vhdl",
    ]  # fmt: skip
    assert v["mismatches"] == 0 and v["protocol"]["failed"] == 0 and v["hls"]["precision_differences"] == []
    assert r["hardware"]["latency_cycles"] == sum(row["pipeline_stages"] for row in r["layers"]) + 3  # the arg-max
    assert (outdir / "vhdl").is_dir() and (outdir / "hls" / "build_prj.tcl").exists()
