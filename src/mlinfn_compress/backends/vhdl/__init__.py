"""VHDL backend: the quantised IR rendered from the Jinja2 templates in ``templates/`` beside it."""

from mlinfn_compress.backends.vhdl.architecture import ARCH_CHOICES, IO_CHOICES, choose_io, render
from mlinfn_compress.backends.vhdl.design import (
    ARITHMETIC,
    DEFAULT_CLOCK_NS,
    RESERVED,
    VHDL_INT_MAX,
    ArithOptions,
    VhdlDesign,
    vhdl_name,
)

__all__ = [
    "ARCH_CHOICES",
    "ARITHMETIC",
    "DEFAULT_CLOCK_NS",
    "IO_CHOICES",
    "RESERVED",
    "VHDL_INT_MAX",
    "ArithOptions",
    "VhdlDesign",
    "choose_io",
    "render",
    "vhdl_name",
]
