"""Helpers shared by the cocotb modules (imported inside the simulator)."""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

__all__ = ["start", "record"]


async def start(dut, inputs=()):
    """Start the 10 ns clock, zero ``inputs`` and pulse ``rst`` for two cycles.

    cocotb ends every task a test started when the test ends, so each test starts its own clock.
    """
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in inputs:
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def record(label: str, count: int, seconds: float) -> None:
    """Append a throughput sample to ``$QARCH_BENCH_OUT`` (set by make bench) if requested."""
    path = os.environ.get("QARCH_BENCH_OUT")
    if path:
        with open(path, "a") as f:
            f.write(f"{label}\t{count}\t{seconds:.6f}\n")
