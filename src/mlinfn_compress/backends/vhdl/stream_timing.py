"""The clock-by-clock model of the streaming design's handshakes: the latency and interval it states.

Every unit's control is modelled as the VHDL templates write it (data is
left out: the golden model has it).  Each clock: the valid of every link
from registers, then every ready, then the transfers (valid and ready) and
the registers' next values.  Images are offered back to back (in_valid held
high) and out_ready is held high, as the textio bench does; the bench
measures the same two figures and verification checks that they agree.

* latency: clock edges from the first one that offers an image's first
  pixel to the one that takes its last output word, on an idle design
  (the dataflow architecture's latency counts the same way);
* initiation interval: edges between the last output words of consecutive
  images, once the pipeline repeats itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlinfn_compress.backends.vhdl.stream_plan import Collect, Fifo, Fork, Plan, Scan, Unit, Wire, pixels
from mlinfn_compress.compress.ir import Graph

MAX_IMAGES = 16
FIFO_SLACK = 1  # entries beyond what a join's FIFO was seen to hold
UNBOUNDED = 1 << 40


@dataclass
class Timing:
    latency: int
    initiation_interval: int
    steady_from: int  # images from which every interval equals the initiation interval
    last_words: list[int]  # edge that takes each modelled image's last output word


class _Model:
    """A unit's control; links are indices into the cycle's ``valid`` and ``ready`` lists."""

    def __init__(self, unit: Unit, index: dict[str, int]) -> None:
        self.unit = unit
        self.ins = [index[link] for link in unit.inputs]
        self.outs = [index[link] for link in unit.outputs]
        self.i, self.o = self.ins[0], self.outs[0]
        self.reset()

    def reset(self) -> None:
        pass

    def valids(self, valid: list[bool]) -> None:
        raise NotImplementedError

    def readies(self, valid: list[bool], ready: list[bool]) -> None:
        raise NotImplementedError

    def update(self, valid: list[bool], ready: list[bool]) -> bool:
        """Take the clock edge; whether any register changed."""
        raise NotImplementedError


class _Scan(_Model):
    unit: Scan

    def reset(self) -> None:
        take, emit = self.unit.flags()
        self.take, self.emit = take.tolist(), emit.tolist()
        self.steps = len(self.take)
        self.depth = self.unit.depth
        self.step = self.occ = self.count = 0
        self.pipe = [False] * (self.unit.latency + 1)

    def valids(self, valid: list[bool]) -> None:
        valid[self.o] = self.count > 0

    def readies(self, valid: list[bool], ready: list[bool]) -> None:
        ok = self.take[self.step] and (not self.emit[self.step] or self.occ < self.depth)
        if len(self.ins) == 1:
            ready[self.i] = ok
            return
        for k, link in enumerate(self.ins):
            ready[link] = ok and all(valid[o] for i, o in enumerate(self.ins) if i != k)

    def update(self, valid: list[bool], ready: list[bool]) -> bool:
        step = self.step
        take, emit = self.take[step], self.emit[step]
        inputs = valid[self.i] if len(self.ins) == 1 else all(valid[i] for i in self.ins)
        go = (not take or inputs) and (not emit or self.occ < self.depth)
        read = self.count > 0 and ready[self.o]
        issue = go and emit
        pipe = self.pipe
        moved = go or read or any(pipe)
        self.count += pipe[-1] - read
        self.occ += issue - read
        pipe.pop()
        pipe.insert(0, issue)
        if go:
            self.step = step + 1 if step + 1 < self.steps else 0
        return moved


class _Collect(_Model):
    unit: Collect

    def reset(self) -> None:
        self.k_in = self.k_out = 0
        self.full = False
        self.last_in = self.unit.words_in - 1
        self.last_out = 0 if self.unit.reduce else self.unit.words_out - 1

    def valids(self, valid: list[bool]) -> None:
        valid[self.o] = self.full

    def readies(self, valid: list[bool], ready: list[bool]) -> None:
        ready[self.i] = self.k_in < self.last_in or not self.full

    def update(self, valid: list[bool], ready: list[bool]) -> bool:
        take = valid[self.i] and (self.k_in < self.last_in or not self.full)
        read = self.full and ready[self.o]
        if read:
            if self.k_out == self.last_out:
                self.k_out, self.full = 0, False
            else:
                self.k_out += 1
        if take:
            if self.k_in == self.last_in:
                self.k_in, self.full = 0, True
            else:
                self.k_in += 1
        return take or read


class _Fifo(_Model):
    unit: Fifo

    def reset(self) -> None:
        self.count = self.most = 0

    def valids(self, valid: list[bool]) -> None:
        valid[self.o] = self.count > 0

    def readies(self, valid: list[bool], ready: list[bool]) -> None:
        ready[self.i] = self.count < self.unit.entries

    def update(self, valid: list[bool], ready: list[bool]) -> bool:
        take = valid[self.i] and self.count < self.unit.entries
        read = self.count > 0 and ready[self.o]
        self.count += take - read
        if self.count > self.most:
            self.most = self.count
        return take or read


class _Fork(_Model):
    unit: Fork

    def reset(self) -> None:
        self.done = [False] * len(self.outs)

    def valids(self, valid: list[bool]) -> None:
        v = valid[self.i]
        for out, d in zip(self.outs, self.done, strict=True):
            valid[out] = v and not d

    def readies(self, valid: list[bool], ready: list[bool]) -> None:
        ready[self.i] = all(d or ready[o] for o, d in zip(self.outs, self.done, strict=True))

    def update(self, valid: list[bool], ready: list[bool]) -> bool:
        before = self.done
        if valid[self.i] and ready[self.i]:
            self.done = [False] * len(self.done)
            return True
        self.done = [d or (valid[o] and ready[o]) for o, d in zip(self.outs, self.done, strict=True)]
        return self.done != before


class _Wire(_Model):
    unit: Wire

    def valids(self, valid: list[bool]) -> None:
        valid[self.o] = valid[self.i]

    def readies(self, valid: list[bool], ready: list[bool]) -> None:
        ready[self.i] = ready[self.o]

    def update(self, valid: list[bool], ready: list[bool]) -> bool:
        return False


_MODELS: dict[type[Unit], type[_Model]] = {Scan: _Scan, Collect: _Collect, Fifo: _Fifo, Fork: _Fork, Wire: _Wire}


class Deadlock(RuntimeError):
    """The modelled design stopped moving before every image came out."""


def run(plan: Plan, words_in: int, words_out: int, images: int) -> tuple[list[int], dict[str, int]]:
    """Edges that take the last output word of each of ``images`` images fed back to back, and
    the most pixels each FIFO held."""
    index = {link: k for k, link in enumerate(plan.links)}
    models = [_MODELS[type(u)](u, index) for u in plan.units]
    backwards = models[::-1]
    valid = [False] * len(index)
    ready = [False] * len(index)
    source, sink = index[plan.input_link], index[plan.output_link]
    fed = taken = 0
    last: list[int] = []
    edge = 0
    total_in = images * words_in
    while len(last) < images:
        valid[source] = fed < total_in
        for m in models:
            m.valids(valid)
        ready[sink] = True
        for m in backwards:
            m.readies(valid, ready)
        moved = False
        if valid[source] and ready[source]:
            fed += 1
            moved = True
        if valid[sink]:
            taken += 1
            moved = True
            if taken % words_out == 0:
                last.append(edge)
        for m in models:
            moved = m.update(valid, ready) or moved
        if not moved:  # nothing changed: the next clock is this one again, forever
            raise Deadlock(f"the design stops after {fed} input and {taken} output words")
        edge += 1
    return last, {m.unit.name: m.most for m in models if isinstance(m, _Fifo)}


def size_fifos(plan: Plan, graph: Graph) -> None:
    """Give every join's FIFO the entries it needs to keep its branch at full speed (what it holds
    when every FIFO is unbounded), at least its deadlock bound; drop those a branch does not need."""
    fifos = [u for u in plan.units if isinstance(u, Fifo)]
    if not fifos:
        return
    for f in fifos:
        f.entries = UNBOUNDED
    words_in = pixels(graph.input_shape)[0]
    words_out = pixels(graph.output.shape)[0]
    _, most = run(plan, words_in, words_out, 4)
    for f in fifos:
        if f.need == 0 and most[f.name] <= 1:
            plan.drop(f)
        else:
            f.entries = max(f.need, most[f.name]) + FIFO_SLACK


def timing(plan: Plan, graph: Graph) -> Timing:
    """Latency and initiation interval of the planned design (every core's latency must be set)."""
    words_in = pixels(graph.input_shape)[0]
    words_out = pixels(graph.output.shape)[0]
    n = 4
    while True:
        last, _ = run(plan, words_in, words_out, n)
        gaps = [b - a for a, b in zip(last, last[1:], strict=False)]
        if gaps[-1] == gaps[-2] == gaps[-3] or n >= MAX_IMAGES:
            break
        n *= 2
    ii = gaps[-1]
    steady = len(gaps)
    while steady > 0 and gaps[steady - 1] == ii:
        steady -= 1
    return Timing(latency=last[0], initiation_interval=ii, steady_from=steady + 2, last_words=last)
