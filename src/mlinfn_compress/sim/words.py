"""Flat port words of the generated designs: values packed at ``width`` bits each, element 0 lowest."""

from __future__ import annotations

import os

import numpy as np


def protocol_data() -> dict[str, np.ndarray]:
    """The vectors and facts a cocotb protocol test reads (the file named by MLINFN_PROTOCOL_DATA)."""
    with np.load(os.environ["MLINFN_PROTOCOL_DATA"]) as f:
        return {k: f[k] for k in f.files}


def pack(values: np.ndarray, width: int) -> int:
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(int(x) for x in values):
        word |= (v & mask) << (i * width)
    return word


def unpack(word: int, n: int, width: int, signed: bool) -> list[int]:
    mask = (1 << width) - 1
    out = []
    for i in range(n):
        v = (word >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out
