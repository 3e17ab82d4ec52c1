"""cocotb: AXE's overflow guarantee on the generated Verilog of the INT array (axe.md).

A real SmolLM2 layer slice is quantized with AXE-GPTQ at P = the array's P_I and T = its tile
(its row count, or ``tile``: the column chain runs on over T / R K tiles; calibrated on its real
input activations), then driven
with the spec's adversarial inputs: for each output channel, x = nu where q > 0 and mu where
q < 0, and the reverse. Every input is in range, so no inner flag may rise and every output must
equal the exact sum. Plain GPTQ weights at the same P_I on the same inputs raise the flag, and
the array's wrapped outputs must equal the golden wrapped values (run_gemm compares every word
and flag with golden.accum.gemm).
"""

import os

import cocotb
import torch

from golden.accum import gemm
from golden.axe import input_range, quantize_layer, worst_case
from qarch.configs import config_from_json
from qarch.models import layer_sample
from tb.bench_util import run_gemm

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
T = CFG.t  # AXE's tile: the rows, or the config's tile


def layer():
    """A real slice: SmolLM2 q_proj of block 10 (C output channels x 6 K tiles, or 2 T tiles
    when longer) and its real input activations on held-out text (|x| for the unsigned-input
    configs)."""
    w, x = layer_sample("model.layers.10.self_attn.q_proj")
    k = max(6 * CFG.rows, 2 * T)
    w, x = w[: CFG.cols, :k], x[:256, :k]
    return w, (x if CFG.a_signed else x.abs())


def adversarial(q: torch.Tensor) -> torch.Tensor:
    """[K, 2 * out] inputs: per channel, the maximising and the minimising vector."""
    mu, nu = input_range(CFG.a_bits, CFG.a_signed)
    cols = []
    for c in range(q.shape[0]):
        hi = torch.where(q[c] > 0, nu, mu)
        lo = torch.where(q[c] > 0, mu, nu)
        cols += [hi, lo]
    return torch.stack(cols, dim=1).to(torch.int64)


def quantize(acc_bits):
    w, x = layer()
    q, _ = quantize_layer(
        w,
        x,
        weight_bits=CFG.w_bits,
        input_bits=CFG.a_bits,
        input_signed=CFG.a_signed,
        acc_bits=acc_bits,
        tile=T,
    )
    return q


def reference(q, a):
    return gemm(q, a, inner_bits=CFG.acc_bits, tile=T, outer_bits=CFG.out_bits, policy=CFG.policy)


@cocotb.test()
async def axe_weights_never_overflow(dut):
    q = quantize(CFG.acc_bits)
    assert (
        int(worst_case(q, CFG.a_bits, CFG.a_signed, T).max()) <= 2 ** (CFG.acc_bits - 1) - 1
    )
    a = adversarial(q)
    ref = reference(q, a)
    assert not ref.ovf_inner.any() and not ref.ovf_outer.any()
    assert torch.equal(ref.y, ref.exact)  # the array's outputs are compared with these below
    await run_gemm(dut, CFG, q, a, idle=0.0, seed=SEED, label="AXE adversarial")


@cocotb.test()
async def plain_gptq_overflows_and_wraps_like_golden(dut):
    q = quantize(None)
    a = adversarial(q)
    ref = reference(q, a)
    assert ref.ovf_inner.any(), "plain GPTQ should overflow this P_I on adversarial inputs"
    assert not torch.equal(ref.y, ref.exact)
    await run_gemm(dut, CFG, q, a, idle=0.0, seed=SEED, label="plain GPTQ adversarial")
