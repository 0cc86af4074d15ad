"""VHDL backend: the quantised IR rendered from Jinja2 templates (vhdl_templates/)."""

from .dataflow import render
from .design import RESERVED, VHDL_INT_MAX, VhdlDesign, vhdl_name

__all__ = ["RESERVED", "VHDL_INT_MAX", "VhdlDesign", "render", "vhdl_name"]
