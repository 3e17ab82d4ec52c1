"""MicroScopiQ golden model: formats, quantizer rules, metadata/EBW, integer semantics, ReCoN
and the Benes router compiler."""

import itertools
import random

import pytest
import torch

from golden.microscopiq import (
    KIND_HI,
    KIND_INLIER,
    KIND_LO,
    LANE_MERGE,
    LANE_PASS,
    LANE_ZERO,
    MsqParams,
    benes_apply,
    benes_route,
    benes_switch_count,
    compile_router,
    decode_router,
    hi_lo,
    inlier_code,
    inlier_value,
    join_hi_lo,
    msq_gemm,
    pair_configurations,
    quantize_module_msq,
    quantize_msq,
    recon,
    round_half_away,
)


@pytest.mark.parametrize("b", [2, 4, 8])
def test_hi_lo_round_trips_every_outlier(b):
    omax = 2 ** (2 * b - 1) - 1
    o = torch.arange(-omax, omax + 1)
    hi, lo = hi_lo(o, b)
    assert torch.equal(join_hi_lo(hi, lo, b), o)
    assert int(hi.min()) >= -(2 ** (b - 1)) and int(hi.max()) <= 2 ** (b - 1) - 1
    assert int(lo.min()) == 0 and int(lo.max()) == 2**b - 1


@pytest.mark.parametrize("b", [2, 4])
def test_inlier_sign_magnitude(b):
    q = torch.arange(-(2 ** (b - 1) - 1), 2 ** (b - 1))
    assert torch.equal(inlier_value(inlier_code(q, b), b), q)
    assert inlier_code(torch.tensor([-1]), b).item() == (1 << (b - 1)) | 1
    assert round_half_away(torch.tensor([0.5, -0.5, 1.5, -2.5])).tolist() == [1, -1, 2, -3]


