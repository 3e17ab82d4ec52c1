"""Drive Amaranth components in Amaranth's own simulator (fast unit level, no Verilog)."""

from __future__ import annotations

from amaranth import Value
from amaranth.sim import Simulator

from tb.schedule import Cycle, unpack_signed

INPUTS = ("w_load", "w_row", "w_data", "a_valid", "a_data", "a_first", "a_last", "a_addr")


def run_array(
    dut, cycles: list[Cycle], constants: list | None = None, inputs=None, timing: list | None = None
):
    """Apply ``cycles`` (plus a drain) and collect ``(addr, y, ovf_inner, ovf_outer)``.

    ``constants``: (signal, value) pairs held throughout (e.g. ANT type selects). ``timing``,
    if given, receives the cycles from the first schedule cycle to the last valid output.
    """
    got = []
    C, P = dut.cols, dut.out_bits
    if inputs is None:
        inputs = INPUTS + (("a_swap",) if getattr(dut, "double_buffer", False) else ())
        if getattr(dut, "tile", 0) > getattr(dut, "rows", 0):
            inputs += ("a_tfirst", "a_tlast")

    async def bench(ctx):
        for sig, val in constants or []:
            ctx.set(sig, val)
        for i, cyc in enumerate(cycles + [Cycle()] * (dut.latency + 1)):
            for name in inputs:
                ctx.set(Value.cast(getattr(dut, name)), getattr(cyc, name))
            await ctx.tick()
            if ctx.get(dut.y_valid):
                if timing is not None:
                    timing[:] = [i + 2]  # outputs of cycle i + 1, counted from cycle 0
                oi, oo = ctx.get(dut.y_ovf_inner), ctx.get(dut.y_ovf_outer)
                got.append(
                    (
                        ctx.get(dut.y_addr),
                        unpack_signed(ctx.get(Value.cast(dut.y_data)), P, C),
                        [(oi >> c) & 1 for c in range(C)],
                        [(oo >> c) & 1 for c in range(C)],
                    )
                )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got
