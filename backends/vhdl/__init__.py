"""VHDL backend: the quantised IR rendered from Jinja2 templates (vhdl_templates/)."""

from .dataflow import render
from .design import ARITHMETIC, DEFAULT_CLOCK_NS, RESERVED, VHDL_INT_MAX, ArithOptions, VhdlDesign, vhdl_name

__all__ = [
    "ARITHMETIC",
    "DEFAULT_CLOCK_NS",
    "RESERVED",
    "VHDL_INT_MAX",
    "ArithOptions",
    "VhdlDesign",
    "render",
    "vhdl_name",
]
