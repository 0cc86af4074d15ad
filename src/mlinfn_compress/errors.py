"""Errors that reach the user as a message and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unsupported model: exit code 2, nothing written."""

    exit_code = 2


class UnsupportedLayer(UserError):
    """A layer the toolkit cannot translate."""


class ToolError(UserError):
    """An external program (GHDL, cocotb, yosys, nextpnr, Icarus Verilog, g++) is missing or failed to run:
    exit code 4, nothing written; the message names the tool and what to do."""

    exit_code = 4


class ToolMissing(ToolError):
    """A program the run needs is not installed."""


class ToolFailed(ToolError):
    """A program ran and failed; ``output`` holds everything it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output
