"""cocotb: the OliVe array on its generated Verilog against golden.accum.gemm on the values
``golden.olive.decode_pairs`` gives for the driven pair codes.

Codes come from the real OliVe quantizer on a real SmolLM2 layer (down_proj of block 10: its
weights, and its input activations on held-out text, which carry SmolLM2's outlier channels),
with the quantizer's own normal-type choice and each type forced; crafted pairs put the largest
outliers in both lanes of both operands.
"""

import os

import cocotb
import torch

from golden.olive import OliveFormat, decode_pairs, quantize_olive
from qarch.configs import config_from_json
from qarch.models import layer_sample
from tb.bench_util import run_gemm

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
B = CFG.bits


def shapes():
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    return C + C // 2 + 1, 3 * R + 1, 2 * D + 1  # odd K: the quantizer pads one zero


async def gemm_codes(dut, w_codes, a_codes, w_fmt, a_fmt, label, idle=0.25):
    """w_codes [N, K'] and a_codes [M, K'] element codes (pairs along K')."""
    if B == 4:
        dut.w_normal.value = int(w_fmt.normal == "flint4")
        dut.a_normal.value = int(a_fmt.normal == "flint4")
    w = decode_pairs(w_codes, w_fmt)
    a = decode_pairs(a_codes, a_fmt).T
    await run_gemm(
        dut, CFG, w, a, w_codes=w_codes, a_codes=a_codes.T, idle=idle, seed=SEED,
        label=f"{label} W:{w_fmt.normal} A:{a_fmt.normal}",
    )  # fmt: skip


def real_tensors():
    weight, inputs = layer_sample("model.layers.10.mlp.down_proj")
    n, k, m = shapes()
    # SmolLM2's two largest activation channels next to ordinary ones: real outliers in a tile
    top = torch.argsort(inputs.abs().amax(0), descending=True)[:2]
    rest = torch.tensor([c for c in range(inputs.shape[1]) if c not in top.tolist()][: k - 2])
    chans = torch.cat([rest[:3], top, rest[3:]])
    rows = torch.argsort(inputs[:, top].abs().amax(1), descending=True)[:2]
    rows = torch.cat([rows, torch.arange(m - 2) + 7])
    return weight[:n, chans], inputs[rows][:, chans]


@cocotb.test()
async def real_layer_quantizer_choice(dut):
    w, x = real_tensors()
    wq = quantize_olive(w, B)
    aq = quantize_olive(x, B, role="activation")
    assert aq.stats.outlier_pairs > 0, "the activation tile should hold outliers"
    dut._log.info("W %s %s / A %s %s", wq.fmt.normal, wq.stats, aq.fmt.normal, aq.stats)
    await gemm_codes(dut, wq.codes, aq.codes, wq.fmt, aq.fmt, "real layer")


@cocotb.test(skip=B != 4)
async def real_layer_each_normal_type(dut):
    w, x = real_tensors()
    for wn in ("int4", "flint4"):
        for an in ("int4", "flint4"):
            wq = quantize_olive(w, B, normal=wn, policy="keep_first")
            aq = quantize_olive(x, B, role="activation", normal=an)
            await gemm_codes(dut, wq.codes, aq.codes, wq.fmt, aq.fmt, "forced", idle=0.0)


@cocotb.test()
async def crafted_outlier_pairs_both_lanes(dut):
    """Largest outliers (both signs) in the even and the odd lane of weights and activations,
    next to victims; every output sees outlier x outlier products."""
    n, k, m = shapes()
    g = torch.Generator().manual_seed(SEED)
    for normal in ["int4", "flint4"] if B == 4 else ["int8"]:
        fmt = OliveFormat(normal, CFG.e_bits)
        ident = fmt.identifier
        top = fmt.encode_outlier(torch.tensor([fmt.outlier_max(), -fmt.outlier_max()]))

        def codes(rows, cols, ident=ident, top=top):
            kk = cols + cols % 2
            c = torch.randint(0, 1 << B, (rows, kk), generator=g)
            c[c == ident] = 0
            for r in range(rows):
                for p in range(0, kk, 2):
                    lane = (r + p // 2) % 3  # 0: outlier even, 1: outlier odd, 2: normals
                    if lane < 2:
                        c[r, p + lane] = top[(r + p) % 2]
                        c[r, p + 1 - lane] = ident
            return c

        await gemm_codes(dut, codes(n, k), codes(m, k), fmt, fmt, "crafted outliers", idle=0.1)


@cocotb.test()
async def outlier_outlier_pairs_both_policies(dut):
    """Tensors whose pairs hold two outliers, the larger one even or odd, quantized with both
    policies: the victim's identifier and the kept outlier go through the decoders exactly."""
    n, k, m = shapes()
    g = torch.Generator().manual_seed(SEED + 7)

    def tensor(rows, cols):
        x = torch.randn(rows, cols, generator=g)
        for r in range(rows):
            p = 2 * (r % (cols // 2))
            big, bigger = 30.0 + r, 45.0 + 2 * r
            x[r, p], x[r, p + 1] = (big, -bigger) if r % 2 else (-bigger, big)
        return x

    for policy in ("keep_larger", "keep_first"):
        # a fixed alpha (the normal range +-4): the clip search would rather avoid collisions
        alpha = 4.0 if B == 4 else 16.0
        wq = quantize_olive(tensor(n, k), B, policy=policy, alpha=alpha)
        aq = quantize_olive(tensor(m, k), B, role="activation", policy=policy, alpha=alpha)
        assert wq.stats.collisions > 0 and aq.stats.collisions > 0
        await gemm_codes(dut, wq.codes, aq.codes, wq.fmt, aq.fmt, f"collisions {policy}", idle=0)
