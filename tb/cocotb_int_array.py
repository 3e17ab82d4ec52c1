"""cocotb tests for the INT systolic array on its generated Verilog against golden.accum.gemm.

Operands are codes produced by the real INT quantizer (golden.int_quant) from seeded float
tensors: heavy-tailed weights per output channel, activations per tensor. GEMMs span several K
tiles, several output-column blocks and several batches of back-to-back vectors, with idle
cycles between inputs. Every output word, both overflow flags and the accumulator address are
compared bit for bit.
"""

import os

import cocotb
import torch

from golden.int_quant import quantize_int
from qarch.configs import config_from_json
from tb.bench_util import run_gemm

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))


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


@cocotb.test()
async def quantized_gemm(dut):
    """Several K tiles, two column blocks, batches of acc_depth + remainder, idle cycles."""
    R, C, D = CFG.rows, CFG.cols, min(CFG.acc_depth, 8)  # deep accumulators: see prefill
    w, a = quantized_operands(C + C // 2 + 1, 3 * R + R // 2 + 1, 2 * D + 1, SEED)
    await run_gemm(dut, CFG, w, a, idle=0.25, seed=SEED, label="quantized GEMM")


@cocotb.test(skip=CFG.acc_depth < 512)
async def prefill(dut):
    """Two 512-token prefills back to back through deep accumulators: 2 x 512 vectors stream
    through every K tile of two column blocks with no idle cycle; the count of cycles from the
    first input to the last output equals the published ``cycles(M, K, N)``."""
    R, C = CFG.rows, CFG.cols
    w, a = quantized_operands(2 * C, 2 * R + 1, 2 * CFG.acc_depth, SEED + 11)
    await run_gemm(dut, CFG, w, a, idle=0.0, seed=SEED, label="prefill 2 x 512")


@cocotb.test()
async def back_to_back_extremes(dut):
    """No idle cycles; operands at the format extremes, so narrow accumulators overflow."""
    R, C, D = CFG.rows, CFG.cols, min(CFG.acc_depth, 8)
    g = torch.Generator().manual_seed(SEED + 7)
    wf, af = CFG.w_fmt, CFG.a_fmt
    n, k, m = C, 2 * R + 1, D
    w = torch.where(torch.rand(n, k, generator=g) < 0.5, wf.max, wf.min)
    a = torch.where(torch.rand(k, m, generator=g) < 0.5, af.max, af.min)
    w[0] = wf.max
    a[:, 0] = af.max  # at least one output with every product at its maximum
    await run_gemm(
        dut, CFG, w.to(torch.int64), a.to(torch.int64), idle=0.0, seed=SEED + 7, label="extremes"
    )


@cocotb.test(skip=os.environ.get("QARCH_BENCH_OUT") is None)
async def throughput(dut):
    """Benchmark only (make bench): a long back-to-back GEMM, 384 K tiles, no idle cycles."""
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    w, a = quantized_operands(C, 384 * R, D, SEED + 3)
    await run_gemm(dut, CFG, w, a, idle=0.0, seed=SEED, label="throughput")
