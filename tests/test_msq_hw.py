# amaranth: UnusedElaboratable=no
"""MicroScopiQ hardware in the Amaranth simulator against golden, configs and parameter errors."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden.microscopiq import MsqParams, compile_router, pair_configurations, quantize_msq, recon
from hdl.microscopiq import MsqArray, MsqPE, ReCoN, recon_config_bits
from qarch.configs import PRESETS, MsqArrayConfig, config_from_json
from tb.schedule import msq_schedule
from tests.amaranth_sim import INPUTS, run_array


def test_recon_sampled_configurations():
    dut = ReCoN(lanes=8, prod_bits=13, b=4, d=2)
    rng = random.Random(2)
    items = []
    for pairs in pair_configurations(8)[::13]:
        de, p = rng.randrange(4), [rng.randint(-4096, 4095) for _ in range(8)]
        items.append((compile_router(pairs, de), p, recon(p, pairs, de, 4)))
    outs = []

    async def bench(ctx):
        for word, p, _ in items + [(0, [0] * 8, None)]:
            ctx.set(dut.config.as_value(), word)
            for i in range(8):
                ctx.set(dut.p[i], p[i])
            await ctx.tick()
            outs.append([ctx.get(dut.q[i]) for i in range(8)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [o for o in outs[1:]] == [want for *_, want in items]
    assert recon_config_bits(8, 2) == 38 and dut.switches == 20


@pytest.mark.parametrize("policy,acc,out", [("wrap", 24, 28), ("saturate", 14, 16)])
@pytest.mark.parametrize(
    "shared",
    [{}, {"recon_rows": 4}, {"recon_rows": 2, "recon_stages": 1}, {"recon_stages": 1},
     {"recon_rows": 4, "pipeline": 1, "acc_depth": 8}],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()) or "per-row",
)  # fmt: skip
@pytest.mark.parametrize("idle", [0.0, 0.2])
def test_msq_array_gemm_vs_golden(policy, acc, out, idle, shared):
    cfg = MsqArrayConfig(rows=4, cols=8, acc_bits=acc, out_bits=out, policy=policy, **shared)
    # outliers in several rows of most tiles (a shared ReCoN stalls 1 or 2 cycles), dE up to 3
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 10, generator=g)
    w = torch.where(torch.rand(16, 10, generator=g) < 0.12, w * 300, w)
    q = quantize_msq(w, MsqParams(b=4, m=8, M=16, T=4))
    assert q.n_outliers > 0 and int(q.de.max()) > 0
    x = torch.randint(-128, 128, (10, 6), generator=g)
    s = msq_schedule(cfg, q, x, idle=idle)
    timing = []
    got = run_array(cfg.build(), s.cycles, inputs=(*INPUTS, "w_cfg", "a_shift"), timing=timing)
    assert len(got) == len(s.expected)
    for (addr, y, oi, oo), e in zip(got, s.expected):
        assert (addr, y, oi, oo) == (e.addr, e.y, e.ovf_inner, e.ovf_outer), e.where
    if not idle:
        assert timing == [cfg.cycles(6, 10, 16, **s.model_args)]
        if cfg.recon_rows > 1:  # the shared ReCoN stalled somewhere
            assert cfg.cycles(6, 10, 16, **s.model_args) > cfg.cycles(6, 10, 16)


def test_shared_recon_spacing_is_needed():
    """One cycle less between the vectors of a stalling tile puts two outlier rows on the
    shared ReCoN in the same cycle, and the outputs go wrong."""
    cfg = MsqArrayConfig(rows=4, cols=8, recon_rows=4)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 10, generator=g)
    w = torch.where(torch.rand(16, 10, generator=g) < 0.12, w * 300, w)
    q = quantize_msq(w, MsqParams(b=4, m=8, M=16, T=4))
    x = torch.randint(-128, 128, (10, 6), generator=g)
    inputs = (*INPUTS, "w_cfg", "a_shift")
    ok = msq_schedule(cfg, q, x)
    bad = msq_schedule(cfg, q, x, slack=-1)
    assert len(bad.cycles) < len(ok.cycles)
    want = [e.y for e in ok.expected]
    assert [y for _a, y, _i, _o in run_array(cfg.build(), ok.cycles, inputs=inputs)] == want
    assert [y for _a, y, _i, _o in run_array(cfg.build(), bad.cycles, inputs=inputs)] != want


def test_configs_round_trip_and_latency():
    for name in ("msq-pe", "msq-recon8", "msq-array8x8-p32"):
        assert config_from_json(PRESETS[name].to_json()) == PRESETS[name]
    assert MsqArray(rows=8, cols=8).latency == 12
    for name in ("msq-array8x8-p32-shared", "msq-array8x8-p32-stream"):
        cfg = PRESETS[name]
        assert config_from_json(cfg.to_json()) == cfg
        # pipeline 2 (-stream): + the routed-addend and shift registers, the split P_O add
        extra = 3 if cfg.pipeline == 2 else 0
        assert cfg.build().latency == cfg.latency == 8 + 2 + cfg.recon_stages + extra


def test_shared_recon_spacing():
    """The least spacing that keeps a group's outlier rows apart (distinct modulo s)."""
    cfg = MsqArrayConfig(rows=8, cols=8, recon_rows=8)
    row = [False] * 8
    assert cfg.spacing(row) == 1
    assert cfg.spacing([True] + row[1:]) == 1  # one outlier row: no stall
    assert cfg.spacing([True, True] + row[2:]) == 2  # rows 0, 1
    assert cfg.spacing([True, False, True] + row[3:]) == 3  # rows 0, 2: even s collide
    assert cfg.spacing([True, False, False, False, True] + row[5:]) == 3  # rows 0, 4
    assert cfg.spacing([True, False, True, True] + row[4:]) == 4  # rows 0, 2, 3
    halves = cfg.replace(recon_rows=4)  # rows 0 and 4 in different groups: no stall
    assert halves.spacing([True, False, False, False, True] + row[5:]) == 1
    assert MsqArrayConfig(rows=8, cols=8).spacing([True] * 8) == 1  # a ReCoN per row
    # the stalls enter the cycle count through the tile's spacing: 4 vectors, one tile
    stall = [[[True, False, True] + row[3:]]]
    assert cfg.cycles(4, 8, 8, outliers=stall) - cfg.cycles(4, 8, 8) == 3 * (3 - 1)


