"""cocotb tests for the INT systolic array on its generated Verilog against golden.accum.gemm.

Operands are codes produced by the real INT quantizer (golden.int_quant) from seeded float
tensors: heavy-tailed weights per output channel, activations per tensor. GEMMs span several K
tiles, several output-column blocks and several batches of back-to-back vectors, with idle
cycles between inputs. Every output word, both overflow flags and the accumulator address are
compared bit for bit.
"""

import os
import time

import cocotb
import torch
from cocotb.triggers import FallingEdge

from golden.int_quant import quantize_int
from qarch.config import config_from_json
from tb.bench_util import record, start
from tb.schedule import gemm_schedule, unpack_signed

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
INPUTS = ("w_load", "w_row", "w_data", "a_valid", "a_data", "a_first", "a_last", "a_addr")


def quantized_operands(n: int, k: int, m: int, seed: int, spread: float = 1.0):
    """Integer weight [N, K] and activation [K, M] values from the real quantizer."""
    g = torch.Generator().manual_seed(seed)
    # Per-channel spread, heavy tail (a Student-t-like mix), as in trained weights.
    w_real = torch.randn(n, k, generator=g) * torch.rand(n, 1, generator=g).add(0.5)
    w_real = w_real / torch.rand(n, k, generator=g).add(0.3).sqrt()
    a_real = torch.randn(k, m, generator=g).mul(spread)
    if not CFG.a_signed:
        a_real = a_real.relu()  # an unsigned activation is a post-ReLU one
    if not CFG.w_signed:
        w_real = w_real.abs()
    wq = quantize_int(w_real, CFG.w_bits, signed=CFG.w_signed, granularity="channel")
    aq = quantize_int(a_real, CFG.a_bits, signed=CFG.a_signed, clip_search=True)
    return wq.values, aq.values


async def run_gemm(dut, w, a, idle, seed, label):
    sched = gemm_schedule(CFG, w, a, idle=idle, seed=seed)
    C, P = CFG.cols, CFG.out_bits
    await start(dut, INPUTS)
    got = []
    t0 = time.monotonic()
    await FallingEdge(dut.clk)
    ports = [getattr(dut, n) for n in INPUTS]
    drain = [None] * (CFG.rows + CFG.cols + 2)
    for cyc in sched.cycles + drain:
        if int(dut.y_valid.value):
            oi, oo = int(dut.y_ovf_inner.value), int(dut.y_ovf_outer.value)
            got.append(
                (
                    int(dut.y_addr.value),
                    unpack_signed(dut.y_data.value.to_unsigned(), P, C),
                    [(oi >> c) & 1 for c in range(C)],
                    [(oo >> c) & 1 for c in range(C)],
                )
            )
        for port, name in zip(ports, INPUTS):
            port.value = getattr(cyc, name) if cyc else 0
        await FallingEdge(dut.clk)
    dt = time.monotonic() - t0
    errors = []
    if len(got) != len(sched.expected):
        errors.append(f"{len(got)} output vectors, expected {len(sched.expected)}")
    for (addr, y, oi, oo), e in zip(got, sched.expected):
        n = len(e.y)
        for c in range(n):
            if (y[c], oi[c], oo[c]) != (e.y[c], e.ovf_inner[c], e.ovf_outer[c]):
                errors.append(
                    f"{e.where} col {c} seed={seed}: got {y[c] & (2**P - 1):0{P}b} "
                    f"ovf {oi[c]}{oo[c]}, want {e.y[c] & (2**P - 1):0{P}b} "
                    f"ovf {e.ovf_inner[c]}{e.ovf_outer[c]} ({y[c]} vs {e.y[c]})"
                )
        if addr != e.addr:
            errors.append(f"{e.where}: y_addr {addr}, expected {e.addr}")
    assert not errors, f"{label}: {len(errors)} mismatches:\n" + "\n".join(errors[:10])
    n_ovf = sum(sum(e.ovf_inner) + sum(e.ovf_outer) for e in sched.expected)
    dut._log.info(
        "%s: %d outputs x %d columns bit-exact (%d overflow flags set), %d cycles, %.0f cycles/s",
        label,
        len(got),
        C,
        n_ovf,
        len(sched.cycles),
        len(sched.cycles) / dt,
    )
    record(label, len(sched.cycles), dt)


@cocotb.test()
async def quantized_gemm(dut):
    """Several K tiles, two column blocks, batches of acc_depth + remainder, idle cycles."""
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    w, a = quantized_operands(C + C // 2 + 1, 3 * R + R // 2 + 1, 2 * D + 1, SEED)
    await run_gemm(dut, w, a, idle=0.25, seed=SEED, label="quantized GEMM")


@cocotb.test()
async def back_to_back_extremes(dut):
    """No idle cycles; operands at the format extremes, so narrow accumulators overflow."""
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    g = torch.Generator().manual_seed(SEED + 7)
    wf, af = CFG.w_fmt, CFG.a_fmt
    n, k, m = C, 2 * R + 1, D
    w = torch.where(torch.rand(n, k, generator=g) < 0.5, wf.max, wf.min)
    a = torch.where(torch.rand(k, m, generator=g) < 0.5, af.max, af.min)
    w[0] = wf.max
    a[:, 0] = af.max  # at least one output with every product at its maximum
    await run_gemm(
        dut, w.to(torch.int64), a.to(torch.int64), idle=0.0, seed=SEED + 7, label="extremes"
    )


@cocotb.test(skip=os.environ.get("QARCH_BENCH_OUT") is None)
async def throughput(dut):
    """Benchmark only (make bench): a long back-to-back GEMM, 384 K tiles, no idle cycles."""
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    w, a = quantized_operands(C, 384 * R, D, SEED + 3)
    await run_gemm(dut, w, a, idle=0.0, seed=SEED, label="throughput")
