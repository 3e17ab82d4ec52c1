# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tier: PE and array against the golden model, and parameter errors."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden.accum import accumulate
from hdl.array import IntArray
from hdl.int_pe import IntPE
from qarch.configs import IntArrayConfig
from tb.schedule import gemm_schedule
from tests.amaranth_sim import run_array


@pytest.mark.parametrize("policy", ["wrap", "saturate"])
def test_pe_random_vs_golden(policy):
    dut = IntPE(w_bits=4, a_bits=5, w_signed=True, a_signed=False, acc_bits=7, policy=policy)
    rng = random.Random(11)
    vecs = [
        (rng.randint(-8, 7), rng.randint(0, 31), rng.randint(-64, 63), rng.randint(0, 1))
        for _ in range(300)
    ]
    got = []

    async def bench(ctx):
        for w, a, p, o in vecs:
            ctx.set(dut.w, w)
            ctx.set(dut.a, a)
            ctx.set(dut.psum_in, p)
            ctx.set(dut.ovf_in, o)
            await ctx.tick()
            got.append((ctx.get(dut.psum_out), ctx.get(dut.ovf_out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for (w, a, p, o), (v, f) in zip(vecs, got):
        ref = accumulate(torch.tensor([p, w * a]), 7, policy)
        assert (v, f) == (ref.value.item(), int(ref.overflow.item() or o)), (w, a, p, o)


@pytest.mark.parametrize(
    "cfg",
    [
        IntArrayConfig(rows=4, cols=3, w_bits=4, a_bits=8, acc_bits=10, out_bits=11, policy="wrap"),
        IntArrayConfig(
            rows=2,
            cols=4,
            w_bits=3,
            a_bits=4,
            a_signed=False,
            acc_bits=6,
            out_bits=6,
            policy="saturate",
            acc_depth=2,
        ),
    ],
    ids=lambda c: c.slug,
)
def test_array_gemm_vs_golden(cfg):
    g = torch.Generator().manual_seed(5)
    wf, af = cfg.w_fmt, cfg.a_fmt
    w = torch.randint(wf.min, wf.max + 1, (cfg.cols + 1, 3 * cfg.rows + 1), generator=g)
    a = torch.randint(af.min, af.max + 1, (3 * cfg.rows + 1, 2 * cfg.acc_depth + 1), generator=g)
    s = gemm_schedule(cfg, w, a, idle=0.3, seed=5)
    got = run_array(cfg.build(), s.cycles)
    assert len(got) == len(s.expected)
    n_flags = 0
    for (addr, y, oi, oo), e in zip(got, s.expected):
        n = len(e.y)
        assert (addr, y[:n], oi[:n], oo[:n]) == (e.addr, e.y, e.ovf_inner, e.ovf_outer), e.where
        n_flags += sum(e.ovf_inner) + sum(e.ovf_outer)
    assert n_flags > 0  # the narrow accumulators really overflowed


def test_array_latency_is_published():
    assert IntArray(rows=4, cols=8).latency == 12


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        (dict(acc_bits=1), ValueError, "acc_bits must be at least 2, not 1"),
        (dict(acc_bits=63), ValueError, "acc_bits must be at most 62, not 63"),
        (dict(w_bits=1), ValueError, "w_bits must be at least 2, not 1"),
        (dict(a_bits=17), ValueError, "a_bits must be at most 16, not 17"),
        (dict(w_bits=4.0), TypeError, "w_bits must be an int, not float"),
        (dict(w_signed=1), TypeError, "w_signed must be a bool, not int"),
        (dict(policy="clamp"), ValueError, "policy must be one of wrap, saturate, not 'clamp'"),
    ],
)
def test_pe_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        IntPE(**kwargs)
    with pytest.raises(exc, match=msg):
        IntArray(**kwargs)


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        (dict(rows=0), ValueError, "rows must be at least 1, not 0"),
        (dict(cols=65), ValueError, "cols must be at most 64, not 65"),
        (dict(acc_bits=20, out_bits=16), ValueError, "out_bits must be at least 20, not 16"),
        (dict(acc_depth=3), ValueError, "acc_depth must be a power of two, not 3"),
        (dict(acc_depth=1), ValueError, "acc_depth must be at least 2, not 1"),
    ],
)
def test_array_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        IntArray(**kwargs)
    with pytest.raises(exc, match=msg):
        IntArrayConfig(**kwargs)
