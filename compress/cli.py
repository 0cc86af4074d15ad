"""The mlinfn-compress command line.

Imports stay light here: TensorFlow and friends load only when a model is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UserError

EPILOG = """\
other commands:
  mlinfn-compress verify OUTDIR   re-run the verification of the design in OUTDIR as it stands on disk

exit codes: 0 verified bit-exact; 1 verification found mismatches; 2 bad input or unsupported model.
"""


def _type(text: str) -> object:
    from .fixed import FixedType, FixedTypeError

    try:
        return FixedType.parse(text, rounding="RND_CONV", overflow="SAT")
    except FixedTypeError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlinfn-compress",
        description="Compress a trained network and emit firmware that is verified bit for bit in simulation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, help="Keras/QKeras model: .h5, .keras, or architecture .json (+ --weights)")
    p.add_argument("--target", choices=("vhdl", "hls", "both"), default="vhdl", help="what to emit (default: vhdl)")
    p.add_argument(
        "--hls-backend",
        default="Vitis",
        help="hls4ml backend for --target hls/both: Vitis (default), Vivado, Quartus, oneAPI",
    )
    p.add_argument("-o", "--outdir", type=Path, help="output folder (default: <model name>_out)")
    p.add_argument("--force", action="store_true", help="replace an existing, non-empty output folder")
    p.add_argument("--weights", type=Path, help="weights HDF5 for an architecture .json")
    p.add_argument("--model-class", help="FILE.py:ClassName of a PyTorch/Brevitas state_dict checkpoint")
    p.add_argument("--model-args", help="JSON object of keyword arguments for --model-class")
    p.add_argument("--prune", type=float, default=0.0, help="fraction of weights to remove by magnitude, 0 <= S < 1")
    p.add_argument("--prune-scope", choices=("layer", "global"), default="layer", help="per layer (default) or global")
    p.add_argument(
        "--data", type=Path, help=".npz with x_train, y_train, x_test, y_test: fine-tune and measure accuracy"
    )
    p.add_argument("--qat", action="store_true", help="quantisation-aware fine-tuning (needs --data)")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (default 10)")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the framework twin runs (default auto)"
    )
    p.add_argument("--bits", type=int, help="post-training bits for weights and activations")
    p.add_argument("--weight-bits", type=int, help="post-training weight bits (default 8)")
    p.add_argument("--act-bits", type=int, help="post-training activation bits (default 16)")
    p.add_argument(
        "--input-type",
        type=_type,
        default=None,
        help="fixed-point format of the inputs (default fixed<16,6,RND_CONV,SAT>)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        help=".npy array (samples, features): sets activation ranges and the verification inputs",
    )
    p.add_argument("--simulate", type=int, default=1000, help="samples simulated in GHDL (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")
    p.add_argument(
        "--synth",
        action="store_true",
        help="also estimate the VHDL design's resources (ghdl --synth + yosys synth_xilinx; minutes for large models)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--version", action="version", version=f"mlinfn-compress {__version__}")
    return p


def build_verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlinfn-compress verify",
        description="Re-run the verification of the design in OUTDIR as it stands on disk.",
    )
    p.add_argument("outdir", type=Path)
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    try:
        if args_in and args_in[0] == "verify":
            vargs = build_verify_parser().parse_args(args_in[1:])
            from .pipeline import verify_outdir

            return verify_outdir(vargs.outdir, vargs.quiet)
        args = build_parser().parse_args(args_in)
        from .compression import CompressOptions
        from .pipeline import RunOptions
        from .quantise import DEFAULT_INPUT_TYPE, QuantConfig

        quant = QuantConfig(
            weight_bits=args.weight_bits or args.bits or 8,
            act_bits=args.act_bits or args.bits or 16,
            input_type=args.input_type or _type(DEFAULT_INPUT_TYPE),
        )
        outdir = args.outdir or Path(f"{args.model.stem}_out")
        model_args = None
        if args.model_args is not None:
            try:
                model_args = json.loads(args.model_args)
            except json.JSONDecodeError as e:
                raise UserError(f"--model-args is not valid JSON ({e})") from e
            if not isinstance(model_args, dict):
                raise UserError("--model-args must be a JSON object, e.g. '{\"hidden\": 32}'")
        opts = RunOptions(
            model=args.model,
            outdir=outdir,
            target=args.target,
            hls_backend=args.hls_backend,
            weights=args.weights,
            model_class=args.model_class,
            model_args=model_args,
            force=args.force,
            compression=CompressOptions(args.prune, args.prune_scope, args.qat, args.epochs),
            data=args.data,
            device=args.device,
            quant=quant,
            calibration=args.calibration,
            simulate=args.simulate,
            seed=args.seed,
            synth=args.synth,
            quiet=args.quiet,
        )
        from .pipeline import compress

        return compress(opts)
    except UserError as e:
        print(f"mlinfn-compress: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("mlinfn-compress: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
