"""cocotb: the OliVe pair decoder on its generated Verilog against golden.olive.

4-bit: all 256 pair bytes x both normal types (int4, flint4). 8-bit: all 65,536 pair words
(every identifier / outlier / normal combination). Each lane's (sign, mag, exp) is compared
exactly with ``golden.olive.decode_pair_operands``.
"""

import os
import time

import cocotb
import torch
from cocotb.triggers import Timer

from golden.olive import OliveFormat, decode_pair_operands
from hdl.olive import olive_widths
from qarch.configs import config_from_json
from tb.bench_util import record

CFG = config_from_json(os.environ["QARCH_CONFIG"])
B = CFG.bits


def split(word: int, exp_bits: int, mag_bits: int):
    mag = word & ((1 << mag_bits) - 1)
    exp = (word >> mag_bits) & ((1 << exp_bits) - 1)
    return word >> (mag_bits + exp_bits), mag, exp


@cocotb.test()
async def every_pair_word_every_normal_type(dut):
    mag_bits, exp_bits = olive_widths(B, CFG.e_bits)
    normals = ["int4", "flint4"] if B == 4 else ["int8"]
    words = torch.arange(1 << (2 * B))
    codes = torch.stack([words & ((1 << B) - 1), words >> B], dim=-1).flatten()
    errors, n = [], 0
    t0 = time.monotonic()
    for sel, normal in enumerate(normals):
        ref = decode_pair_operands(codes, OliveFormat(normal, CFG.e_bits))
        want = list(zip(ref.sign.tolist(), ref.mag.tolist(), ref.exp.tolist()))
        if B == 4:
            dut.normal_sel.value = sel
        for w in range(1 << (2 * B)):
            dut.pair.value = w
            await Timer(1, unit="ns")
            for lane, port in enumerate((dut.even, dut.odd)):
                got = split(port.value.to_unsigned(), exp_bits, mag_bits)
                if got != want[2 * w + lane]:
                    errors.append(
                        f"{normal} word {w:0{2 * B}b} lane {lane}: got sign/mag/exp {got}, "
                        f"want {want[2 * w + lane]}"
                    )
            n += 1
    record(f"olive{B} pair decoder words", n, time.monotonic() - t0)
    assert not errors, f"{len(errors)} of {n} mismatches:\n" + "\n".join(errors[:10])
    dut._log.info("%d (normal type, pair word) combinations bit-exact", n)
