"""A small SPI host interface that steps a core one cycle per transaction (``qarch fpga``).

The host (a microcontroller, or an FTDI in MPSSE mode) drives ``sclk``, ``copi`` and ``cs_n``
(SPI mode 0, LSB of a frame first); the FPGA answers on ``cipo``. One transaction = one core
cycle:

1. ``cs_n`` falls: the core's current outputs (every ``Out`` port, in signature order, first
   port in the least significant bits) are latched into the output frame.
2. While ``cs_n`` is low, each rising ``sclk`` edge shifts ``copi`` into the input frame, and
   the output frame moves one bit toward ``cipo`` about three FPGA cycles later (the host
   samples ``cipo`` at the rising edge, SPI mode 0; the first bit is there once ``cs_n`` has
   been low for three FPGA cycles). A host that sends more bits than the input frame holds
   keeps the last ones, so it can clock ``max(in, out)`` bits with zeros first.
3. ``cs_n`` rises: the last ``len(input frame)`` bits become the core's inputs (every ``In``
   port, in signature order, first port in the least significant bits) and the core runs
   exactly one clock cycle (its clock enable is high for one cycle).

The core is frozen between transactions, so the host can replay any cycle schedule of the
testbenches, at any SPI speed, and read every output the core produces. SPI pins are sampled
through two-flop synchronizers: ``sclk`` must stay at or below an eighth of the FPGA clock
(1.5 MHz on the iCEBreaker's 12 MHz).
"""

from __future__ import annotations

from amaranth import Cat, EnableInserter, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SpiStepHost", "frame_ports", "frame_layout"]


def frame_layout(core: wiring.Component) -> tuple[dict, dict]:
    """({input name: (offset, width)}, {output name: (offset, width)}) of the frames, names
    joined with '.', first port at offset 0."""
    layout: tuple[dict, dict] = ({}, {})
    pos = [0, 0]
    for path, member in core.signature.members.flatten():
        i = 0 if member.flow == In else 1
        width = Value.cast(_port(core, path)).shape().width
        layout[i][".".join(str(p) for p in path)] = (pos[i], width)
        pos[i] += width
    return layout


def _port(core, path):
    port = core
    for p in path:
        port = getattr(port, p) if isinstance(p, str) else port[p]
    return port


def frame_ports(core: wiring.Component) -> tuple[list[Value], list[Value]]:
    """(input ports, output ports) of ``core`` in signature order, as Values."""
    ins, outs = [], []
    for path, member in core.signature.members.flatten():
        (ins if member.flow == In else outs).append(Value.cast(_port(core, path)))
    return ins, outs


class SpiStepHost(wiring.Component):
    """``core`` (a ``wiring.Component`` in the sync domain) behind ``sclk`` / ``copi`` /
    ``cipo`` / ``cs_n``. ``in_bits`` / ``out_bits``: the frame lengths; ``latency``: the SPI
    synchronizer delay in FPGA clock cycles (2)."""

    latency = 2

    def __init__(self, core: wiring.Component) -> None:
        if not isinstance(core, wiring.Component):
            raise TypeError(f"core must be a wiring.Component, not {type(core).__name__}")
        self.core = core
        ins, outs = frame_ports(core)
        self.in_bits = sum(len(p) for p in ins)
        self.out_bits = sum(len(p) for p in outs)
        if not self.in_bits or not self.out_bits:
            raise ValueError("the core needs at least one input and one output port")
        super().__init__({"sclk": In(1), "copi": In(1), "cs_n": In(1, init=1), "cipo": Out(1)})

    def elaborate(self, platform):
        m = Module()
        step = Signal()
        m.submodules.core = EnableInserter(step)(self.core)
        ins, outs = frame_ports(self.core)

        # two-flop synchronizers, and the previous synchronized level for edge detection
        sclk = Signal(3)
        cs_n = Signal(3, init=0b111)
        copi = Signal(2)
        m.d.sync += [
            sclk.eq(Cat(self.sclk, sclk[:2])),
            cs_n.eq(Cat(self.cs_n, cs_n[:2])),
            copi.eq(Cat(self.copi, copi[0])),
        ]
        sclk_rise = sclk[1] & ~sclk[2]
        cs_fall, cs_rise = ~cs_n[1] & cs_n[2], cs_n[1] & ~cs_n[2]

        shift_in = Signal(self.in_bits)
        frame = Signal(self.in_bits)
        shift_out = Signal(self.out_bits)
        m.d.comb += self.cipo.eq(shift_out[0])
        pos = 0
        for p in ins:  # the core sees the committed frame; it only matters while step is high
            m.d.comb += p.eq(frame[pos : pos + len(p)])
            pos += len(p)
        m.d.sync += step.eq(0)
        with m.If(cs_fall):
            m.d.sync += shift_out.eq(Cat(*outs))
        with m.Elif(~cs_n[1] & sclk_rise):
            # LSB first: after in_bits edges the first bit sent sits in shift_in[0]
            m.d.sync += [
                shift_in.eq(Cat(shift_in[1:], copi[1])),
                shift_out.eq(shift_out >> 1),
            ]
        with m.Elif(cs_rise):
            m.d.sync += [frame.eq(shift_in), step.eq(1)]
        return m
