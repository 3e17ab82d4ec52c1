# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tier: PE and array against the golden model, and parameter errors."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden.accum import accumulate, gemm
from hdl.array import IntArray
from hdl.int_pe import IntPE
from qarch.configs import IntArrayConfig, IntPEConfig
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


@pytest.mark.parametrize("acc_bits", [6, 12])
@pytest.mark.parametrize("policy", ["wrap", "saturate"])
@pytest.mark.parametrize("pipeline", [1, 2])
@pytest.mark.parametrize("w_signed,a_signed", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("w_bits,a_bits", [(3, 2), (3, 5), (2, 3), (5, 3), (4, 4)])
def test_pipelined_pe_every_operand_pair(
    pipeline, w_signed, a_signed, w_bits, a_bits, policy, acc_bits
):
    """The pipelined PE (the product registered; with ``pipeline`` = 2 the multiplier split
    into 2-bit slices of w, odd widths too) on every operand pair, ``psum_in`` arriving
    ``pipeline`` cycles after the operands, as in the arrays (and the sticky flags a cycle
    later still with ``pipeline`` = 2), at 6 bits and at 12 (partial sums near the limits
    and near 0, where products narrower than the sum take the sign-told split add)."""
    P = acc_bits
    dut = IntPE(w_bits=w_bits, a_bits=a_bits, w_signed=w_signed, a_signed=a_signed, acc_bits=P,
                pipeline=pipeline, policy=policy)  # fmt: skip
    assert dut.latency == 1 + pipeline
    half = 1 << (w_bits - 1)
    wr = range(-half, half) if w_signed else range(2 * half)
    ar = range(-(2 ** (a_bits - 1)), 2 ** (a_bits - 1)) if a_signed else range(2**a_bits)
    rng = random.Random(a_bits)
    lo, hi = -(2 ** (P - 1)), 2 ** (P - 1) - 1

    def psum() -> int:  # uniform, or within 8 of a limit or of 0 where the range is wide
        if P <= 6 or rng.random() < 0.4:
            return rng.randint(lo, hi)
        return rng.choice([hi - rng.randint(0, 8), lo + rng.randint(0, 8), rng.randint(-8, 8)])

    vecs = [(w, a, psum(), rng.randint(0, 1)) for w in wr for a in ar]
    got = []

    lag = int(pipeline >= 2)  # the flag a cycle behind the partial sum

    async def bench(ctx):
        sums = []
        for t in range(len(vecs) + pipeline + lag):
            w, a, _, _ = vecs[min(t, len(vecs) - 1)]
            ctx.set(dut.w, w)
            ctx.set(dut.a, a)
            if pipeline <= t < len(vecs) + pipeline:
                ctx.set(dut.psum_in, vecs[t - pipeline][2])
            if pipeline + lag <= t:
                ctx.set(dut.ovf_in, vecs[t - pipeline - lag][3])
            await ctx.tick()
            if pipeline <= t < len(vecs) + pipeline:
                sums.append(ctx.get(dut.psum_out))
            if pipeline + lag <= t:
                got.append((sums[t - pipeline - lag], ctx.get(dut.ovf_out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(vecs)
    for (w, a, p, o), (v, f) in zip(vecs, got):
        ref = accumulate(torch.tensor([p, w * a]), P, policy)
        assert (v, f) == (ref.value.item(), int(ref.overflow.item() or o)), (w, a, p, o)
    assert any(f for _, f in got) and not all(f for _, f in got)
    if P > 6:  # sums that leave the range themselves, not only flags passed down
        assert any(accumulate(torch.tensor([p, w * a]), P, policy).overflow.item()
                   for w, a, p, _ in vecs)  # fmt: skip


@pytest.mark.parametrize("w_signed,a_signed", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("w_bits,a_bits,acc_bits", [(3, 2, 12), (2, 3, 10), (4, 4, 16)])
def test_skewed_pe_every_operand_pair(w_bits, a_bits, acc_bits, w_signed, a_signed):
    """``pipeline`` = 3: the partial sum in two halves a cycle apart. The operands at step t,
    ``psum_in``'s low half at t + 2 and its high half at t + 3 (each half of a different
    vector at any one step), ``ovf_in`` at t + 4; ``psum_out``'s halves and ``ovf_out`` a step
    after each. Every operand pair, partial sums near both limits and near 0."""
    P, h = acc_bits, acc_bits // 2
    dut = IntPE(w_bits=w_bits, a_bits=a_bits, w_signed=w_signed, a_signed=a_signed,
                acc_bits=P, pipeline=3)  # fmt: skip
    assert dut.latency == 4
    wr = range(-(2 ** (w_bits - 1)), 2 ** (w_bits - 1)) if w_signed else range(2**w_bits)
    ar = range(-(2 ** (a_bits - 1)), 2 ** (a_bits - 1)) if a_signed else range(2**a_bits)
    rng = random.Random(P)
    lo_lim, hi_lim = -(2 ** (P - 1)), 2 ** (P - 1) - 1
    near = [hi_lim, lo_lim, 0, -1, 1, 2**h - 1, 2**h, -(2**h)]  # limits, 0, the half boundary

    def psum() -> int:
        if rng.random() < 0.4:
            return rng.randint(lo_lim, hi_lim)
        return max(lo_lim, min(hi_lim, rng.choice(near) + rng.randint(-6, 6)))

    vecs = [(w, a, psum(), rng.randint(0, 1)) for w in wr for a in ar]
    vecs += [(w, a, lim, 0) for w in wr for a in ar for lim in (lo_lim, hi_lim)]  # overflows
    mask_lo, n = (1 << h) - 1, len(vecs)
    lo_got, hi_got, ovf_got = {}, {}, {}

    async def bench(ctx):
        for t in range(n + 5):
            w, a, _, _ = vecs[min(t, n - 1)]
            ctx.set(dut.w, w)
            ctx.set(dut.a, a)
            p_lo = vecs[t - 2][2] & mask_lo if 0 <= t - 2 < n else 0
            p_hi = vecs[t - 3][2] >> h if 0 <= t - 3 < n else 0
            word = (p_hi << h) | p_lo
            ctx.set(dut.psum_in, word - (1 << P) if word >> (P - 1) else word)
            ctx.set(dut.ovf_in, vecs[t - 4][3] if 0 <= t - 4 < n else 0)
            await ctx.tick()
            out = ctx.get(dut.psum_out) & ((1 << P) - 1)
            lo_got[t - 2] = out & mask_lo
            hi_got[t - 3] = out >> h
            ovf_got[t - 4] = ctx.get(dut.ovf_out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    flags = 0
    for j, (w, a, p, o) in enumerate(vecs):
        ref = accumulate(torch.tensor([p, w * a]), P, "wrap")
        v = ref.value.item() & ((1 << P) - 1)
        want = (v & mask_lo, v >> h, int(ref.overflow.item() or o))
        assert (lo_got[j], hi_got[j], ovf_got[j]) == want, (w, a, p, o)
        flags += ref.overflow.item()
    assert flags  # sums that leave the range themselves


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
    # edge register (pipeline >= 1 or double buffering) + product register (pipeline 2)
    for db in (False, True):
        for pl in (0, 1, 2, 3):
            cfg = IntArrayConfig(rows=4, cols=8, double_buffer=db, pipeline=pl)
            # product register and split add (2); the split multiplier and the skewed halves
            # of the partial sum (3; its memory read register is issued a cycle earlier and
            # adds no cycle)
            want = 12 + int(db or pl >= 1) + 2 * int(pl >= 2) + 2 * int(pl == 3)
            assert cfg.build().latency == cfg.latency == want


def _streams_golden_in_published_cycles(cfg, w, a):
    """Run ``w @ a`` through the array with and without idle cycles (the benches' schedule):
    every output word and flag golden, exactly ``cycles(M, K, N)`` without idle cycles.
    Returns the last schedule (its expected outputs carry the flags)."""
    (n, k), m = w.shape, a.shape[1]
    for idle in (0.0, 0.3):
        s = gemm_schedule(cfg, w, a, idle=idle, seed=3)
        timing = []
        got = run_array(cfg.build(), s.cycles, timing=timing)
        assert [g[0] for g in got] == [e.addr for e in s.expected]
        for (_addr, y, oi, oo), e in zip(got, s.expected):
            r = len(e.y)
            assert (y[:r], oi[:r], oo[:r]) == (e.y, e.ovf_inner, e.ovf_outer), e.where
        if not idle:
            assert timing == [cfg.cycles(m, k, n)]
    return s


STREAMS = [
    dict(rows=4, cols=4, acc_depth=4),
    dict(rows=4, cols=4, acc_depth=4, double_buffer=True),
    dict(rows=4, cols=4, acc_depth=8, pipeline=1),
    dict(rows=4, cols=4, acc_depth=8, pipeline=2, double_buffer=True),
    dict(rows=3, cols=5, acc_depth=2, pipeline=1, double_buffer=True),  # C > R
    dict(rows=5, cols=2, acc_depth=2, pipeline=2, policy="saturate"),  # R > C
    dict(rows=4, cols=4, acc_depth=512, pipeline=1, double_buffer=True),  # a memory
    dict(rows=1, cols=1, acc_depth=2, pipeline=2),  # the split add's every-other-cycle rule
    dict(rows=1, cols=1, acc_depth=2, pipeline=1, policy="saturate"),  # transparent reads
    # pipeline 3: the read register and its forwarding (1 x 1: an entry every other cycle)
    dict(rows=4, cols=4, acc_depth=8, pipeline=3, double_buffer=True),
    dict(rows=5, cols=2, acc_depth=2, pipeline=3, policy="saturate"),
    dict(rows=3, cols=5, acc_depth=512, pipeline=3),
    dict(rows=1, cols=1, acc_depth=2, pipeline=3),
    dict(rows=1, cols=1, acc_depth=4, pipeline=3, policy="saturate", double_buffer=True),
]


@pytest.mark.parametrize("opts", STREAMS, ids=lambda o: IntArrayConfig(**o).slug)
@pytest.mark.parametrize("shape", [(5, 13, 9), (4, 4, 1), (4, 8, 1), (9, 7, 3)])
def test_stream_schedule_cycles_and_outputs(opts, shape):
    """Back-to-back passes (and single-vector passes, where the reload rules bind) give the
    golden outputs in exactly the published ``cycles(M, K, N)``; with idle cycles too."""
    cfg = IntArrayConfig(w_bits=4, a_bits=8, acc_bits=9, out_bits=10, **opts)
    n, k, m = shape
    g = torch.Generator().manual_seed(n * 100 + k)
    w = torch.randint(-8, 8, (n, k), generator=g)
    a = torch.randint(-128, 128, (k, m), generator=g)
    s = _streams_golden_in_published_cycles(cfg, w, a)
    if shape == (5, 13, 9):  # narrow accumulators: both stages overflow
        assert any(any(e.ovf_inner) for e in s.expected)
        assert any(any(e.ovf_outer) for e in s.expected)


SKEWED = [
    # pipeline 3 with PEs that add in skewed halves (wrap, products of at most P/2 + 1 bits)
    dict(rows=16, cols=2, w_bits=2, a_bits=2, w_signed=False, a_signed=False, acc_bits=8,
         out_bits=9, acc_depth=4, double_buffer=True),  # fmt: skip
    dict(rows=3, cols=5, w_bits=3, a_bits=3, acc_bits=12, out_bits=12, acc_depth=512),
    dict(rows=1, cols=1, w_bits=2, a_bits=2, acc_bits=8, out_bits=8, acc_depth=2),
]


@pytest.mark.parametrize("opts", SKEWED, ids=lambda o: IntArrayConfig(pipeline=3, **o).slug)
@pytest.mark.parametrize("shape", [(5, 37, 9), (4, 4, 1), (3, 16, 3)])
def test_skewed_arrays_are_golden_in_the_published_cycles(opts, shape):
    """INT pipeline 3 whose PEs add the partial sum in halves a cycle apart (the low half
    re-aligned at the bottom): golden outputs and flags, with and without idle cycles, in
    exactly ``cycles(M, K, N)``; a 16-row column overflows its 8-bit P_I."""
    cfg = IntArrayConfig(pipeline=3, **opts)
    assert cfg.build().skewed_pes
    n, k, m = shape
    g = torch.Generator().manual_seed(n * 100 + k)
    wf, af = cfg.w_fmt, cfg.a_fmt
    w = torch.randint(wf.min, wf.max + 1, (n, k), generator=g)
    a = torch.randint(af.min, af.max + 1, (k, m), generator=g)
    w[0], a[:, 0] = wf.max, af.max  # one output of maximal products: the 16-row column wraps
    s = _streams_golden_in_published_cycles(cfg, w, a)
    if cfg.rows == 16 and shape == (5, 37, 9):
        assert any(any(e.ovf_inner) for e in s.expected)


CHAINED = [
    dict(rows=4, cols=3, tile=12, acc_depth=4),
    dict(rows=4, cols=3, tile=8, acc_depth=2, double_buffer=True, policy="saturate"),
    dict(rows=2, cols=5, tile=6, acc_depth=8, pipeline=1),  # C > R
    dict(rows=3, cols=2, tile=9, acc_depth=4, pipeline=2, double_buffer=True),
    dict(rows=5, cols=2, tile=10, acc_depth=2, pipeline=2, policy="saturate"),
    dict(rows=1, cols=1, tile=3, acc_depth=2, pipeline=1),  # the chain rule binds every pass
]


@pytest.mark.parametrize("opts", CHAINED, ids=lambda o: IntArrayConfig(**o).slug)
@pytest.mark.parametrize("shape", [(5, 29, 9), (3, 13, 1), (2, 7, 4)])
def test_chained_tiles_are_golden_gemm_with_tile_T(opts, shape):
    """``tile`` = T > R: each column's P_I register runs on over T / R K tiles, the outputs
    and both flags are ``golden.accum.gemm(..., tile=T)`` (K not a multiple of R or T, narrow
    accumulators that wrap or saturate mid-tile), in exactly the published cycles."""
    cfg = IntArrayConfig(w_bits=4, a_bits=8, acc_bits=11, out_bits=12, **opts)
    n, k, m = shape
    g = torch.Generator().manual_seed(n * 100 + k)
    w = torch.randint(-8, 8, (n, k), generator=g)
    a = torch.randint(-128, 128, (k, m), generator=g)
    _streams_golden_in_published_cycles(cfg, w, a)
    if shape == (5, 29, 9):
        ref = gemm(w, a, inner_bits=11, tile=cfg.t, outer_bits=12, policy=cfg.policy)
        # the flags are T's, not R's: some outputs overflow over T rows but in no R-row tile
        by_r = gemm(w, a, inner_bits=11, tile=cfg.rows, outer_bits=12, policy=cfg.policy)
        assert (ref.ovf_inner & ~by_r.ovf_inner).any()


def test_chained_tiles_rule_is_tight():
    """An entry's next K tile one cycle earlier than R + 1 after its last corrupts the
    outputs: the rule in the period is the array's real limit."""
    cfg = IntArrayConfig(rows=4, cols=2, tile=8, acc_depth=2, double_buffer=True)
    g = torch.Generator().manual_seed(4)
    w = torch.randint(-8, 8, (2, 8), generator=g)
    a = torch.randint(-128, 128, (8, 2), generator=g)
    ok = gemm_schedule(cfg, w, a)
    got = run_array(cfg.build(), ok.cycles)
    assert [y for _, y, _, _ in got] == [e.y for e in ok.expected]
    # period: the load port's R = 4 against the chain rule's R + 1 = 5
    assert cfg.period(2) == 4 and cfg.cycles(2, 8, 2) == 1 + 5 + 2 + cfg.latency
    bad = gemm_schedule(cfg, w, a, slack=-1)
    assert len(bad.cycles) == len(ok.cycles) - 1
    got = run_array(cfg.build(), bad.cycles)
    assert [y for _, y, _, _ in got] != [e.y for e in ok.expected]


@pytest.mark.parametrize("double_buffer", [False, True])
def test_stream_schedule_is_tight(double_buffer):
    """One cycle less between passes than the reload rule allows corrupts the outputs: the
    published period is the array's real limit, not a padded one."""
    # R < C and one vector per pass: the reload rule, not the load port, sets the period.
    cfg = IntArrayConfig(rows=2, cols=4, acc_depth=2, double_buffer=double_buffer)
    g = torch.Generator().manual_seed(2)
    w = torch.randint(-8, 8, (4, 8), generator=g)
    a = torch.randint(-128, 128, (8, 1), generator=g)
    ok = gemm_schedule(cfg, w, a)
    assert run_array(cfg.build(), ok.cycles)[-1][1] == ok.expected[-1].y
    bad = gemm_schedule(cfg, w, a, slack=-1)
    assert len(bad.cycles) < len(ok.cycles)
    assert run_array(cfg.build(), bad.cycles)[-1][1] != bad.expected[-1].y


def test_utilisation_formula():
    """Today's drain schedule idled 86 % of an 8x8 array; the streaming schedule with deep
    accumulators keeps it busy on a SmolLM2 layer (prefill of 512 vectors)."""
    cfg = IntArrayConfig(rows=8, cols=8, w_bits=8)
    assert cfg.utilisation(4, 8 * 384, 8) > 0.36  # single-buffered wavefront: B / (B + C - 1)
    deep = cfg.replace(acc_depth=512, pipeline=1, double_buffer=True)
    assert deep.utilisation(512, 576, 576) > 0.99
    assert deep.cycles(512, 8, 8) == 1 + 512 + deep.latency


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
        (dict(acc_depth=512), ValueError, "acc_depth above 256 needs pipeline >= 1"),
        (dict(acc_depth=8192, pipeline=1), ValueError, "acc_depth must be at most 4096"),
        (dict(pipeline=4), ValueError, "pipeline must be at most 3, not 4"),
        (dict(double_buffer=1), TypeError, "double_buffer must be a bool, not int"),
        (dict(rows=4, tile=6), ValueError, r"tile must be a multiple of rows \(4\), not 6"),
        (dict(rows=4, tile=2), ValueError, "tile must be at least 4, not 2"),
        (dict(tile=8, pipeline=3), ValueError, "tile > rows takes pipeline 0..2, not pipeline=3"),
        (dict(tile=8, acc_depth=512, pipeline=1), ValueError, "acc_depth must be at most 256"),
    ],
)
def test_array_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        IntArray(**kwargs)
    with pytest.raises(exc, match=msg):
        IntArrayConfig(**kwargs)


def test_pipelined_serial_wrapper_is_the_flat_one_delayed():
    """The synthesis harness's registered XOR tree (pipeline-3 cores) gives the flat XOR's
    ``dout`` stream, later by its number of tree stages."""
    from hdl.wrapper import SerialWrapper

    def stream(pipelined):
        dut = SerialWrapper(IntPE(w_bits=4, a_bits=8, acc_bits=12), pipelined=pipelined)
        rng, out = random.Random(4), []

        async def bench(ctx):
            for _ in range(400):
                ctx.set(dut.din, rng.randint(0, 1))
                await ctx.tick()
                out.append(ctx.get(dut.dout))

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return out

    flat, tree = stream(False), stream(True)
    n, stages = 12 + 1, 0  # the PE's outputs: a 12-bit sum and its flag
    while n > 4:
        n, stages = (n + 3) // 4, stages + 1
    assert stages == 1 and any(flat)
    assert tree[stages:] == flat[: len(flat) - stages]


@pytest.mark.parametrize(
    "kwargs",
    [dict(policy="saturate"), dict(w_bits=8, a_bits=8, acc_bits=16), dict(pipeline=4)],
)
def test_skewed_pe_parameter_errors(kwargs):
    """PE pipeline 3 adds in skewed halves only with wrap and products of at most P/2 + 1
    bits; the arrays then build pipeline-2 PEs (and delay the whole sum), a PE says so."""
    args = dict(w_bits=4, a_bits=8, acc_bits=32, pipeline=3) | kwargs
    msg = "pipeline must be at most 3" if args["pipeline"] == 4 else "takes policy wrap and"
    with pytest.raises(ValueError, match=msg):
        IntPE(**args)
    with pytest.raises(ValueError, match=msg):
        IntPEConfig(**args)
    if args["pipeline"] == 3:  # the array with that PE's parameters builds: pipeline-2 PEs
        arr = IntArrayConfig(**{k: v for k, v in args.items() if k != "pipeline"}, pipeline=3)
        assert not arr.build().skewed_pes and arr.latency == arr.build().latency
