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


def test_the_host_driver_runs_a_gemm_through_the_complete_fpga_top():
    """qarch/driver.py frames a GEMM into whole-byte SPI transactions; the simulated FPGA top
    (host included) answers with the golden GEMM, bit for bit."""
    import torch

    from golden.accum import gemm
    from qarch.driver import SimLink, StepDriver

    # narrow on purpose: some sums wrap (the warning, if any, is the config's business)
    cfg = IntArrayConfig(rows=2, cols=2, w_bits=4, a_bits=4, acc_bits=6, out_bits=7)
    g = torch.Generator().manual_seed(7)
    w = torch.randint(-8, 8, (3, 5), generator=g)
    a = torch.randint(-8, 8, (5, 3), generator=g)
    drv = StepDriver(cfg, SimLink(cfg))
    assert drv.bits % 8 == 0 and drv.bits >= max(drv.in_bits, drv.out_bits)
    got = drv.gemm(w, a)
    ref = gemm(w, a, inner_bits=6, tile=2, outer_bits=7)
    want = [(j, ref.y[n0 : n0 + 2, j].tolist()) for n0 in (0, 2) for j in range(3)]
    assert [(addr, y[: len(e)]) for (addr, y), (_, e) in zip(got, want)] == want
    assert len(got) == len(want)
    assert bool((ref.y != ref.exact).any())  # the wrap is exercised


def test_driver_bits_and_bytes():
    from qarch.driver import SimLink, StepDriver, from_bytes, to_bytes

    bits = [1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0]
    assert to_bytes(bits) == b"\x81\x60" and from_bytes(to_bytes(bits)) == bits
    with pytest.raises(ValueError, match="whole bytes, not 3 bits"):
        to_bytes([1, 0, 1])
    cfg = IntArrayConfig(rows=2, cols=2, w_bits=4, a_bits=4, acc_bits=8, out_bits=10)
    drv = StepDriver(cfg, SimLink(cfg))
    frame = drv.frame({"w_load": 1})
    assert len(frame) == drv.bits and frame[-drv.in_bits :][drv.in_ports["w_load"][0]] == 1
    with pytest.raises(ValueError, match="no input port 'w_lod'"):
        drv.frame({"w_lod": 1})
    with pytest.raises(ValueError, match="half must be at least 4"):
        SimLink(cfg, half=2)
