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
from tb.bench_util import ARRAY_INPUTS, run_gemm, run_schedule
from tb.links import link_operands
from tb.schedule import msq_schedule

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SCHEME = os.environ["QARCH_SCHEME"]
SEED = int(os.environ.get("QARCH_SEED", "1"))
# float32 rounding of dequantized operands and of the reference matmul, relative to max |y|;
# one LSB of an integer output (s_w * s_a) is hundreds of times larger on these tiles
RTOL = 1e-6


def shapes() -> tuple[int, int, int]:
    R, C, D = CFG.rows, CFG.cols, CFG.acc_depth
    msq = isinstance(CFG, MsqArrayConfig)  # macro-blocks of 2 C rows, K in whole tiles
    n = 2 * CFG.lanes if msq else C + C // 2 + 1
    return n, 3 * R + (0 if msq else 1), 2 * D + 1


def check_dequant(dut, y_hw: torch.Tensor, y_fq: torch.Tensor, label: str) -> None:
    err = float((y_hw - y_fq.to(torch.float64)).abs().max())
    tol = RTOL * float(y_fq.abs().max())
    dut._log.info("%s: dequantized max |hw - fake-quant| = %.3g (tolerance %.3g)", label, err, tol)
    assert err <= tol, f"{label}: dequantized outputs differ from the fake-quant layer by {err}"


def exact(y_int: torch.Tensor, w: torch.Tensor, a: torch.Tensor) -> None:
    assert torch.equal(y_int, w @ a), "the array's outputs are not the exact integer sums"


async def link_int(dut, axe: bool) -> None:
    ops = link_operands(CFG, "axe-gptq" if axe else "int", *shapes())
    s_w, s_a = ops.extra["s_w"], ops.extra["s_a"]
    label = f"{SCHEME} real down_proj tile"
    y_int = await run_gemm(dut, CFG, ops.w, ops.a, idle=0.1, seed=SEED, label=label)
    exact(y_int, ops.w, ops.a)
    check_dequant(dut, (y_int.to(torch.float64) * s_w[:, None]).T * s_a, ops.extra["y_fq"], label)


def hold_ports(dut, ops) -> None:
    for name, value in ops.ports.items():
        getattr(dut, name).value = value


async def link_ant(dut) -> None:
    ops = link_operands(CFG, "ant", *shapes())
    hold_ports(dut, ops)
    label = f"{ops.label.replace('ant', 'ant real down_proj tile', 1)}"
    y_int = await run_gemm(
        dut, CFG, ops.w, ops.a, **ops.gemm_kwargs(), idle=0.1, seed=SEED, label=label
    )
    exact(y_int, ops.w, ops.a)
    s_w, s_a = ops.extra["s_w"], ops.extra["s_a"]
    check_dequant(dut, (y_int.to(torch.float64) * s_w[:, None]).T * s_a, ops.extra["y_fq"], label)


async def link_olive(dut) -> None:
    ops = link_operands(CFG, "olive", *shapes())
    assert ops.extra["outlier_pairs"] > 0, "the driven activations should hold outliers"
    hold_ports(dut, ops)
    label = f"{ops.label.replace('olive', 'olive real down_proj tile', 1)}"
    y_int = await run_gemm(
        dut, CFG, ops.w, ops.a, **ops.gemm_kwargs(), idle=0.1, seed=SEED, label=label
    )
    exact(y_int, ops.w, ops.a)
    s_w, s_a = ops.extra["s_w"], ops.extra["s_a"]
    check_dequant(dut, (y_int.to(torch.float64) * s_w[:, None]).T * s_a, ops.extra["y_fq"], label)


async def link_msq(dut) -> None:
    n, k, m = shapes()
    ops = link_operands(CFG, "microscopiq", n, k, m)
    quant, a, s_a, params = ops.msq, ops.a, ops.extra["s_a"], ops.extra["params"]
    assert quant.n_outliers > 0, "the tile should hold weight outliers"
    sched = msq_schedule(CFG, quant, a, idle=0.1, seed=SEED)
    label = "microscopiq real down_proj tile"
    y_int = await run_schedule(
        dut, CFG, sched, label=label, seed=SEED, inputs=(*ARRAY_INPUTS, "w_cfg", "a_shift")
    )
    # Y = sum_t S_t << (E_t - E_min): exact sums of c * x in units of 2^E_min per row group
    c = quant.coefficients()
    shift = (quant.exp - quant.exp.amin(1, keepdim=True)).repeat_interleave(params.M, 0)
    col_shift = shift.repeat_interleave(params.T, 1)[:, :k]
    exact(y_int, c << col_shift, a)
    e_min = quant.exp.amin(1).repeat_interleave(params.M).to(torch.float64)
    y_hw = (y_int.to(torch.float64) * torch.exp2(e_min)[:, None]).T * s_a
    y_fq = (a.T.to(torch.float64) * s_a) @ quant.dequant.T
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
