"""The SPI step host of `qarch fpga` (hdl/host.py) in Amaranth's simulator: a GEMM schedule
replayed one transaction per core cycle gives the golden outputs, read back over SPI."""

import pytest
from amaranth.sim import Simulator

from hdl.host import SpiStepHost, frame_layout
from qarch.configs import IntArrayConfig
from tb.schedule import gemm_schedule, unpack_signed

HALF = 4  # FPGA clock cycles per SPI half period (sclk <= clk / 8)


def spi_run(core, frames: list[int]) -> list[int]:
    """Send each input frame in one transaction; return the output frame read in each."""
    top = SpiStepHost(core)
    got = []

    async def bench(ctx):
        async def idle(n):
            for _ in range(n):
                await ctx.tick()

        for frame in frames:
            ctx.set(top.cs_n, 0)
            await idle(HALF + top.latency)
            out = 0
            n = max(top.in_bits, top.out_bits)
            pad = n - top.in_bits  # the last in_bits bits sent form the input frame
            for i in range(n):
                ctx.set(top.copi, (frame >> (i - pad)) & 1 if i >= pad else 0)
                await idle(HALF)
                out |= ctx.get(top.cipo) << i  # SPI mode 0: sampled at the rising edge
                ctx.set(top.sclk, 1)
                await idle(HALF)
                ctx.set(top.sclk, 0)
            await idle(HALF)
            ctx.set(top.cs_n, 1)
            await idle(HALF + top.latency + 1)
            got.append(out & ((1 << top.out_bits) - 1))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_gemm_over_spi_matches_golden():
    import torch

    cfg = IntArrayConfig(rows=2, cols=2, w_bits=4, a_bits=4, acc_bits=10, out_bits=12)
    g = torch.Generator().manual_seed(3)
    w = torch.randint(-8, 8, (3, 5), generator=g)
    a = torch.randint(-8, 8, (5, 3), generator=g)
    sched = gemm_schedule(cfg, w, a)
    core = cfg.build()
    ins, outs = frame_layout(core)
    frames = []
    for cyc in sched.cycles + [None] * (core.latency + 2):
        f = 0
        for name, (off, width) in ins.items():
            f |= (getattr(cyc, name) if cyc else 0) % (1 << width) << off
        frames.append(f)
    got = []
    for word in spi_run(cfg.build(), frames)[1:]:  # transaction k reads cycle k - 1's outputs

        def field(name, word=word):
            off, width = outs[name]
            return (word >> off) & ((1 << width) - 1)

        if field("y_valid"):
            got.append((field("y_addr"), unpack_signed(field("y_data"), cfg.out_bits, cfg.cols)))
    want = [(e.addr, e.y) for e in sched.expected]
    assert [(addr, y[: len(e)]) for (addr, y), (_, e) in zip(got, want)] == want
    assert len(got) == len(want)


def test_host_needs_a_component():
    with pytest.raises(TypeError, match="core must be a wiring.Component"):
        SpiStepHost(object())
