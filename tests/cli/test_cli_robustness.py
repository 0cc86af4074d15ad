"""The command's promises to a new user: validated options, a truthful --help, no traceback ever."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlinfn_compress.cli import INTERNAL_ERROR, build_parser, build_verify_parser, main
from mlinfn_compress.compress.ir import golden


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--bits", "0", "must be an integer from 2 to 24, got 0"),
        ("--bits", "25", "must be an integer from 2 to 24, got 25"),
        ("--weight-bits", "0", "must be an integer from 2 to 24, got 0"),
        ("--weight-bits", "1", "must be an integer from 2 to 24, got 1"),
        ("--act-bits", "0", "must be an integer from 2 to 24, got 0"),
        ("--act-bits", "30", "must be an integer from 2 to 24, got 30"),
        ("--epochs", "0", "must be an integer >= 1, got 0"),
        ("--simulate", "0", "must be an integer >= 1, got 0"),
        ("--simulate", "-5", "must be an integer >= 1, got -5"),
        ("--prune", "1", "must be a number in [0, 1), got 1.0"),
        ("--prune", "1.2", "must be a number in [0, 1), got 1.2"),
        ("--prune", "-0.1", "must be a number in [0, 1), got -0.1"),
        ("--seed", "-1", "must be an integer >= 0, got -1"),
        ("--bits", "eight", "must be an integer from 2 to 24, got 'eight'"),
        ("--clock-period", "0", "must be a number of nanoseconds in (0, 1000], got 0.0"),
        ("--clock-period", "-4", "must be a number of nanoseconds in (0, 1000], got -4.0"),
        ("--clock-period", "1e4", "must be a number of nanoseconds in (0, 1000], got 10000.0"),
        ("--clock-period", "fast", "must be a number of nanoseconds in (0, 1000], got 'fast'"),
    ],
)
def test_numeric_options_out_of_range_exit_2(
    option: str, value: str, allowed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    outdir = tmp_path / "o"
    with pytest.raises(SystemExit) as exc:
        main([str(model), f"{option}={value}", "-o", str(outdir), "-q"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {allowed}" in err
    assert not outdir.exists()


def test_explicit_bits_are_used_not_defaults() -> None:
    from mlinfn_compress.api import run_options

    args = build_parser().parse_args(["m.h5", "--bits", "6"])
    assert (args.bits, args.weight_bits, args.act_bits) == (6, None, None)
    opts = run_options(Path("m.h5"), bits=6)
    assert (opts.quant.weight_bits, opts.quant.act_bits) == (6, 6)
    opts = run_options(Path("m.h5"), bits=6, act_bits=10)
    assert (opts.quant.weight_bits, opts.quant.act_bits) == (6, 10)


def test_the_family_chooses_the_delay_model(capsys: pytest.CaptureFixture[str]) -> None:
    from mlinfn_compress.api import run_options
    from mlinfn_compress.errors import UserError

    assert build_parser().parse_args(["m.h5"]).family == "xc7"
    args = build_parser().parse_args(["m.h5", "--family", "ecp5", "--clock-period", "6.667"])
    opts = run_options(Path("m.h5"), family=args.family, clock_period=args.clock_period)
    assert (opts.arith.family, opts.arith.clock_period_ns) == ("ecp5", 6.667)
    with pytest.raises(UserError, match=r"^--family must be one of xc7, ecp5, ice40, got 'virtex'$"):
        run_options(Path("m.h5"), family="virtex")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["m.h5", "--family", "virtex"])
    assert "argument --family: invalid choice: 'virtex'" in capsys.readouterr().err


@pytest.mark.parametrize("parser", [build_parser(), build_verify_parser()], ids=["main", "verify"])
def test_every_option_has_help_with_its_default(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        assert action.help and len(action.help) > 10, f"{action.dest} has no help text"
        if action.option_strings:
            assert "default" in action.help, f"{action.option_strings[0]}: the help does not give the default"


def test_model_help_names_every_format() -> None:
    helps = {a.dest: a.help for a in build_parser()._actions}
    text = helps["model"] or ""
    for fmt in (".h5", ".keras", ".json", ".pt", ".pth", ".pkl", "TorchScript", "--model-class", "state_dict"):
        assert fmt in text, fmt


def test_help_lists_exit_code_3(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "3 internal error" in out


def test_internal_error_is_one_line_a_log_and_exit_3(
    small_mlp, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure injected into the golden model: no traceback, a log file, exit 3, nothing left behind."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure\nsecond line")

    monkeypatch.setattr(golden, "run", broken)
    monkeypatch.setenv("MLINFN_LOG_DIR", str(tmp_path / "logs"))
    model = small_mlp("robust", 0.0)
    work = tmp_path / "work"
    work.mkdir()
    outdir = work / "out"
    code = main([str(model), "-o", str(outdir), "--simulate", "20", "-q"])
    captured = capsys.readouterr()
    assert code == INTERNAL_ERROR == 3
    lines = captured.err.strip().splitlines()
    assert lines[0] == "mlinfn-compress: internal error: RuntimeError: injected failure second line"
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[1]
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: injected failure" in text
    assert f"command: mlinfn-compress {model} -o {outdir} --simulate 20 -q" in text
    assert not outdir.exists()
    assert list(work.iterdir()) == []  # no temporary output folder either
