"""cocotb: the model-to-hardware link (docs/evaluation.md "Model-to-hardware link").

One real SmolLM2 tile per scheme goes through the scheme's array on its generated Verilog: the
weights of ``down_proj`` in block 10 (output channels x input columns that include the layer's
two largest activation channels) and its real input activations on held-out text. Weights and
activations are quantized exactly as ``qarch eval`` quantizes the model: the activation type,
scale or alpha is calibrated on other held-out rows and then applied to the rows driven here
(per-token scales for INT / AXE). Two checks, both on what the array produced:

* integer outputs equal the golden integer GEMM bit for bit (every word and flag, in
  ``run_schedule``) and, with accumulators wide enough (or AXE's guarantee), the exact sums;
* dequantized with the scheme's scales they equal the fake-quant layer output (dequantized
  activations times dequantized weights, or the ``AxeLinear`` module the evaluation runs) to
  float rounding.

``QARCH_SCHEME`` picks the scheme by its registry name (``LINKS``).
"""

import os

import cocotb
import torch

from qarch.configs import MsqArrayConfig, config_from_json
from qarch.models import layer_sample
from qarch.schemes import AntConfig, MicroScopiQConfig
from tb.bench_util import ARRAY_INPUTS, run_gemm, run_schedule
from tb.schedule import msq_schedule

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SCHEME = os.environ["QARCH_SCHEME"]
SEED = int(os.environ.get("QARCH_SEED", "1"))
LAYER = "model.layers.10.mlp.down_proj"
# float32 rounding of dequantized operands and of the reference matmul, relative to max |y|;
# one LSB of an integer output (s_w * s_a) is hundreds of times larger on these tiles
RTOL = 1e-6


def tile(n: int, k: int, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights [n, k], driven activations [m, k], calibration activations [256, k])."""
    w, x = layer_sample(LAYER)
    top = torch.argsort(x.abs().amax(0), descending=True)[:2]
    rest = [c for c in range(x.shape[1]) if c not in top.tolist()]
    chans = torch.cat([torch.tensor(rest[:3]), top, torch.tensor(rest[3 : k - 2])])
    rows = torch.argsort(w[:, chans].abs().amax(1), descending=True)[:n]  # outlier weights too
    return w[rows][:, chans], x[512 : 512 + m][:, chans], x[:256][:, chans]


def shapes() -> tuple[int, int, int]:
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    msq = isinstance(CFG, MsqArrayConfig)  # macro-blocks of 2 C rows, K in whole tiles
    n = 2 * CFG.cols if msq else C + C // 2 + 1
    return n, 3 * R + (0 if msq else 1), 2 * D + 1


def check_dequant(dut, y_hw: torch.Tensor, y_fq: torch.Tensor, label: str) -> None:
    err = float((y_hw - y_fq.to(torch.float64)).abs().max())
    tol = RTOL * float(y_fq.abs().max())
    dut._log.info("%s: dequantized max |hw - fake-quant| = %.3g (tolerance %.3g)", label, err, tol)
    assert err <= tol, f"{label}: dequantized outputs differ from the fake-quant layer by {err}"


def token_ints(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed a_bits integer activations [m, k] with per-token scales [m, 1], as the eval's
    ``AxeLinear`` forms them (golden.axe.quantize_inputs, round half to even)."""
    from golden.axe import quantize_inputs, token_scales

    s_a = token_scales(x.to(torch.float64), CFG.a_bits, True)
    return torch.round(quantize_inputs(x.to(torch.float64), CFG.a_bits, True, s_a) / s_a).to(
        torch.int64
    ), s_a


def exact(y_int: torch.Tensor, w: torch.Tensor, a: torch.Tensor) -> None:
    assert torch.equal(y_int, w @ a), "the array's outputs are not the exact integer sums"


async def link_int(dut, axe: bool) -> None:
    from golden.axe import AxeLinear, quantize_layer, token_scales
    from golden.int_quant import quantize_int

    n, k, m = shapes()
    w, x, cal = tile(n, k, m)
    a, s_a = token_ints(x)
    if axe:
        q, s_w = quantize_layer(
            w, cal, weight_bits=CFG.w_bits, input_bits=CFG.a_bits, input_signed=True,
            acc_bits=CFG.acc_bits, tile=CFG.rows,
            input_scale=token_scales(cal.to(torch.float64), CFG.a_bits, True),
        )  # fmt: skip
        y_fq = AxeLinear(q, s_w, None, CFG.a_bits, True, None, CFG.acc_bits, CFG.rows)(x)
    else:
        res = quantize_int(w, CFG.w_bits, granularity="channel")
        q, s_w = res.values, res.scales.reshape(-1).to(torch.float64)
        y_fq = (a.to(torch.float64) * s_a) @ (q.to(torch.float64) * s_w[:, None]).T
    label = f"{SCHEME} real down_proj tile"
    y_int = await run_gemm(dut, CFG, q, a.T.contiguous(), idle=0.1, seed=SEED, label=label)
    exact(y_int, q, a.T)
    check_dequant(dut, (y_int.to(torch.float64) * s_w[:, None]).T * s_a, y_fq, label)


