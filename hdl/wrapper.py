"""Registered serial IO wrapper so any core fits an FPGA package for place-and-route.

Synthesis-only harness (not part of an accelerator): every core input comes from one long
shift register fed by the ``din`` pin, every core output is registered and XOR-reduced into the
registered ``dout`` pin. All core logic stays observable, so nothing is optimised away, and the
core's paths are register-to-register, which is what an Fmax figure should measure.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .host import frame_ports

__all__ = ["SerialWrapper"]


class SerialWrapper(wiring.Component):
    """Wrap ``core`` (a ``wiring.Component`` in the sync domain) behind ``din`` / ``dout``."""

    def __init__(self, core: wiring.Component) -> None:
        if not isinstance(core, wiring.Component):
            raise TypeError(f"core must be a wiring.Component, not {type(core).__name__}")
        self.core = core
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
        m.d.sync += [captured.eq(Cat(*outs)), self.dout.eq(captured.xor())]
        return m
