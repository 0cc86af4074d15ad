"""VHDL backend: the quantised IR rendered from Jinja2 templates (vhdl_templates/)."""

from .architecture import IO_CHOICES, choose_io, render
from .design import RESERVED, VHDL_INT_MAX, VhdlDesign, vhdl_name

__all__ = ["IO_CHOICES", "RESERVED", "VHDL_INT_MAX", "VhdlDesign", "choose_io", "render", "vhdl_name"]
