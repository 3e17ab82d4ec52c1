"""The host side of `qarch fpga`: drive a design's bitstream over SPI, one core cycle per
transaction (the protocol of hdl/host.py), and read every output back.

:class:`StepDriver` turns cycles (a dict of input port values per core cycle, e.g. the GEMM
schedules of tb/schedule.py) into SPI transactions and the answers into output port values;
:meth:`StepDriver.gemm` runs a whole integer GEMM on an array and returns its outputs, to compare
with the golden model (``golden.accum.gemm``). A *link* moves the bits:

- :class:`SimLink`: the complete FPGA top (synth/fpga.py's ``FpgaTop``, host included) in
  Amaranth's simulator; the tests drive the same transactions a board gets;
- :class:`SpidevLink`: Linux ``spidev`` (e.g. a Raspberry Pi's SPI0 wired to PMOD1A), needs the
  ``spidev`` package;
- :class:`FtdiLink`: an FTDI MPSSE adapter (FT232H / FT2232H) through ``pyftdi``.

Every transaction is a whole number of bytes (what SPI masters send): ``n`` = the larger frame
rounded up to 8 bits, the input frame's bits last (the host keeps the last ``in_bits`` bits it
receives), LSB of the frame first; the first ``out_bits`` bits read back are the output frame
of the previous cycle. Bytes go MSB first on the wire (SPI mode 0, the common default), so the
bit order above is exact whatever the master. Keep ``sclk`` at or below an eighth of the FPGA
clock (1.5 MHz on the iCEBreaker).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hdl.host import SpiStepHost, frame_layout

__all__ = ["Link", "SimLink", "SpidevLink", "FtdiLink", "StepDriver", "to_bytes", "from_bytes"]

MAX_SCLK_HZ = 1_500_000  # an eighth of the iCEBreaker's 12 MHz


def _check_hz(hz: int) -> None:
    """Before any package or device is opened: sclk at most an eighth of the FPGA clock."""
    if not 0 < hz <= MAX_SCLK_HZ:
        raise ValueError(f"hz must be in 1..{MAX_SCLK_HZ} (an eighth of 12 MHz), not {hz}")


def to_bytes(bits: Sequence[int]) -> bytes:
    """A bit sequence (first bit first, length a multiple of 8) as bytes sent MSB first."""
    if len(bits) % 8:
        raise ValueError(f"a transaction is whole bytes, not {len(bits)} bits")
    return bytes(
        sum(b << (7 - i) for i, b in enumerate(bits[k : k + 8])) for k in range(0, len(bits), 8)
    )


def from_bytes(data: bytes) -> list[int]:
    """The inverse of :func:`to_bytes`."""
    return [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]


class Link(Protocol):
    def exchange(self, transactions: list[list[int]]) -> list[list[int]]:
        """Run each transaction (the bits to send, first bit first) with ``cs_n`` low around
        it and return the bits read during it."""
        ...


class SpidevLink:
    """Linux spidev (``/dev/spidevB.C``), SPI mode 0, MSB first."""

    def __init__(self, bus: int = 0, device: int = 0, hz: int = 1_000_000) -> None:
        _check_hz(hz)
        try:
            import spidev
        except ImportError:
            raise RuntimeError("SpidevLink needs the spidev package (pip install spidev)") from None
        self.spi = spidev.SpiDev()
        self.spi.open(bus, device)
        self.spi.mode, self.spi.max_speed_hz, self.spi.lsbfirst = 0, hz, False

    def exchange(self, transactions: list[list[int]]) -> list[list[int]]:
        return [from_bytes(bytes(self.spi.xfer2(list(to_bytes(t))))) for t in transactions]


class FtdiLink:
    """An FTDI MPSSE adapter through pyftdi (``url`` e.g. ``ftdi://ftdi:232h/1``), CS0, mode 0."""

    def __init__(self, url: str = "ftdi://ftdi:232h/1", hz: int = 1_000_000) -> None:
        _check_hz(hz)
        try:
            from pyftdi.spi import SpiController
        except ImportError:
            raise RuntimeError("FtdiLink needs the pyftdi package (pip install pyftdi)") from None
        ctrl = SpiController()
        ctrl.configure(url)
        self.port = ctrl.get_port(cs=0, freq=hz, mode=0)

    def exchange(self, transactions: list[list[int]]) -> list[list[int]]:
        return [from_bytes(self.port.exchange(to_bytes(t), duplex=True)) for t in transactions]


class SimLink:
    """The complete FPGA top of ``cfg`` in Amaranth's simulator, driven pin by pin as a board's
    SPI master would drive it (``half`` FPGA cycles per half ``sclk`` period, >= 4)."""

    def __init__(self, cfg, half: int = 4) -> None:
        if half < 4:
            raise ValueError(f"half must be at least 4 FPGA cycles (sclk <= clk / 8), not {half}")
        self.cfg, self.half = cfg, half

    def exchange(self, transactions: list[list[int]]) -> list[list[int]]:
        from amaranth.sim import Simulator

        from synth.fpga import FpgaTop

        top = FpgaTop(self.cfg.build())
        half, settle = self.half, SpiStepHost.latency + 1
        got: list[list[int]] = []

        async def bench(ctx):
            async def idle(n):
                for _ in range(n):
                    await ctx.tick()

            for bits in transactions:
                ctx.set(top.cs_n, 0)
                await idle(half + settle)
                read = []
                for b in bits:
                    ctx.set(top.copi, b)
                    await idle(half)
                    read.append(ctx.get(top.cipo))  # mode 0: sampled at the rising edge
                    ctx.set(top.sclk, 1)
                    await idle(half)
                    ctx.set(top.sclk, 0)
                await idle(half)
                ctx.set(top.cs_n, 1)
                await idle(half + settle)
                got.append(read)

        sim = Simulator(top)
        sim.add_clock(1 / 12e6)
        sim.add_testbench(bench)
        sim.run()
        return got


class StepDriver:
    """Runs cycles of ``cfg``'s core through ``link``: ``in_ports`` / ``out_ports`` map port
    names to (offset, width) in the frames (hdl.host.frame_layout, signature order)."""

    def __init__(self, cfg, link: Link) -> None:
        self.cfg, self.link = cfg, link
        core = cfg.build()  # only read for its ports and latency, never elaborated here:
        core._MustUse__silence = True  # so Amaranth's "created but never used" stays quiet
        self.latency = core.latency
        self.in_ports, self.out_ports = frame_layout(core)
        self.in_bits = sum(w for _, w in self.in_ports.values())
        self.out_bits = sum(w for _, w in self.out_ports.values())
        self.bits = -(-max(self.in_bits, self.out_bits) // 8) * 8

    def frame(self, inputs: dict[str, int]) -> list[int]:
        """One transaction's bits: zeros, then the input frame LSB first (it ends the
        transaction, so the host keeps it)."""
        unknown = set(inputs) - set(self.in_ports)
        if unknown:
            raise ValueError(
                f"no input port {sorted(unknown)[0]!r}; ports: {', '.join(self.in_ports)}"
            )
        word = 0
        for name, value in inputs.items():
            off, width = self.in_ports[name]
            word |= (int(value) % (1 << width)) << off
        pad = self.bits - self.in_bits
        return [0] * pad + [(word >> i) & 1 for i in range(self.in_bits)]

    def outputs(self, bits: list[int]) -> dict[str, int]:
        """The output ports (raw unsigned integers) from the bits read in a transaction."""
        word = sum(b << i for i, b in enumerate(bits[: self.out_bits]))
        return {n: (word >> off) & ((1 << w) - 1) for n, (off, w) in self.out_ports.items()}

    def run(self, cycles: list[dict[str, int]]) -> list[dict[str, int]]:
        """Run each cycle (one transaction each, plus one to read the last); returns the core's
        outputs after each cycle."""
        read = self.link.exchange([self.frame(c) for c in cycles] + [self.frame({})])
        return [self.outputs(bits) for bits in read[1:]]  # transaction k reads cycle k - 1

    def gemm(self, w, a) -> list[tuple[int, list[int]]]:
        """The integer GEMM ``w`` [N, K] x ``a`` [K, M] (values, int64 tensors) on an INT array:
        the schedule of tb/schedule.py, then every valid output as (accumulator address, the
        signed outputs of every column)."""
        from tb.schedule import gemm_schedule, unpack_signed

        sched = gemm_schedule(self.cfg, w, a)
        fields = [f for f in vars(sched.cycles[0]) if f in self.in_ports]
        cycles = [{f: getattr(c, f) for f in fields} for c in sched.cycles]
        cycles += [{}] * (self.latency + 1)
        out = []
        for o in self.run(cycles):
            if o["y_valid"]:
                y = unpack_signed(o["y_data"], self.cfg.out_bits, self.cfg.cols)
                out.append((o["y_addr"], y))
        return out
