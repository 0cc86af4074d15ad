"""The mlinfn-compress command line.

Imports stay light here: TensorFlow and friends load only when a model is read.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from mlinfn_compress._version import __version__
from mlinfn_compress.errors import UserError

INTERNAL_ERROR = 3

EPILOG = """\
other commands:
  mlinfn-compress verify OUTDIR   re-run the verification of the design in OUTDIR as it stands on disk
  mlinfn-compress doctor          list the external tools and Python packages the tool uses, and what is missing

exit codes: 0 verified bit-exact; 1 verification found mismatches; 2 bad input or unsupported model;
3 internal error (the message names a log file with the full traceback); 4 an external tool (GHDL, cocotb,
yosys, nextpnr, Icarus Verilog, g++) is missing or failed (the message names it and what to do).
"""

MODEL_HELP = (
    "the trained model: Keras/QKeras .h5 or .keras (tf_keras or Keras 3), or an architecture .json with "
    "--weights; PyTorch/Brevitas .pt, .pth or .pkl (a whole pickled module, or a state_dict with "
    "--model-class), or a TorchScript file (.pt, .ts)"
)


def _type(text: str) -> object:
    from mlinfn_compress.compress.fixed import FixedType, FixedTypeError

    try:
        return FixedType.parse(text, rounding="RND_CONV", overflow="SAT")
    except FixedTypeError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _option(name: str, fraction: bool = False) -> Callable[[str], object]:
    """An argparse type for a numeric option: its range is the one ``options.RANGES`` defines."""
    from mlinfn_compress.compress.flow.options import RANGES

    rule = RANGES[name]

    def parse(text: str) -> object:
        try:
            value: object = float(text) if fraction else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}") from None
        why = rule.problem(value)
        if why is not None:
            raise argparse.ArgumentTypeError(why)
        return value

    return parse


def shape_type(text: str) -> tuple[int, ...]:
    """An argparse type: positive integers separated by commas (a tensor shape without the batch axis)."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be 1 to 3 positive integers separated by commas, got {text!r}")
    return shape


