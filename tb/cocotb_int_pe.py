"""cocotb tests for the INT PE on its generated Verilog, bit for bit against golden/.

Every vector is (w, a, psum_in, ovf_in); the expected (psum_out, ovf_out) is one step of
``golden.accum.accumulate`` (see ``tb.bench_util.drive_pe``).
"""

import os
import random

import cocotb
import torch

from golden.numerics import IntFormat
from qarch.configs import config_from_json
from tb.bench_util import drive_pe, psum_mix

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
P = CFG.acc_bits
LO, HI = -(2 ** (P - 1)), 2 ** (P - 1) - 1


async def drive(dut, vectors, label):
    """Apply (w, a, psum, ovf) value vectors; the ports take the operands' codes."""
    w = torch.tensor([v[0] for v in vectors])
    a = torch.tensor([v[1] for v in vectors])
    await drive_pe(
        dut, CFG, vectors, CFG.w_fmt.encode(w).tolist(), CFG.a_fmt.encode(a).tolist(), label, SEED
    )


def values(fmt: IntFormat) -> list[int]:
    return list(range(fmt.min, fmt.max + 1))


@cocotb.test()
async def operand_pairs(dut):
    """Every (w, a) pair when both widths <= 4 (or w <= 4 and a = 8); else seeded random."""
    rng = random.Random(SEED)
    wv, av = values(CFG.w_fmt), values(CFG.a_fmt)
    if len(wv) * len(av) <= 4096:
        pairs = [(x, y) for x in wv for y in av]
        label = "exhaustive pairs"
    else:
        pairs = [(rng.choice(wv), rng.choice(av)) for _ in range(4000)]
        pairs += [
            (x, y)
            for x in (min(wv), max(wv), 0, -1 if min(wv) < 0 else 1)
            for y in (min(av), max(av), 0, 1)
        ]
        label = "random pairs"
    psums = psum_mix(rng, len(pairs), P)
    vectors = [(x, y, psums[i], i % 7 == 0) for i, (x, y) in enumerate(pairs)]
    await drive(dut, vectors, label)


@cocotb.test()
async def overflow_boundaries(dut):
    """psum_in placed so that psum_in + w*a lands on HI, HI+1, LO and LO-1 exactly."""
    rng = random.Random(SEED + 1)
    wv, av = values(CFG.w_fmt), values(CFG.a_fmt)
    vectors = []
    for _ in range(600):
        x, y = rng.choice(wv), rng.choice(av)
        p = x * y
        for target in (HI, HI + 1, LO, LO - 1, HI - 1, LO + 1):
            ps = target - p
            if LO <= ps <= HI:
                vectors.append((x, y, ps, 0))
    await drive(dut, vectors, "overflow boundaries")
