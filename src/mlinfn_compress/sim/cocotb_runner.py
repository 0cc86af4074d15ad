"""Run the cocotb protocol tests on a generated design in GHDL."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlinfn_compress.errors import ToolFailed
from mlinfn_compress.sim import tools
from mlinfn_compress.sim.ghdl import STD, Backend, as_ghdl, sim_backend


@dataclass
class ProtocolResult:
    tests: int
    failed: int
    samples: int
    log: Path
    backend: str = "mcode"  # the GHDL backend cocotb ran


def run_protocol_tests(
    sources: list[Path],
    top: str,
    inputs: np.ndarray,
    logits: np.ndarray,
    argmax: np.ndarray | None,
    meta: tuple[int, ...],
    build_dir: Path,
    module: str = "protocol_test",
) -> ProtocolResult:
    """Build ``top`` with cocotb's GHDL runner and run the protocol tests of ``module`` (in this package).

    ``meta`` holds the interface facts that module reads: for ``protocol_test``
    (input width, output width, outputs signed, latency); for ``stream_protocol_test``
    (input width, values per input word, input words per sample, output width, values per
    output word, output words per sample, outputs signed, latency, interval, steady from).
    """
    from cocotb_tools.runner import get_results, get_runner

    build_dir = build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    data = build_dir / "protocol_vectors.npz"
    # values wider than 64 bits (Python integers) travel as text
    arrays = {
        "inputs": np.asarray(inputs).astype(str) if np.asarray(inputs).dtype == object else inputs,
        "logits": np.asarray(logits).astype(str) if np.asarray(logits).dtype == object else logits,
        "meta": np.array([int(v) for v in meta]),
    }
    if argmax is not None:
        arrays["argmax"] = argmax
    np.savez(data, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as its allow_pickle keyword
    backend = sim_backend()
    with as_ghdl(backend):  # cocotb's runner calls `ghdl` by name: make it the backend chosen here
        runner = get_runner("ghdl")
        runner.log.setLevel(logging.WARNING)  # it logs every command it runs
        log = build_dir / "cocotb.log"
        build_log = build_dir / "build.log"
        try:
            runner.build(
                sources=[str(s.resolve()) for s in sources],
                hdl_toplevel=top,
                build_args=[STD],
                build_dir=str(build_dir),
                always=True,
                log_file=str(build_log),
            )
        except (RuntimeError, SystemExit) as e:
            raise _failed("cocotb's GHDL build", backend, build_log, e) from e
        env = {"MLINFN_PROTOCOL_DATA": str(data), "COCOTB_ANSI_OUTPUT": "0"}
        pythonpath = os.environ.get("PYTHONPATH")
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        # GHDL looks for the analysed library in the directory it runs in.  The
        # runner exits the process on failures when it thinks it runs under
        # pytest: hide that, so that failures come back as results.
        saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            results = runner.test(
                test_module=f"mlinfn_compress.sim.{module}",
                hdl_toplevel=top,
                test_args=[STD],
                plusargs=["--ieee-asserts=disable-at-0"],  # GHDL run-time option, after the unit
                extra_env=env,
                build_dir=str(build_dir),
                test_dir=str(build_dir),
                results_xml=str(build_dir / "results.xml"),
                log_file=str(log),
            )
        except (RuntimeError, SystemExit) as e:
            raise _failed("cocotb's GHDL simulation", backend, log, e) from e
        finally:
            if saved is not None:
                os.environ["PYTEST_CURRENT_TEST"] = saved
    tests, failed = get_results(results)
    return ProtocolResult(tests=tests, failed=failed, samples=len(inputs), log=log, backend=backend.name)


def _failed(what: str, backend: Backend, log: Path, e: BaseException) -> ToolFailed:
    """The ToolFailed of a cocotb step: GHDL's own first error line from the step's log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    code = str(e.code) if isinstance(e, SystemExit) else str(e)
    return tools.failure(what, [backend.program, "(run by cocotb_tools.runner)"], code, text or str(e))
