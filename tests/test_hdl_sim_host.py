"""The SPI step host of `qarch fpga` (hdl/host.py) in Amaranth's simulator, driven by the host
driver (qarch/driver.py): a GEMM replayed one transaction per core cycle through the complete
FPGA top gives the golden outputs, read back over SPI."""

import pytest

from hdl.host import SpiStepHost
from qarch.configs import IntArrayConfig


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


def test_board_links_check_the_spi_clock_before_opening_anything():
    from qarch.driver import FtdiLink, SpidevLink

    for link in (SpidevLink, FtdiLink):
        with pytest.raises(ValueError, match=r"hz must be in 1\.\.1500000 .*not 12000000"):
            link(hz=12_000_000)
