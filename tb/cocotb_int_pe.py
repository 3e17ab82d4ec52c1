"""cocotb tests for the INT PE on its generated Verilog, bit for bit against golden/.

Every vector is (w, a, psum_in, ovf_in); the expected (psum_out, ovf_out) is one step of
``golden.accum.accumulate``: the register holds psum_in, then adds w * a. Inputs are driven on the
falling edge; the result is read one falling edge later (latency 1).
"""

import os
import random
import time

import cocotb
import torch
from cocotb.triggers import FallingEdge

from golden.accum import accumulate
from golden.numerics import IntFormat
from qarch.config import config_from_json
from tb.bench_util import record, start

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
P = CFG.acc_bits
LO, HI = -(2 ** (P - 1)), 2 ** (P - 1) - 1


def golden(w, a, psum, ovf_in):
    w, a, psum = (torch.tensor(x, dtype=torch.int64) for x in (w, a, psum))
    # psum enters as the register value: accumulating [psum, w*a] from 0 never overflows on
    # the first term (psum is in range), so the flag is exactly the second addition's.
    res = accumulate(torch.stack([psum, w * a], dim=-1), P, CFG.policy)
    return res.value.tolist(), (res.overflow | torch.tensor(ovf_in, dtype=torch.bool)).tolist()


async def drive(dut, vectors, label):
    """Apply (w, a, psum, ovf) vectors back to back; compare every output bit for bit."""
    await start(dut, ("w", "a", "psum_in", "ovf_in"))
    w, a, ps, oi = (list(x) for x in zip(*vectors))
    exp_v, exp_o = golden(w, a, ps, oi)
    wf, af = CFG.w_fmt, CFG.a_fmt
    w_codes = wf.encode(torch.tensor(w)).tolist()
    a_codes = af.encode(torch.tensor(a)).tolist()
    mask = (1 << P) - 1
    await FallingEdge(dut.clk)
    t0 = time.monotonic()
    errors = []
    for i in range(len(vectors) + 1):
        if i:
            got_v = dut.psum_out.value.to_signed()
            got_o = int(dut.ovf_out.value)
            j = i - 1
            if (got_v, got_o) != (exp_v[j], int(exp_o[j])):
                errors.append(
                    f"{CFG.slug} {label} seed={SEED} #{j}: w={w[j]} a={a[j]} psum_in={ps[j]} "
                    f"ovf_in={oi[j]}: got {got_v & mask:0{P}b}/{got_o}, "
                    f"want {exp_v[j] & mask:0{P}b}/{int(exp_o[j])} ({got_v} vs {exp_v[j]})"
                )
        if i < len(vectors):
            dut.w.value = w_codes[i]
            dut.a.value = a_codes[i]
            dut.psum_in.value = ps[i] & mask
            dut.ovf_in.value = oi[i]
        await FallingEdge(dut.clk)
    dt = time.monotonic() - t0
    assert not errors, f"{len(errors)} mismatches of {len(vectors)}:\n" + "\n".join(errors[:10])
    dut._log.info(
        "%s: %d vectors bit-exact, %.0f vectors/s", label, len(vectors), len(vectors) / dt
    )
    record(label, len(vectors), dt)


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
    psums = [0, HI, LO, 1, -1]
    vectors = [
        (x, y, psums[i % len(psums)] if i % 3 else rng.randint(LO, HI), i % 7 == 0)
        for i, (x, y) in enumerate(pairs)
    ]
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
