"""Registered serial IO wrapper so any core fits an FPGA package for place-and-route.

Synthesis-only harness (not part of an accelerator): every core input comes from one long
shift register fed by the ``din`` pin, every core output is registered and XOR-reduced into the
registered ``dout`` pin. All core logic stays observable, so nothing is optimised away, and the
core's paths are register-to-register, which is what an Fmax figure should measure.
``pipelined``: the XOR reduction as a registered tree of 4-input XORs (one LUT4 per stage),
for cores whose own paths are shorter than a flat XOR of a hundred and more outputs (about
four LUT levels on an iCE40; the pipeline-3 arrays); the other reports keep the flat XOR.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .host import frame_ports

__all__ = ["SerialWrapper"]


class SerialWrapper(wiring.Component):
    """Wrap ``core`` (a ``wiring.Component`` in the sync domain) behind ``din`` / ``dout``."""

    def __init__(self, core: wiring.Component, *, pipelined: bool = False) -> None:
        if not isinstance(core, wiring.Component):
            raise TypeError(f"core must be a wiring.Component, not {type(core).__name__}")
        self.core, self.pipelined = core, pipelined
        super().__init__({"din": In(1), "dout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        ins, outs = frame_ports(core)
        in_bits = sum(len(p) for p in ins)
        shift = Signal(max(in_bits, 1))
        m.d.sync += shift.eq(Cat(self.din, shift[:-1]) if in_bits > 1 else self.din)
        pos = 0
        for p in ins:
            m.d.comb += p.eq(shift[pos : pos + len(p)])
            pos += len(p)
        captured = Signal(sum(len(p) for p in outs))
        m.d.sync += captured.eq(Cat(*outs))
        level, stage = captured, 0
        while self.pipelined and len(level) > 4:
            nxt = Signal((len(level) + 3) // 4, name=f"xor_tree_{stage}")
            m.d.sync += [nxt[i].eq(level[4 * i : 4 * i + 4].xor()) for i in range(len(nxt))]
            level, stage = nxt, stage + 1
        m.d.sync += self.dout.eq(level.xor())
        return m
