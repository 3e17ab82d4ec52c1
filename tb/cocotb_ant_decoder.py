"""cocotb: the ANT decoder on its generated Verilog, exhaustive over every code x type select.

Compared with ``golden.ant.AntType.decode``: the decoded value exactly, and mag / exp exactly;
the sign bit where the magnitude is non-zero (a negative-zero code may decode either sign).
"""

import os

import cocotb
import torch
from cocotb.triggers import Timer

from golden.ant import ANT_KINDS, AntType
from qarch.configs import config_from_json

CFG = config_from_json(os.environ["QARCH_CONFIG"])
B = CFG.bits


@cocotb.test()
async def every_code_every_type(dut):
    exp_bits = len(dut.operand) - B - 1
    errors, n = [], 0
    for kind_id, kind in enumerate(ANT_KINDS):
        for signed in (True, False):
            try:
                t = AntType(kind, B, signed)
            except ValueError:
                continue  # a width the type does not exist at
            ref = t.decode(torch.arange(2**B))
            dut.type_sel.value = kind_id | (int(signed) << 2)
            for c in range(2**B):
                dut.code.value = c
                await Timer(1, unit="ns")
                word = dut.operand.value.to_unsigned()
                mag, exp = word & (2**B - 1), (word >> B) & (2**exp_bits - 1)
                sign = word >> (B + exp_bits)
                want = (ref.sign[c].item(), ref.mag[c].item(), ref.exp[c].item())
                got_v = (-1 if sign else 1) * (mag << exp)
                ok = (mag, exp) == want[1:] and got_v == ref.value()[c].item()
                if ok and mag and sign != want[0]:
                    ok = False
                if not ok:
                    errors.append(
                        f"{CFG.slug} {t.name} code {c:0{B}b}: got sign/mag/exp "
                        f"{sign}/{mag}/{exp}, want {want[0]}/{want[1]}/{want[2]}"
                    )
                n += 1
    assert not errors, f"{len(errors)} of {n} mismatches:\n" + "\n".join(errors[:10])
    dut._log.info("%d (type, code) pairs bit-exact", n)
