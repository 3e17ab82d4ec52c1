"""cocotb: ReCoN on its generated Verilog over all legal pair configurations (5,937 for 8 lanes),
each driven through the router compiler's config word, with random and extreme products and
a random dE; outputs compared with ``golden.microscopiq.recon``. One configuration per cycle,
pipelined (latency 2)."""

import os
import random
import time

import cocotb
from cocotb.triggers import FallingEdge

from golden.microscopiq import compile_router, pair_configurations, recon
from qarch.configs import config_from_json
from tb.bench_util import record, start
from tb.schedule import pack, unpack_signed

CFG = config_from_json(os.environ["QARCH_CONFIG"])
SEED = int(os.environ.get("QARCH_SEED", "1"))
N, P = CFG.lanes, CFG.prod_bits
OUT = P + CFG.b + 1 + 2**CFG.d - 1


@cocotb.test()
async def every_pair_configuration(dut):
    rng = random.Random(SEED)
    lo, hi = -(1 << (P - 1)), (1 << (P - 1)) - 1
    items = []
    for pairs in pair_configurations(N):
        for extreme in (False, True):
            de = rng.randrange(2**CFG.d) if not extreme else 2**CFG.d - 1
            prods = [rng.choice((lo, hi)) if extreme else rng.randint(lo, hi) for _ in range(N)]
            word = compile_router(pairs, de, N, CFG.d)
            items.append((pairs, de, word, prods, recon(prods, pairs, de, CFG.b)))
    await start(dut, ("config", "p"))
    got = []
    t0 = time.monotonic()
    for it in items + [None] * 2:
        if it is not None:
            dut.config.value = it[2]
            dut.p.value = pack(it[3], P)
        await FallingEdge(dut.clk)
        got.append(unpack_signed(dut.q.value.to_unsigned(), OUT, N))
    record(f"recon{N} configurations", len(items), time.monotonic() - t0)
    errors = [
        f"pairs={it[0]} dE={it[1]} p={it[3]}: got {g}, want {it[4]}"
        for it, g in zip(items, got[1:])  # latency 2: item k is read after edge k + 1
        if g != it[4]
    ]
    n_cfg = len(pair_configurations(N))
    assert not errors, f"{len(errors)} of {len(items)} mismatches:\n" + "\n".join(errors[:10])
    dut._log.info("%d configurations x 2 product vectors bit-exact", n_cfg)
