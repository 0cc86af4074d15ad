"""The delay model behind ``--clock-period``, one per device family (``--family``).

The pipeline of a linear layer is cut so that every stage's path fits the
clock period by this model (``schedule``).  A path costs the sum of its
nodes' logic levels plus the longest carry chain on it, counted once; every
register costs ``register_ns`` of the period:

* an adder or subtractor: ``adder_ns`` (a LUT and the routing into the carry
  chain) and ``carry4_ns`` per 4 result bits of carry chain;
* a LUT level (``lut_ns``): a tie rounded to even, a multiplexer;
* a DSP product: ``multiplier_ns``.

``xc7`` is an estimate for a Xilinx 7-series part; no open tool routes one,
so it stays an estimate.  ``ecp5`` and ``ice40`` are the xc7 figures scaled
by one factor per family, calibrated on designs routed by nextpnr: the
ratio of the routed critical path to the model's longest stage, on designs
whose critical path lies in a layer's adders (``benchmarks/bench_timing.py
--calibrate``; BENCHMARKS.md, "Timing against the asked clock").  Routing,
not logic, is most of each level on both families, and the critical paths
read term by term (a hop into a LUT, a carry chain's entry and its cells)
gave a model that was optimistic on whole paths, so one factor it is.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FAMILY = "xc7"


@dataclass(frozen=True)
class DelayModel:
    family: str
    register_ns: float  # clock to output, set-up and clock uncertainty
    adder_ns: float
    carry4_ns: float
    lut_ns: float
    multiplier_ns: float
    basis: str  # where the figures come from


XC7 = DelayModel(
    "xc7", 0.6, 0.7, 0.1, 0.4, 3.0, "estimate for a Xilinx 7-series part, not checked against a routed design"
)


def _scaled(family: str, factor: float, basis: str) -> DelayModel:
    """The xc7 figures times ``factor``: routing, not logic, is most of each level on the open families."""
    x = XC7
    return DelayModel(
        family, round(x.register_ns * factor, 3), round(x.adder_ns * factor, 3), round(x.carry4_ns * factor, 3),
        round(x.lut_ns * factor, 3), round(x.multiplier_ns * factor, 3), basis,
    )  # fmt: skip


# routed critical path / (the model's longest stage + a register) on the calibration designs
ECP5_FACTOR = 4.6
ICE40_FACTOR = 8.9
ECP5 = _scaled("ecp5", ECP5_FACTOR, f"xc7 x {ECP5_FACTOR}, calibrated on ECP5 designs routed by nextpnr")
ICE40 = _scaled("ice40", ICE40_FACTOR, f"xc7 x {ICE40_FACTOR}, calibrated on iCE40 designs routed by nextpnr")
MODELS = {"xc7": XC7, "ecp5": ECP5, "ice40": ICE40}
FAMILIES = tuple(MODELS)


def delay_model(family: str) -> DelayModel:
    if family not in MODELS:
        raise ValueError(f"the device family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return MODELS[family]
