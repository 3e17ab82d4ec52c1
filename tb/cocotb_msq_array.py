"""cocotb: the MicroScopiQ array on its generated Verilog against the integer semantics
(``golden.microscopiq.msq_gemm``), bit for bit.

Codes and metadata come from the real quantizer: a real SmolLM2 layer slice (down_proj of
block 10, calibrated with GPTQ on its real input activations, which are also the activation
codes, 8-bit per tensor), and a heavy-tailed tensor whose outliers need dE = 1..3. Several MaB
tiles per GEMM (T = the array's rows), two column blocks, batches and idle cycles; every row
load carries the router compiler's config words.
"""

import os

import cocotb
import torch

from golden.microscopiq import MsqParams, quantize_msq
from qarch.configs import config_from_json
from qarch.models import layer_sample
from tb.bench_util import ARRAY_INPUTS, check_cycles, run_schedule
from tb.schedule import msq_outlier_rows, msq_schedule

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
INPUTS = (*ARRAY_INPUTS, "w_cfg", "a_shift")
PARAMS = MsqParams(b=CFG.b, m=CFG.m, M=2 * CFG.lanes, T=CFG.rows)


def act_codes(x: torch.Tensor) -> torch.Tensor:
    """[K, B] signed activation codes, per-tensor max-abs scale."""
    qmax = 2 ** (CFG.a_bits - 1) - 1
    s = x.abs().max() / qmax
    return torch.round(x / s).clamp(-qmax - 1, qmax).to(torch.int64).T.contiguous()


async def run(dut, quant, x, label, idle=0.25):
    sched = msq_schedule(CFG, quant, x, idle=idle, seed=SEED)
    outl = sched.model_args["outliers"]
    rows = [sum(t) for blk in outl for t in blk]
    spacing = [CFG.spacing(t) for blk in outl for t in blk]
    dut._log.info(
        "%s: %d outliers, dE max %d, E %s; outlier rows per tile %s, vector spacing %s",
        label, quant.n_outliers, int(quant.de.max()), quant.exp.tolist(), rows, spacing,
    )  # fmt: skip
    await run_schedule(dut, CFG, sched, label=label, seed=SEED, inputs=INPUTS)
    if not idle:
        check_cycles(dut, CFG, sched, x.shape[1], x.shape[0], quant.codes.shape[0], label)


@cocotb.test()
async def real_layer_gptq(dut):
    w, x = layer_sample("model.layers.10.mlp.down_proj")
    k = 3 * CFG.rows + 1
    top = torch.argsort(w.abs().amax(1), descending=True)[: PARAMS.M]  # rows with outliers
    w, x = w[top][:, :k], x[: 2 * min(CFG.acc_depth, 8) + 1, :k]
    quant = quantize_msq(w, PARAMS, inputs=x)
    assert quant.n_outliers > 0
    if CFG.recon_rows == CFG.rows:  # one ReCoN for the array: some real tile stalls it
        outl = msq_outlier_rows(CFG, quant)
        assert max(CFG.spacing(t) for blk in outl for t in blk) > 1
    await run(dut, quant, act_codes(x), "real down_proj slice", idle=0.0)


@cocotb.test(skip=CFG.acc_depth < 512)
async def prefill(dut):
    """512 real tokens back to back through deep accumulators, on the rows of a real layer with
    the most outliers (the shared ReCoN's stalls included); cycles = the published formula."""
    w, x = layer_sample("model.layers.10.mlp.down_proj")
    k = 2 * CFG.rows
    top = torch.argsort(w.abs().amax(1), descending=True)[: PARAMS.M]
    w, x = w[top][:, :k], x[: CFG.acc_depth, :k]
    quant = quantize_msq(w, PARAMS, inputs=x)
    await run(dut, quant, act_codes(x), "prefill 512", idle=0.0)


@cocotb.test()
async def heavy_tailed_de_values(dut):
    g = torch.Generator().manual_seed(SEED)
    k = 4 * CFG.rows
    # outlier densities and sizes, in turn, until some micro-block needs dE >= 2 (which ones do
    # depends on b and the MaB size: dense large outliers inflate the 3-sigma threshold)
    for density, size in ((0.02, 400), (0.005, 40), (0.02, 40)):
        w = torch.randn(PARAMS.M, k, generator=g)
        mask = torch.rand(PARAMS.M, k, generator=g) < density
        w = torch.where(mask, w * size, w)
        w[:, CFG.rows : 2 * CFG.rows] *= 8  # a MaB tile with a larger exponent: shifts > 0
        quant = quantize_msq(w, PARAMS)
        if int(quant.de.max()) >= 2:
            break
    assert int(quant.de.max()) >= 2 and int(quant.exp.max() - quant.exp.min()) > 0
    x = torch.randint(-128, 128, (k, 2 * min(CFG.acc_depth, 8) + 1), generator=g)
    await run(dut, quant, x, "heavy-tailed dE", idle=0.1)
