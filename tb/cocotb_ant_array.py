"""cocotb: the ANT array on its generated Verilog against golden.accum.gemm on decoded values.

Codes come from the real ANT quantizer (golden.ant_quant) on heavy-tailed and uniform tensors,
so the per-tensor type selection picks the types; forced modes cover the rest (PoT, unsigned
activations). GEMMs span several K tiles, two column blocks, batches and idle cycles.
"""

import os

import cocotb
import torch

from golden.ant import ANT_KINDS
from golden.ant_quant import quantize_ant
from qarch.configs import config_from_json
from tb.bench_util import run_gemm

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))


def type_word(t) -> int:
    return ANT_KINDS.index(t.kind) | (int(t.signed) << 2)


async def quantized(
    dut, w_real, a_real, label, w_mode="int,pot,flint", a_mode="int,pot,flint", idle=0.25
):
    wq = quantize_ant(w_real, CFG.bits, role="weight", mode=w_mode)
    aq = quantize_ant(a_real, CFG.bits, role="activation", mode=a_mode)
    dut.w_type.value = type_word(wq.type)
    dut.a_type.value = type_word(aq.type)
    await run_gemm(
        dut,
        CFG,
        wq.values,
        aq.values,
        w_codes=wq.codes,
        a_codes=aq.codes,
        idle=idle,
        seed=SEED,
        label=f"{label} W:{wq.type.name} A:{aq.type.name}",
    )


def shapes():
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    return C + C // 2 + 1, 3 * R + 1, 2 * D + 1


@cocotb.test()
async def heavy_tailed(dut):
    """Laplace weights, Student-t activations: the quantizer's own type choice."""
    torch.manual_seed(SEED)
    n, k, m = shapes()
    w = torch.distributions.Laplace(0.0, 1.0).sample((n, k))
    a = torch.distributions.StudentT(4.0).sample((k, m))
    await quantized(dut, w, a, "heavy-tailed")


@cocotb.test()
async def uniform_and_relu(dut):
    """Uniform weights (int), post-ReLU activations (unsigned types)."""
    torch.manual_seed(SEED + 1)
    n, k, m = shapes()
    w = torch.rand(n, k) * 2 - 1
    a = torch.relu(torch.distributions.Laplace(0.0, 1.0).sample((k, m)))
    await quantized(dut, w, a, "uniform/relu")


@cocotb.test()
async def every_forced_type(dut):
    """Each type forced on both operands, signed and unsigned, back to back."""
    torch.manual_seed(SEED + 2)
    n, k, m = shapes()
    for kind in ANT_KINDS:
        w = torch.randn(n, k)
        a = torch.randn(k, m)
        await quantized(dut, w, a, f"forced {kind}", w_mode=kind, a_mode=kind, idle=0.0)
        await quantized(
            dut, w.abs(), a.abs(), f"forced {kind} unsigned", w_mode=kind, a_mode=kind, idle=0.0
        )
