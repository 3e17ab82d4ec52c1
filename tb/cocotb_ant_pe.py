"""cocotb: the unified ANT PE on its generated Verilog, exhaustive over every 4-bit code pair x
every type pair (int / pot / flint, signed / unsigned: 36 pairs x 256 codes = 9216 vectors).

The PE takes decoded operands (decoders sit at the array edge); each code is decoded by the
golden ``AntType.decode`` and packed in the operand layout (LSB first: mag, exp, sign). The
expected partial sum is one step of ``golden.accum.accumulate`` on the decoded values.
"""

import os
import random

import cocotb
import torch

from golden.ant import ANT_KINDS, AntType
from qarch.configs import config_from_json
from tb.bench_util import drive_pe, psum_mix

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
B = CFG.bits


def types():
    out = []
    for kind in ANT_KINDS:
        if kind not in CFG.type_list:  # an ablation PE multiplies only its types
            continue
        for signed in (True, False):
            try:
                out.append(AntType(kind, B, signed))
            except ValueError:
                pass
    return out


def pack(sign, mag, exp, exp_bits):
    return mag | (exp << B) | (sign << (B + exp_bits))


@cocotb.test()
async def every_code_pair_every_type_pair(dut):
    exp_bits = len(dut.w) - B - 1
    rng = random.Random(SEED)
    codes = torch.arange(2**B)
    dec = {t: t.decode(codes) for t in types()}
    vectors, w_port, a_port = [], [], []
    for dw in dec.values():
        for da in dec.values():
            for cw in range(2**B):
                for ca in range(2**B):
                    vectors.append((dw.value()[cw].item(), da.value()[ca].item(), 0, 0))
                    w_port.append(
                        pack(dw.sign[cw].item(), dw.mag[cw].item(), dw.exp[cw].item(), exp_bits)
                    )
                    a_port.append(
                        pack(da.sign[ca].item(), da.mag[ca].item(), da.exp[ca].item(), exp_bits)
                    )
    psums = psum_mix(rng, len(vectors), CFG.acc_bits)
    vectors = [(w, a, psums[i], i % 7 == 0) for i, (w, a, _, _) in enumerate(vectors)]
    await drive_pe(dut, CFG, vectors, w_port, a_port, "code pairs x type pairs", SEED)