@pytest.mark.parametrize(
    "cls,kwargs,msg",
    [
        (MsqPE, dict(a_bits=1), "a_bits must be at least 2, not 1"),
        (ReCoN, dict(lanes=6), "lanes must be a power of two, not 6"),
        (ReCoN, dict(b=3), "b must be one of 2, 4, 8"),
        (MsqArray, dict(cols=12), r"cols must give a multiple of m = 8 lanes \(1 per column\)"),
        (MsqArrayConfig, dict(cols=6, b=2), r"multiple of m = 8 lanes \(2 per column\), not 6"),
        (MsqArray, dict(b=3), "b must be one of 2, 4"),
        (MsqArrayConfig, dict(b=8), "b must be 2 or 4, not 8"),
        (MsqArrayConfig, dict(acc_depth=3), "acc_depth must be a power of two, not 3"),
        (MsqArrayConfig, dict(recon_rows=3), "recon_rows must divide rows = 8, not 3"),
        (MsqArray, dict(recon_stages=3), "recon_stages must be at most 2, not 3"),
        (MsqArrayConfig, dict(acc_depth=512), "acc_depth above 256 needs pipeline >= 1"),
        (ReCoN, dict(stages=0), "stages must be at least 1, not 0"),
    ],
)
def test_parameter_errors(cls, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        cls(**kwargs)
