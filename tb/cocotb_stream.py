"""cocotb: one output block of a real SmolLM2 layer streamed through an INT, ANT or OliVe array
(make bench's utilisation table and its smoke test).

The first C output channels of ``model.layers.10.self_attn.q_proj`` (K = 576) against its
inputs on held-out text, both quantized by the scheme's own quantizer: M vectors stream back to
back through every K tile. Every output is compared bit for bit with the golden GEMM, and the
cycles counted from the first input to the last output must equal the config's published
``cycles(M, K, N)``; bench_util records the count for make bench. ``QARCH_STREAM_K`` /
``QARCH_STREAM_M`` shrink the GEMM (the smoke test).
"""

import os

import cocotb
import torch

from golden.ant import ANT_KINDS
from golden.ant_quant import quantize_ant
from golden.int_quant import quantize_int
from golden.olive import decode_pairs, quantize_olive
from qarch.configs import AntArrayConfig, IntArrayConfig, OliveArrayConfig, config_from_json
from qarch.models import layer_sample
from tb.bench_util import run_gemm

CFG = config_from_json(os.environ["QARCH_CONFIG"])
LAYER = "model.layers.10.self_attn.q_proj"


def operands(dut, w: torch.Tensor, x: torch.Tensor) -> dict:
    """Values and codes of weights ``w`` [N, K] and inputs ``x`` [M, K] for CFG's scheme;
    sets the scheme's per-tensor type ports."""
    if isinstance(CFG, IntArrayConfig):
        wq = quantize_int(w, CFG.w_bits, signed=CFG.w_signed, granularity="channel")
        aq = quantize_int(x.T, CFG.a_bits, signed=CFG.a_signed, clip_search=True)
        return {"w": wq.values, "a": aq.values}
    if isinstance(CFG, AntArrayConfig):
        wq = quantize_ant(w, CFG.bits, role="weight")
        aq = quantize_ant(x.T.contiguous(), CFG.bits, role="activation")
        for port, t in (("w_type", wq.type), ("a_type", aq.type)):
            getattr(dut, port).value = ANT_KINDS.index(t.kind) | (int(t.signed) << 2)
        return {"w": wq.values, "a": aq.values, "w_codes": wq.codes, "a_codes": aq.codes}
    if isinstance(CFG, OliveArrayConfig):
        wq = quantize_olive(w, CFG.bits)
        aq = quantize_olive(x, CFG.bits, role="activation")
        if CFG.bits == 4:
            dut.w_normal.value = int(wq.fmt.normal == "flint4")
            dut.a_normal.value = int(aq.fmt.normal == "flint4")
        return {
            "w": decode_pairs(wq.codes, wq.fmt),
            "a": decode_pairs(aq.codes, aq.fmt).T,
            "w_codes": wq.codes,
            "a_codes": aq.codes.T,
        }
    raise TypeError(f"no streaming bench for {type(CFG).__name__}")


@cocotb.test()
async def layer_block(dut):
    k = int(os.environ.get("QARCH_STREAM_K", "576"))
    m = int(os.environ.get("QARCH_STREAM_M", "512"))
    weight, inputs = layer_sample(LAYER)
    w, x = weight[: CFG.cols, :k].float(), inputs[:m, :k].float()
    ops = operands(dut, w, x)
    a = ops.pop("a")
    wv = ops.pop("w")
    label = f"{LAYER} block N={CFG.cols} K={k} M={m}"
    await run_gemm(dut, CFG, wv, a, idle=0.0, seed=0, label=label, **ops)
