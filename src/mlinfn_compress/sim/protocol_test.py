"""cocotb tests of the generated design's protocol: valid, latency, reset.

Run by :mod:`mlinfn_compress.sim.cocotb_runner` inside GHDL.  The vectors and
the expected outputs come from the file named by MLINFN_PROTOCOL_DATA.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from mlinfn_compress.sim.words import pack, protocol_data, unpack

PERIOD_NS = 10


class Bench:
    def __init__(self, dut: object) -> None:
        self.dut = dut
        d = protocol_data()
        self.x = d["inputs"]
        self.logits = d["logits"]
        self.argmax = d["argmax"] if "argmax" in d else None
        meta = d["meta"]
        self.w_in, self.w_out, self.out_signed, self.latency = (int(v) for v in meta)
        self.seen: list[tuple[int, list[int], int | None]] = []  # (edge, outputs, argmax)

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
        cocotb.start_soon(self.monitor())
        dut.in_valid.value = 0
        dut.in_data.value = 0
        await self.reset(2)

    async def reset(self, cycles: int) -> None:
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def monitor(self) -> None:
        dut = self.dut
        n_out = self.logits.shape[1]
        while True:
            await RisingEdge(dut.clk)
            edge = self.now()
            await ReadOnly()
            if dut.out_valid.value == 1:
                word = dut.out_data.value.to_unsigned()
                idx = dut.out_argmax.value.to_unsigned() if self.argmax is not None else None
                self.seen.append((edge, unpack(word, n_out, self.w_out, self.out_signed), idx))

    def now(self) -> int:
        """The current clock edge, counted in clock periods."""
        return round(get_sim_time(unit="ns")) // PERIOD_NS

    async def drive(self, k: int) -> int:
        """Present sample k for one cycle; return the clock edge that takes it in."""
        self.dut.in_data.value = pack(self.x[k], self.w_in)
        self.dut.in_valid.value = 1
        await RisingEdge(self.dut.clk)
        taken = self.now()
        self.dut.in_valid.value = 0
        return taken

    def check(self, expected: list[tuple[int, int]]) -> None:
        """Outputs seen must be exactly the samples ``(k, taken_edge)``, in order, at the latency.

        Latency L means: the edge that takes an input in is the first of L
        register stages, so its output is registered L - 1 edges later.
        """
        assert len(self.seen) == len(expected), f"{len(self.seen)} outputs for {len(expected)} inputs"
        for (edge, out, idx), (k, taken) in zip(self.seen, expected, strict=True):
            assert out == [int(v) for v in self.logits[k]], f"sample {k}: {out} != {list(self.logits[k])}"
            if self.argmax is not None:
                assert idx == int(self.argmax[k]), f"sample {k}: arg-max {idx} != {self.argmax[k]}"
            latency = edge - taken + 1
            assert latency == self.latency, f"sample {k}: latency {latency} != {self.latency}"


@cocotb.test()
async def stream_with_bubbles(dut: object) -> None:
    """Samples with random gaps in in_valid come out in order, each after the fixed latency."""
    tb = Bench(dut)
    await tb.start()
    rng = random.Random(1)
    expected = []
    for k in range(len(tb.x)):
        while rng.random() < 0.3:
            await RisingEdge(dut.clk)
        expected.append((k, await tb.drive(k)))
    for _ in range(tb.latency + 3):
        await RisingEdge(dut.clk)
    tb.check(expected)


@cocotb.test()
async def back_to_back_and_reset(dut: object) -> None:
    """One sample per clock (II = 1); a reset drops what is in flight and the design restarts cleanly."""
    tb = Bench(dut)
    await tb.start()
    n = min(len(tb.x), 20)
    expected = [(k, await tb.drive(k)) for k in range(n)]
    for _ in range(tb.latency + 3):
        await RisingEdge(dut.clk)
    tb.check(expected)
    tb.seen.clear()
    for k in range(3):  # in flight when reset comes
        last = await tb.drive(k)
    await tb.reset(2)  # takes effect at the edge after the last input
    for _ in range(tb.latency + 3):
        await RisingEdge(dut.clk)
    late = [edge for edge, _, _ in tb.seen if edge > last]
    assert late == [], f"outputs appeared during or after reset at edges {late}"
    tb.seen.clear()
    expected = [(k, await tb.drive(k)) for k in range(3, min(len(tb.x), 8))]
    for _ in range(tb.latency + 3):
        await RisingEdge(dut.clk)
    tb.check(expected)
