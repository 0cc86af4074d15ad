"""cocotb tests of the streaming design's protocol: back-pressure, gaps, latency, interval, reset.

Run by :mod:`mlinfn_compress.sim.cocotb_runner` inside GHDL.  The images, the
expected outputs and the interface facts come from the file named by
MLINFN_PROTOCOL_DATA.  One coroutine drives both sides: after each clock edge
it sets in_valid, in_data and out_ready, then reads in_ready, out_valid and
out_data once everything has settled, which says exactly which words move at
the next edge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from mlinfn_compress.sim.words import pack, protocol_data, unpack

PERIOD_NS = 10


@dataclass
class Run:
    """What one stretch of clocks moved: output words, arg-max with each, and the edges."""

    words: list[list[int]] = field(default_factory=list)
    argmax: list[int] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)  # edge of each output word
    first_offer: int = -1  # edge that first offered the first input word
    fed: int = 0  # input words taken


class Stream:
    def __init__(self, dut: object) -> None:
        self.dut = dut
        d = protocol_data()
        m = [int(v) for v in d["meta"]]
        self.w_in, self.n_in, self.in_words, self.w_out, self.n_out, self.out_words = m[:6]
        self.out_signed, self.latency, self.interval, self.steady_from = bool(m[6]), m[7], m[8], m[9]
        self.x = d["inputs"].reshape(len(d["inputs"]), self.in_words, self.n_in)
        self.y = d["logits"].reshape(len(d["logits"]), self.out_words, self.n_out)
        self.argmax = d.get("argmax")
        self.edge = 0

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
        dut.in_valid.value = 0
        dut.in_data.value = 0
        dut.out_ready.value = 0
        await self.reset(2)

    async def reset(self, cycles: int) -> None:
        self.dut.rst.value = 1
        self.dut.in_valid.value = 0
        for _ in range(cycles):
            await self.clock()
        self.dut.rst.value = 0

    async def clock(self) -> None:
        await RisingEdge(self.dut.clk)
        self.edge += 1

    async def run(
        self, images: list[int], rng: random.Random, gaps: float, stalls: float, cycles: int, words: int | None = None
    ) -> Run:
        """Offer the words of ``images`` (the first ``words`` of them), a gap before a word with
        probability ``gaps``, out_ready low with probability ``stalls``; stop after ``cycles`` clocks
        or when every expected output word came."""
        dut = self.dut
        queue = [w for k in images for w in self.x[k]]
        if words is not None:
            queue = queue[:words]
        expected = len(images) * self.out_words if words is None else None
        run = Run()
        offering = False
        for _ in range(cycles):
            if not offering and run.fed < len(queue) and rng.random() >= gaps:
                dut.in_data.value = pack(queue[run.fed], self.w_in)
                offering = True
            dut.in_valid.value = int(offering)
            ready = int(rng.random() >= stalls)
            dut.out_ready.value = ready
            await ReadOnly()
            edge = self.edge + 1  # the edge these values meet
            if offering and run.fed == 0 and run.first_offer < 0:
                run.first_offer = edge
            if offering and dut.in_ready.value == 1:
                run.fed += 1
                offering = False
            if ready and dut.out_valid.value == 1:
                run.words.append(unpack(dut.out_data.value.to_unsigned(), self.n_out, self.w_out, self.out_signed))
                run.taken.append(edge)
                if self.argmax is not None:
                    run.argmax.append(dut.out_argmax.value.to_unsigned())
            await self.clock()
            if expected is not None and len(run.words) >= expected:
                break
            if words is not None and run.fed >= len(queue) and queue:
                break
        dut.in_valid.value = 0
        dut.out_ready.value = 0
        return run

    def check(self, run: Run, images: list[int]) -> None:
        """Every output word of ``images``, in order, none lost, doubled or added."""
        want = [list(map(int, w)) for k in images for w in self.y[k]]
        assert len(run.words) == len(want), f"{len(run.words)} output words, expected {len(want)}"
        for i, (got, exp) in enumerate(zip(run.words, want, strict=True)):
            assert got == exp, f"output word {i} (image {images[i // self.out_words]}): {got} != {exp}"
        if self.argmax is not None:
            ends = run.argmax[self.out_words - 1 :: self.out_words]
            assert ends == [int(self.argmax[k]) for k in images], f"arg-max {ends}"

    def budget(self, images: int) -> int:
        return 4 * (self.latency + images * max(self.interval, self.in_words, self.out_words)) + 200


@cocotb.test()
async def back_to_back_latency_and_interval(dut: object) -> None:
    """Images back to back, out_ready high: the latency and interval the design states."""
    s = Stream(dut)
    await s.start()
    images = list(range(min(len(s.x), max(3, s.steady_from))))
    run = await s.run(images, random.Random(0), 0.0, 0.0, s.budget(len(images)))
    s.check(run, images)
    last = run.taken[s.out_words - 1 :: s.out_words]
    assert last[0] - run.first_offer == s.latency, f"latency {last[0] - run.first_offer} != {s.latency}"
    if len(images) >= s.steady_from and len(last) > 1:
        assert last[-1] - last[-2] == s.interval, f"interval {last[-1] - last[-2]} != {s.interval}"


@cocotb.test()
async def gaps_and_back_pressure(dut: object) -> None:
    """in_valid with random gaps, out_ready held low at random: every word comes out, in order."""
    s = Stream(dut)
    await s.start()
    images = list(range(len(s.x)))
    run = await s.run(images, random.Random(1), 0.3, 0.4, 3 * s.budget(len(images)))
    s.check(run, images)


@cocotb.test()
async def reset_mid_image(dut: object) -> None:
    """A reset in the middle of an image drops it; the design then streams new images correctly."""
    s = Stream(dut)
    await s.start()
    half = max(1, (s.in_words + 1) // 2)
    rng = random.Random(2)
    partial = await s.run([0, 1 % len(s.x)], rng, 0.2, 0.5, s.budget(1), words=s.in_words + half)
    await s.reset(2)
    quiet = await s.run([], rng, 0.0, 0.0, s.latency + s.interval + 10, words=0)
    assert quiet.words == [], f"{len(quiet.words)} output word(s) after the reset, none offered"
    images = [k % len(s.x) for k in (1, 0)]
    run = await s.run(images, rng, 0.3, 0.4, 3 * s.budget(len(images)))
    s.check(run, images)
    assert partial.fed > 0