async def link_ant(dut) -> None:
    from golden.ant import ANT_KINDS
    from golden.ant_quant import quantize_ant, quantize_to_grid

    n, k, m = shapes()
    w, x, cal = tile(n, k, m)
    # the eval's clip range (ratios of max |w| from AntConfig's clip_min), at the golden step
    wq = quantize_ant(w, CFG.bits, role="weight", ratios=AntConfig(ratio_step=0.01).ratios())
    t = quantize_ant(cal, CFG.bits, role="activation")  # calibrated type and scale
    s_a = float(t.scales[0])
    a_vals = quantize_to_grid(x.to(torch.float64) / s_a, t.type.grid())  # the eval's hook
    a_codes = t.type.encode(a_vals)
    dut.w_type.value = ANT_KINDS.index(wq.type.kind) | (int(wq.type.signed) << 2)
    dut.a_type.value = ANT_KINDS.index(t.type.kind) | (int(t.type.signed) << 2)
    label = f"ant real down_proj tile W:{wq.type.name} A:{t.type.name}"
    y_int = await run_gemm(
        dut, CFG, wq.values, a_vals.T.contiguous(), w_codes=wq.codes,
        a_codes=a_codes.T.contiguous(), idle=0.1, seed=SEED, label=label,
    )  # fmt: skip
    exact(y_int, wq.values, a_vals.T)
    y_fq = (a_vals.to(torch.float64) * s_a) @ wq.dequant.to(torch.float64).T
    check_dequant(dut, (y_int.to(torch.float64) * wq.scales[:, None]).T * s_a, y_fq, label)


async def link_olive(dut) -> None:
    from golden.olive import decode_pairs, quantize_olive

    n, k, m = shapes()
    w, x, cal = tile(n, k, m)
    wq = quantize_olive(w, CFG.bits)
    c = quantize_olive(cal, CFG.bits, role="activation")  # calibrated type and alpha
    aq = quantize_olive(
        x, CFG.bits, role="activation", normal=c.fmt.normal,
        alpha=float(c.scale[0]) * c.fmt.normal_max,
    )  # fmt: skip  # what the eval's activation hook does on every forward
    assert aq.stats.outlier_pairs > 0, "the driven activations should hold outliers"
    if CFG.bits == 4:
        dut.w_normal.value = int(wq.fmt.normal == "flint4")
        dut.a_normal.value = int(aq.fmt.normal == "flint4")
    wv, av = decode_pairs(wq.codes, wq.fmt), decode_pairs(aq.codes, aq.fmt)
    label = f"olive real down_proj tile W:{wq.fmt.normal} A:{aq.fmt.normal}"
    y_int = await run_gemm(
        dut, CFG, wv, av.T.contiguous(), w_codes=wq.codes, a_codes=aq.codes.T.contiguous(),
        idle=0.1, seed=SEED, label=label,
    )  # fmt: skip
    exact(y_int, wv, av.T)
    y_fq = aq.dequant.to(torch.float64) @ wq.dequant.to(torch.float64).T
    s_a = float(aq.scale[0])
    check_dequant(dut, (y_int.to(torch.float64) * wq.scale[:, None]).T * s_a, y_fq, label)


async def link_msq(dut) -> None:
    from golden.microscopiq import MsqParams, quantize_msq

    n, k, m = shapes()
    w, x, cal = tile(n, k, m)
    # the eval's default: GPTQ path, searched MaB exponents
    search = MicroScopiQConfig().exponent == "search"
    params = MsqParams(b=4, m=CFG.m, M=2 * CFG.cols, T=CFG.rows, e_search=search)
    quant = quantize_msq(w, params, inputs=cal)
    assert quant.n_outliers > 0, "the tile should hold weight outliers"
    a, s_a = token_ints(x)
    sched = msq_schedule(CFG, quant, a.T.contiguous(), idle=0.1, seed=SEED)
    label = "microscopiq real down_proj tile"
    y_int = await run_schedule(
        dut, CFG, sched, label=label, seed=SEED, inputs=(*ARRAY_INPUTS, "w_cfg", "a_shift")
    )
    # Y = sum_t S_t << (E_t - E_min): exact sums of c * x in units of 2^E_min per row group
    c = quant.coefficients()
    shift = (quant.exp - quant.exp.amin(1, keepdim=True)).repeat_interleave(params.M, 0)
    col_shift = shift.repeat_interleave(params.T, 1)[:, :k]
    exact(y_int, c << col_shift, a.T)
    e_min = quant.exp.amin(1).repeat_interleave(params.M).to(torch.float64)
    y_hw = (y_int.to(torch.float64) * torch.exp2(e_min)[:, None]).T * s_a
    y_fq = (a.to(torch.float64) * s_a) @ quant.dequant.T
    check_dequant(dut, y_hw, y_fq, label)


# One tile per registered scheme with hardware, keyed by its registry name (tb/test_model_link.py).
LINKS = {
    "int": lambda dut: link_int(dut, axe=False),
    "axe-gptq": lambda dut: link_int(dut, axe=True),
    "ant": link_ant,
    "olive": link_olive,
    "microscopiq": link_msq,
}


@cocotb.test()
async def real_layer_tile(dut):
    if SCHEME not in LINKS:
        raise ValueError(f"QARCH_SCHEME must be one of {', '.join(LINKS)}, not {SCHEME!r}")
    await LINKS[SCHEME](dut)