def _heavy(n, k, seed, frac=0.02, scale=12.0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    mask = torch.rand(n, k, generator=g) < frac
    return torch.where(mask, w * scale, w)


@pytest.mark.parametrize("b", [2, 4])
def test_quantizer_rules(b):
    p = MsqParams(b=b, m=8, M=16, T=16)
    w = _heavy(32, 40, 0)
    q = quantize_msq(w, p)
    assert q.n_outliers > 0
    n_hi = (q.kind == KIND_HI).reshape(-1, 8, 40).sum(1)
    n_lo = (q.kind == KIND_LO).reshape(-1, 8, 40).sum(1)
    assert torch.equal(n_hi, n_lo) and int(n_hi.max()) <= 4
    for r, c in torch.nonzero(q.kind == KIND_HI).tolist():
        j = int(q.partner[r, c])
        assert j // 8 == r // 8 and q.kind[j, c] == KIND_LO  # partner in the same MiB
        # pruning never removes an outlier: the pruned partner is the smaller weight
        assert abs(float(w[j, c])) <= abs(float(w[r, c]))
    for mib, c in torch.nonzero(n_hi).tolist():
        rows = slice(8 * mib, 8 * mib + 8)
        kinds, mags = q.kind[rows, c], w[rows, c].abs()
        pruned, kept = mags[kinds == KIND_LO], mags[kinds == KIND_INLIER]
        if kept.numel():
            assert float(pruned.max()) <= float(kept.min())  # least salient inliers pruned
    # dequantized values: inliers q 2^E, outliers o 2^(E + dE), partners 0
    assert torch.all(q.dequant[q.kind == KIND_LO] == 0)
    e = q.exp.repeat_interleave(16, 0).repeat_interleave(16, 1)[:, :40]
    inl = q.kind == KIND_INLIER
    qv = inlier_value(q.codes, b)
    assert torch.equal(q.dequant[inl], (qv.double() * 2.0**e)[inl])
    assert int(qv.abs().max()) <= 2 ** (b - 1) - 1


def test_no_outliers_is_plain_mx_int():
    p = MsqParams(b=4, m=8, M=16, T=8, k_sigma=1e9)
    w = _heavy(32, 24, 1)
    q = quantize_msq(w, p)
    assert q.n_outliers == 0 and torch.all(q.kind == KIND_INLIER)
    for g, t in itertools.product(range(2), range(3)):
        blk = w[16 * g : 16 * g + 16, 8 * t : 8 * t + 8].double()
        e = int(torch.floor(torch.log2(blk.abs().max()))) - 2
        assert int(q.exp[g, t]) == e
        ref = round_half_away(blk / 2.0**e).clamp(-7, 7) * 2.0**e
        assert torch.equal(q.dequant[16 * g : 16 * g + 16, 8 * t : 8 * t + 8], ref)
    # metadata: an 8-bit E per MaB and one flag per MiB
    assert q.metadata_bits == 6 * 8 + 4 * 24
    assert q.ebw == pytest.approx(4 + (48 + 96) / (32 * 24))


def test_exponent_search_picks_the_lowest_inlier_error_of_three():
    # one MaB of inliers whose max maps to 4.0 at the MX exponent E = floor(log2 max) - 2 = 0:
    # every other value sits near 0.5 * 2^0, so E - 1 resolves them exactly and clips only the max
    p = MsqParams(b=4, m=8, M=8, T=8, k_sigma=1e9)
    w = torch.full((8, 8), 0.5)
    w[0, 0] = 4.0
    mx = quantize_msq(w, p)
    se = quantize_msq(w, MsqParams(b=4, m=8, M=8, T=8, k_sigma=1e9, e_search=True))
    assert int(mx.exp[0, 0]) == 0 and int(se.exp[0, 0]) == -1
    wd = w.double()
    err = {e: float(((round_half_away(wd / 2.0**e).clamp(-7, 7) * 2.0**e - wd) ** 2).sum())
           for e in (-1, 0, 1)}  # fmt: skip
    assert min(err, key=err.get) == -1
    assert float(((se.dequant - w) ** 2).sum()) == pytest.approx(err[-1])
    # on a heavy-tailed tensor without outliers (the search scores the MaB's non-outliers):
    # never worse than the MX exponent in any MaB, never more than one away
    w = _heavy(64, 128, 9)
    mx = quantize_msq(w, MsqParams(b=4, M=16, T=32, k_sigma=1e9))
    se = quantize_msq(w, MsqParams(b=4, M=16, T=32, k_sigma=1e9, e_search=True))
    assert int((se.exp - mx.exp).abs().max()) == 1 and bool((se.exp != mx.exp).any())
    for g, t in itertools.product(range(4), range(4)):
        blk = (slice(16 * g, 16 * g + 16), slice(32 * t, 32 * t + 32))
        e_mx = ((mx.dequant[blk] - w[blk].double()) ** 2).sum()
        e_se = ((se.dequant[blk] - w[blk].double()) ** 2).sum()
        assert e_se <= e_mx and (e_se < e_mx or bool(se.exp[g, t] == mx.exp[g, t]))
    se = quantize_msq(w, MsqParams(b=4, M=16, T=32, e_search=True))
    assert se.n_outliers > 0
    # the search only moves E: the result still satisfies the integer semantics
    x = torch.randint(-128, 128, (128, 3))
    r = msq_gemm(se.coefficients(), x, se.exp, M=16, T=32, inner_bits=40, outer_bits=48)
    scale = 2.0 ** r.e_min.repeat_interleave(16).double()
    torch.testing.assert_close(r.y.double() * scale[:, None], se.dequant @ x.double())


def test_ebw_accounting_with_outliers():
    p = MsqParams(b=2, m=8, M=8, T=4, k_sigma=1.5)
    w = torch.zeros(8, 4)
    w[:, 0] = torch.tensor([0.1, 0.2, 9.0, 0.1, -0.3, 0.2, 0.1, 0.3])
    w[:, 1] = torch.tensor([5.0, 0.2, 0.1, -7.0, 0.2, 0.1, 0.3, 0.2])
    w[:, 2:] = 0.2
    q = quantize_msq(w, p)
    per_mib = (q.kind == KIND_HI).sum(0).tolist()
    assert per_mib[:2] == [1, 2]
    # E (8) + 4 flags + entries {dE 2, n-1 2, n pairs x 2 x 3}
    assert q.metadata_bits == 8 + 4 + (2 + 2 + 6) + (2 + 2 + 12)
    assert q.ebw == pytest.approx((32 * 2 + q.metadata_bits) / 32)


def test_integer_semantics_equal_the_dequantized_product():
    p = MsqParams(b=4, m=8, M=16, T=8)
    w = _heavy(32, 24, 2, frac=0.01, scale=200.0)  # outliers beyond 2b bits: dE > 0
    q = quantize_msq(w, p)
    assert q.n_outliers > 0 and int(q.de.max()) > 0
    x = torch.randint(-128, 128, (24, 5))
    r = msq_gemm(q.coefficients(), x, q.exp, M=16, T=8, inner_bits=40, outer_bits=48)
    assert not r.ovf_inner.any() and not r.ovf_outer.any()
    scale = 2.0 ** r.e_min.repeat_interleave(16).double()
    torch.testing.assert_close(r.y.double() * scale[:, None], q.dequant @ x.double())
    # narrow accumulators flag and wrap like golden.accum
    n = msq_gemm(q.coefficients(), x, q.exp, M=16, T=8, inner_bits=12, outer_bits=14)
    assert n.ovf_inner.any()


def test_gptq_path_runs_and_reduces_output_error_on_synthetic_data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(512, 64, generator=g) @ torch.randn(64, 64, generator=g)  # correlated
    w = _heavy(64, 64, 4)
    p = MsqParams(b=2, m=8, M=64, T=32)
    rtn = quantize_msq(w, p)
    gq = quantize_msq(w, p, inputs=x)
    ref = x.double() @ w.double().T
    e_rtn = ((x.double() @ rtn.dequant.T) - ref).norm() / ref.norm()
    e_gq = ((x.double() @ gq.dequant.T) - ref).norm() / ref.norm()
    assert e_gq < e_rtn


def test_recon_function():
    p = [3, -5, 7, 2, 0, -1, 4, 6]
    assert recon(p, [(1, 6)], 2, 4) == [3, ((-5 << 4) + 4) << 2, 7, 2, 0, -1, 0, 6]
    assert recon(p, [], 3, 4) == p


def test_router_compiler_covers_every_configuration():
    cfgs = pair_configurations(8)
    assert len(cfgs) == 5937
    assert len({tuple(sorted(c)) for c in cfgs}) == 5937
    assert benes_switch_count(8) == 20
    rng = random.Random(0)
    for pairs in cfgs:
        de = rng.randrange(4)
        word = compile_router(pairs, de)
        bits, modes, de2 = decode_router(word)
        assert de2 == de
        routed = benes_apply(bits, list(range(8)))
        prods = [rng.randint(-2000, 2000) for _ in range(8)]
        # the network model: route, then per lane pass / merge / zero
        out = []
        for lane in range(8):
            if modes[lane] == LANE_PASS:
                out.append(prods[lane])
            elif modes[lane] == LANE_MERGE:
                out.append(((prods[lane] << 4) + prods[routed[lane]]) << de)
            else:
                assert modes[lane] == LANE_ZERO
                out.append(0)
        assert out == recon(prods, pairs, de, 4), pairs


def test_benes_routes_every_permutation_of_4_and_random_16():
    for perm in itertools.permutations(range(4)):
        assert benes_apply(benes_route(list(perm)), list(range(4))) == list(perm)
    rng = random.Random(1)
    for _ in range(100):
        perm = list(range(16))
        rng.shuffle(perm)
        assert benes_apply(benes_route(perm), list(range(16))) == perm


def test_errors():
    with pytest.raises(ValueError, match="b must be 2, 4 or 8"):
        MsqParams(b=3)
    with pytest.raises(ValueError, match="M must be a multiple of m"):
        MsqParams(m=8, M=12)
    with pytest.raises(ValueError, match="multiple of M = 64"):
        quantize_msq(torch.randn(32, 8))
    nan = torch.zeros(64, 1)
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight holds 1 NaN"):
        quantize_msq(nan)
    with pytest.raises(ValueError, match="pairs must be disjoint"):
        compile_router([(0, 1), (1, 2)], 0)
    with pytest.raises(ValueError, match="dE must be in 0..3"):
        compile_router([(0, 1)], 4)


def test_whole_model_weight_only():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.Linear(64, 5)
    )
    x = torch.randn(256, 32)
    p = MsqParams(b=4, m=8, M=16, T=16)
    for calibrate in (None, lambda m: m(x)):
        q, res = quantize_module_msq(model, p, calibrate=calibrate)
        assert set(res) == {"0", "2"}  # the 5-output layer is not a multiple of M: skipped
        assert all(4 < r.ebw < 5 for r in res.values())
        assert torch.equal(q[0].weight.double(), res["0"].dequant.float().double())
        with torch.no_grad():
            ref, got = model(x), q(x)
        assert ((got - ref).norm() / ref.norm()) < 0.2
    with pytest.raises(ValueError, match="multiple of M = 64"):
        quantize_module_msq(torch.nn.Sequential(torch.nn.Linear(4, 5)))


def test_gptq_from_the_gram_matrix_equals_gptq_from_the_rows():
    g = torch.Generator().manual_seed(9)
    w = torch.randn(32, 64, generator=g)
    w[3, 5] = 9.0  # an outlier
    x = torch.randn(128, 64, generator=g)
    p = MsqParams(b=4, m=8, M=16, T=16)
    rows = quantize_msq(w, p, inputs=x)
    gram = quantize_msq(w, p, gram=x.double().T @ x.double())
    for f in ("codes", "kind", "partner", "exp", "de", "dequant"):
        assert torch.equal(getattr(rows, f), getattr(gram, f)), f
    with pytest.raises(ValueError, match="inputs or their Gram matrix, not both"):
        quantize_msq(w, p, inputs=x, gram=x.double().T @ x.double())
    model = torch.nn.Sequential(torch.nn.Linear(64, 32))
    _, res = quantize_module_msq(model, p, calibrate=lambda m: [m(x[:50]), m(x[50:])], gram=True)
    ref = quantize_msq(model[0].weight, p, inputs=x)
    assert (res["0"].dequant - ref.dequant).abs().max() < 1e-9
