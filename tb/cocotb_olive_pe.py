"""cocotb: the OliVe PE on its generated Verilog.

4-bit: exhaustive over every pair of decodable operands (each (sign, mag, exp) the pair decoder
can produce under either normal type, the victim's 0 included) with a mix of partial sums.
8-bit: every outlier magnitude against corners, plus seeded random operand pairs. Expected: one
step of ``golden.accum.accumulate`` on the decoded values.
"""

import os
import random

import cocotb
import torch

from golden.olive import NORMAL_TYPES, OliveFormat, decode_pair_operands
from hdl.olive import olive_widths
from qarch.configs import config_from_json
from tb.bench_util import drive_pe, psum_mix

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
B = CFG.bits
MAG, EXP = olive_widths(B, CFG.e_bits, CFG.outliers)


def operands():
    """Every distinct decoded operand (sign, mag, exp) over all pair words and normal types
    (without the outlier path, an ablation: the normal types' operands alone)."""
    ops = set()
    words = torch.arange(1 << (2 * B))
    codes = torch.stack([words & ((1 << B) - 1), words >> B], dim=-1).flatten()
    for name, b in NORMAL_TYPES.items():
        if b == B:
            fmt = OliveFormat(name, CFG.e_bits)
            d = decode_pair_operands(codes, fmt) if CFG.outliers else fmt.normal_decode(codes)
            ops |= set(zip(d.sign.tolist(), d.mag.tolist(), d.exp.tolist()))
    return sorted(ops)


def word(op):
    s, mag, exp = op
    return mag | (exp << MAG) | (s << (MAG + EXP))


def value(op):
    s, mag, exp = op
    return (-1 if s else 1) * (mag << exp)


@cocotb.test()
async def operand_pairs(dut):
    rng = random.Random(SEED)
    ops = operands()
    if B == 4:
        pairs = [(w, a) for w in ops for a in ops]
        label = f"all {len(ops)} x {len(ops)} operand pairs"
    else:
        big = [o for o in ops if o[2] > 0]  # outliers: every abfloat magnitude
        corners = [o for o in ops if o[1] in (0, 1, 127) and o[2] == 0] + big[-4:]
        pairs = [(w, a) for w in big for a in corners] + [(a, w) for w in big for a in corners]
        pairs += [(rng.choice(ops), rng.choice(ops)) for _ in range(6000)]
        label = f"{len(pairs)} outlier/corner/random operand pairs"
    psums = psum_mix(rng, len(pairs), CFG.acc_bits)
    vectors = [(value(w), value(a), psums[i], i % 7 == 0) for i, (w, a) in enumerate(pairs)]
    await drive_pe(
        dut, CFG, vectors, [word(w) for w, _ in pairs], [word(a) for _, a in pairs], label, SEED
    )
