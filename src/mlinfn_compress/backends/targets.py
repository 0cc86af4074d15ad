"""Every kind of target by its ``design.json`` key: the table ``verify`` reads designs back with."""

from __future__ import annotations

from mlinfn_compress.backends.base import Target
from mlinfn_compress.backends.hls.target import HlsTarget
from mlinfn_compress.backends.neuralbond.target import NeuralbondTarget
from mlinfn_compress.backends.vhdl.target import VhdlTarget

KINDS: dict[str, type[Target]] = {cls.key: cls for cls in (VhdlTarget, HlsTarget, NeuralbondTarget)}
