"""cocotb: the MicroScopiQ multi-precision PE on its generated Verilog, exhaustive: every mode
(one 4-bit weight signed / unsigned; two 2-bit weights, each signed / unsigned) x every weight
word x every signed activation; products compared bit for bit with integer arithmetic."""

import os
import time

import cocotb
from cocotb.triggers import FallingEdge

from qarch.configs import config_from_json
from tb.bench_util import record, start
from tb.schedule import unpack_signed

CFG = config_from_json(os.environ["QARCH_CONFIG"])
A = CFG.a_bits


def lane(w: int, bits: int, signed: bool) -> int:
    return w - (1 << bits) if signed and w >> (bits - 1) else w


def expected(a: int, w: int, split: int, s_lo: int, s_hi: int) -> tuple[int, int]:
    if not split:
        return a * lane(w, 4, bool(s_hi)), 0
    return a * lane(w & 3, 2, bool(s_lo)), a * lane(w >> 2, 2, bool(s_hi))


@cocotb.test()
async def every_mode_every_operand_pair(dut):
    modes = [(0, 0, 0), (0, 0, 1)] + [(1, lo, hi) for lo in (0, 1) for hi in (0, 1)]
    vectors = [
        (a, w, mode)
        for mode in modes
        for w in range(16)
        for a in range(-(1 << (A - 1)), 1 << (A - 1))
    ]
    await start(dut, ("a", "w", "mode"))
    errors = []
    t0 = time.monotonic()
    for a, w, mode in vectors:
        split, s_lo, s_hi = mode
        dut.a.value = a & ((1 << A) - 1)
        dut.w.value = w
        dut.mode.value = split | (s_lo << 1) | (s_hi << 2)
        await FallingEdge(dut.clk)  # latency 1: the rising edge in between registered it
        got = (
            unpack_signed(dut.p0.value.to_unsigned(), A + 5, 1)[0],
            unpack_signed(dut.p1.value.to_unsigned(), A + 3, 1)[0],
        )
        want = expected(a, w, *mode)
        if got != want:
            errors.append(f"a={a} w={w:04b} mode={mode}: {got} != {want}")
    record("msq PE vectors", len(vectors), time.monotonic() - t0)
    assert not errors, f"{len(errors)} of {len(vectors)} mismatches:\n" + "\n".join(errors[:10])
    dut._log.info("%d (mode, weight, activation) vectors bit-exact", len(vectors))