def clock_period(text: str) -> float:
    """An argparse type: a clock period in nanoseconds, above 0 and at most 1000."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of nanoseconds in (0, 1000], got {text!r}") from None
    if not 0.0 < value <= 1000.0:
        raise argparse.ArgumentTypeError(f"must be a number of nanoseconds in (0, 1000], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from mlinfn_compress.backends.vhdl.delay import DEFAULT_FAMILY, FAMILIES
    from mlinfn_compress.backends.vhdl.design import ARITHMETIC, DEFAULT_CLOCK_NS

    p = argparse.ArgumentParser(
        prog="mlinfn-compress",
        description="Compress a trained network and emit firmware that is verified bit for bit in simulation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument(
        "--target",
        choices=("vhdl", "hls", "both", "bondmachine"),
        default="vhdl",
        help="what to emit: VHDL, an hls4ml project, both, or the model JSON of BondMachine's neuralbond "
        "(default: vhdl)",
    )
    p.add_argument(
        "--hls-backend",
        default="Vitis",
        help="hls4ml backend for --target hls/both: Vitis, Vivado, Quartus or oneAPI (default: Vitis)",
    )
    p.add_argument("-o", "--outdir", type=Path, help="output folder (default: <model name>_out)")
    p.add_argument("--force", action="store_true", help="replace an existing, non-empty output folder (default: off)")
    p.add_argument(
        "--weights", type=Path, help="weights HDF5 for an architecture .json (default: NAME_weights.h5 beside it)"
    )
    p.add_argument(
        "--model-class",
        metavar="FILE.py:CLASS",
        help="the nn.Module class a PyTorch/Brevitas state_dict belongs to (default: none; required for a state_dict)",
    )
    p.add_argument(
        "--model-args",
        metavar="JSON",
        help="JSON object of keyword arguments for --model-class, e.g. '{\"hidden\": 32}' (default: no arguments)",
    )
    p.add_argument(
        "--input-shape",
        type=shape_type,
        metavar="C,H,W",
        help="one input sample's shape as a PyTorch model takes it, without the batch axis, e.g. 1,28,28 "
        "(default: read from the model; needed when its first layer takes any size, as a convolution does)",
    )
    p.add_argument(
        "--prune",
        type=_option("prune", fraction=True),
        default=0.0,
        help="fraction of weights to remove by magnitude, 0 <= S < 1 (default: 0, no pruning)",
    )
    p.add_argument(
        "--prune-scope",
        choices=("layer", "global"),
        default="layer",
        help="prune per layer or globally (default: layer)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help=".npz with x_train, y_train, x_test, y_test: fine-tune and measure accuracy (default: none)",
    )
    p.add_argument("--qat", action="store_true", help="quantisation-aware fine-tuning, needs --data (default: off)")
    p.add_argument("--epochs", type=_option("epochs"), help="fine-tuning epochs, at least 1 (default: 10)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the framework twin runs (default: auto)",
    )
    p.add_argument("--bits", type=_option("bits"), help="bits of weights and activations, 2 to 24 (default: 8 and 16)")
    p.add_argument("--weight-bits", type=_option("weight_bits"), help="weight bits, 2 to 24 (default: --bits, else 8)")
    p.add_argument("--act-bits", type=_option("act_bits"), help="activation bits, 2 to 24 (default: --bits, else 16)")
    p.add_argument(
        "--input-type",
        type=_type,
        default=None,
        help="fixed-point format of the inputs (default: fixed<16,6,RND_CONV,SAT>)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        help=".npy array (samples, features): sets activation ranges and the verification inputs "
        "(default: --data's x_train, else 4,096 standard normal samples)",
    )
    p.add_argument(
        "--simulate",
        type=_option("simulate"),
        default=1000,
        help="samples simulated in GHDL, at least 1 (default: 1000)",
    )
    p.add_argument("--seed", type=_option("seed"), default=0, help="seed of generated inputs, >= 0 (default: 0)")
    p.add_argument(
        "--softmax",
        choices=("logits", "table"),
        default="logits",
        help="a final softmax: 'logits' emits the values before it and their arg-max; 'table' computes it in "
        "hardware with hls4ml's lookup-table softmax and emits probabilities and their arg-max (default: logits)",
    )
    p.add_argument(
        "--io",
        choices=("parallel", "stream"),
        help="form of the dataflow architecture: parallel (every layer at once, one sample per clock) or stream "
        "(one pixel per clock through line buffers, valid/ready handshakes) (default: stream where the parallel "
        "design would exceed 16,384 constant multiplications or its largest tensor 1,024 values, else parallel)",
    )
    p.add_argument(
        "--arch",
        choices=("dataflow", "bondmachine"),
        default="dataflow",
        help="architecture of the VHDL design: dataflow (every layer its own hardware; --io chooses its form) or "
        "bondmachine (each dense layer shared out among small multiply-accumulate cores with weight ROMs, joined by "
        "valid/ready handshakes; --reuse neurons per core) (default: dataflow)",
    )
    p.add_argument(
        "--reuse",
        type=_option("reuse"),
        metavar="R",
        help="with --arch bondmachine: neurons each core serves in turn, at least 1; larger R, fewer cores, more "
        "clocks per sample (default: 1)",
    )
    p.add_argument(
        "--arith",
        choices=ARITHMETIC,
        default=ARITHMETIC[0],
        help="how the VHDL computes linear layers: shift-add, adder graphs of shifted signals pipelined to "
        "--clock-period; naive, a sum of products per output in one clock (default: shift-add)",
    )
    p.add_argument(
        "--clock-period",
        type=clock_period,
        default=DEFAULT_CLOCK_NS,
        metavar="NS",
        help=f"clock period in ns the VHDL pipeline is cut for (default: {DEFAULT_CLOCK_NS}, 240 MHz)",
    )
    p.add_argument(
        "--family",
        choices=FAMILIES,
        default=DEFAULT_FAMILY,
        help="device family whose delay model cuts the pipeline to --clock-period: xc7 (an estimate for "
        "Xilinx 7-series), ecp5 or ice40 (calibrated on routed designs; --synth then places and routes on that "
        f"family) (default: {DEFAULT_FAMILY})",
    )
    p.add_argument(
        "--dsp",
        action="store_true",
        help="map the weights whose shift-and-add costs more than a multiplier to DSP multiplications "
        "(default: off, no DSP)",
    )
    p.add_argument(
        "--synth",
        action="store_true",
        help="also synthesise the VHDL design: simulate its netlist against golden (Icarus Verilog), count "
        "resources per layer (yosys synth_xilinx, with and without DSPs), place and route it (nextpnr) for "
        "Fmax (default: off)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines (default: off)")
    p.add_argument("--version", action="version", version=f"mlinfn-compress {__version__}")
    return p


def build_verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlinfn-compress verify",
        description="Re-run the verification of the design in OUTDIR as it stands on disk.",
    )
    p.add_argument("outdir", type=Path, help="the output folder of an earlier run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines (default: off)")
    return p


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    try:
        if args_in and args_in[0] == "doctor":
            from mlinfn_compress.doctor import doctor

            text, code = doctor()
            print(text)
            return code
        if args_in and args_in[0] == "verify":
            vargs = build_verify_parser().parse_args(args_in[1:])
            from mlinfn_compress.compress.flow.run import verify_outdir

            code = verify_outdir(vargs.outdir, vargs.quiet)
            _print_summary(vargs.outdir)
            return code
        args = build_parser().parse_args(args_in)
        from mlinfn_compress.api import run_options
        from mlinfn_compress.compress.flow.run import compress

        options = {k: v for k, v in vars(args).items() if k not in ("model", "outdir")}
        options["model_args"] = _model_args(args.model_args)
        opts = run_options(args.model, args.outdir, **options)
        code = compress(opts)
        _print_summary(opts.outdir)
        return code
    except UserError as e:
        print(f"mlinfn-compress: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("mlinfn-compress: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place where any failure becomes a message and exit 3
        log = write_crash_log(["mlinfn-compress", *args_in])
        message = " ".join(str(e).split())
        print(f"mlinfn-compress: internal error: {type(e).__name__}: {message}", file=sys.stderr)
        print(f"mlinfn-compress: the full traceback is in {log}", file=sys.stderr)
        return INTERNAL_ERROR


def _model_args(text: str | None) -> dict[str, object] | None:
    """--model-args: a JSON object, or None."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--model-args is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise UserError("--model-args must be a JSON object, e.g. '{\"hidden\": 32}'")
    return value


def _print_summary(outdir: Path) -> None:
    """The run's summary, from the report it wrote."""
    from mlinfn_compress.api import load_report
    from mlinfn_compress.compress.flow.summary import summary

    print(summary(load_report(outdir), outdir))


def write_crash_log(argv: list[str]) -> Path:
    """Write the current exception's traceback and the command line to a new log file; return its path."""
    from mlinfn_compress.sim.tools import log_dir

    folder = log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.log"
    text = (
        f"mlinfn-compress {__version__} internal error, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f"command: {shlex.join(argv)}\n"
        f"working directory: {os.getcwd()}\n"
        f"python: {sys.version.split()[0]}\n\n"
        f"{traceback.format_exc()}"
    )
    path.write_text(text)
    return path


if __name__ == "__main__":
    sys.exit(main())
