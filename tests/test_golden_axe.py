"""AXE golden: the exact guarantee, the reduction to plain GPTQ/GPFQ, bounds and errors."""

import itertools

import pytest
import torch

from golden.axe import (
    a2q_l1_bound,
    a2q_plus_l1_bound,
    guarantee_holds,
    input_range,
    naive_weight_bits,
    quantize_inputs,
    quantize_layer,
    quantize_model,
    soft_threshold,
    token_scales,
    worst_case,
)
from golden.calib import accumulate_hessians


def _layer(seed: int, out: int = 12, k: int = 128, n: int = 64, signed: bool = True):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, k, generator=g) * torch.rand(out, 1, generator=g).add(0.2)
    x = torch.randn(n, k, generator=g)
    x[:, 3] = 0.0  # a dead input column
    return w, (x if signed else x.abs())


SWEEP = list(
    itertools.product(
        (True, False),
        (4, 8),
        (3, 4, 8),
        ((12, 32), (14, 64), (16, 128), (20, None)),
        (False, True),
        ("gptq", "gpfq"),
    )
)


@pytest.mark.parametrize("signed,n_bits,m_bits,pt,act_order,alg", SWEEP)
def test_guarantee_holds_on_the_spec_sweep(signed, n_bits, m_bits, pt, act_order, alg):
    p, t = pt
    w, x = _layer(n_bits * 100 + m_bits, signed=signed)
    q, s = quantize_layer(
        w,
        x,
        weight_bits=m_bits,
        input_bits=n_bits,
        input_signed=signed,
        acc_bits=p,
        tile=t,
        algorithm=alg,
        act_order=act_order,
    )
    assert q.dtype == torch.int64 and q.shape == w.shape and s.shape == (w.shape[0],)
    assert int(q.min()) >= -(2 ** (m_bits - 1)) and int(q.max()) <= 2 ** (m_bits - 1) - 1
    worst = worst_case(q, n_bits, signed, t)
    assert int(worst.max()) <= 2 ** (p - 1) - 1, (worst.max(), p)


@pytest.mark.parametrize("alg", ["gptq", "gpfq"])
@pytest.mark.parametrize("act_order", [False, True])
def test_inactive_constraints_equal_the_plain_algorithm(alg, act_order):
    w, x = _layer(7)
    plain, s0 = quantize_layer(
        w,
        x,
        weight_bits=4,
        input_bits=8,
        input_signed=True,
        acc_bits=None,
        algorithm=alg,
        act_order=act_order,
    )
    axe, s1 = quantize_layer(
        w,
        x,
        weight_bits=4,
        input_bits=8,
        input_signed=True,
        acc_bits=48,
        tile=32,
        algorithm=alg,
        act_order=act_order,
    )
    assert torch.equal(plain, axe) and torch.equal(s0, s1)


def test_plain_gptq_overflows_where_axe_does_not():
    w, x = _layer(3)
    plain, _ = quantize_layer(w, x, weight_bits=4, input_bits=8, input_signed=True, acc_bits=None)
    assert not guarantee_holds(plain, 8, True, 14, 64)
    axe, _ = quantize_layer(
        w, x, weight_bits=4, input_bits=8, input_signed=True, acc_bits=14, tile=64
    )
    assert guarantee_holds(axe, 8, True, 14, 64)


def test_error_shrinks_as_the_accumulator_grows():
    w, x = _layer(5, out=16, k=256, n=128)
    errs = []
    for p in (12, 14, 16, 20):
        q, s = quantize_layer(
            w, x, weight_bits=4, input_bits=8, input_signed=True, acc_bits=p, tile=64
        )
        errs.append(float(((q * s[:, None] - w.double()) @ x.double().T).norm()))
    assert errs == sorted(errs, reverse=True), errs


@pytest.mark.parametrize("signed", [True, False])
def test_worst_case_is_the_exhaustive_maximum(signed):
    mu, nu = input_range(2, signed)
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-4, 4, (5, 6), generator=g)
    worst = worst_case(q, 2, signed, tile=3)
    for c in range(5):
        for j in range(2):
            seg = q[c, 3 * j : 3 * j + 3].tolist()
            brute = 0
            for xs in itertools.product(range(mu, nu + 1), repeat=3):
                for r in range(1, 4):  # every prefix (and so every partial sum in k order)
                    brute = max(brute, abs(sum(a * b for a, b in zip(seg[:r], xs[:r]))))
            assert int(worst[c, j]) == brute


def test_bounds():
    assert a2q_l1_bound(16, 8, False) == (2**15 - 1) / 2**8
    assert a2q_l1_bound(16, 8, True) == (2**15 - 1) / 2**7
    assert a2q_plus_l1_bound(16, 8) == (2**16 - 2) / 255
    g = torch.Generator().manual_seed(2)
    for signed in (True, False):
        bound = a2q_l1_bound(12, 4, signed)
        q = torch.randint(-7, 8, (50, 40), generator=g)
        q = (q.double() * bound / q.abs().sum(1, keepdim=True)).trunc().long()  # ||q||_1 <= bound
        assert guarantee_holds(q, 4, signed, 12)
    assert naive_weight_bits(20, 128, 8, True) == 5
    assert naive_weight_bits(16, 128, 8, True) is None


def test_soft_threshold_is_the_l1_projection():
    g = torch.Generator().manual_seed(4)
    v = torch.randn(6, 50, generator=g) * 4
    theta = soft_threshold(v, 10.0)
    shrunk = (v.abs() - theta[:, None]).clamp(min=0).sum(1)
    assert torch.allclose(shrunk, torch.full((6,), 10.0, dtype=torch.float64))
    assert torch.equal(soft_threshold(v, 1e6), torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(algorithm="sgd"), "algorithm must be one of gptq, gpfq"),
        (dict(weight_bits=1), "weight_bits must be in 2..16"),
        (dict(acc_bits=1), "acc_bits must be in 2..62 or None"),
        (dict(tile=0), "tile must be a positive int or None"),
        (dict(input_signed=False), "unsigned inputs cannot be negative"),
    ],
)
def test_layer_errors(kwargs, msg):
    w, x = _layer(0)
    args = dict(weight_bits=4, input_bits=8, input_signed=True, acc_bits=16)
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        quantize_layer(w, x, **args)


def test_shape_and_nan_errors():
    w, x = _layer(0)
    kw = dict(weight_bits=4, input_bits=8, input_signed=True, acc_bits=16)
    with pytest.raises(ValueError, match="inputs must be \\[samples, in=128\\]"):
        quantize_layer(w, x[:, :10], **kw)
    w[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight holds 1 NaN"):
        quantize_layer(w, x, **kw)


def test_axe_beats_the_naive_bit_width_baseline_at_equal_p():
    """At each P, naive bit-width manipulation must shrink M until the data-type bound of a tile
    fits; AXE keeps M one bit wider under its guarantee and has the lower output error."""
    w, x = _layer(11, out=32, k=256, n=256)

    def err(q, s):
        y = w.double() @ x.double().T
        return float(((q * s[:, None] - w.double()) @ x.double().T).norm() / y.norm())

    for p in (16, 17, 18):
        m = naive_weight_bits(p, 64, 8, True)
        naive = err(
            *quantize_layer(w, x, weight_bits=m, input_bits=8, input_signed=True, acc_bits=None)
        )
        axe_q, axe_s = quantize_layer(
            w, x, weight_bits=m + 1, input_bits=8, input_signed=True, acc_bits=p, tile=64
        )
        assert guarantee_holds(axe_q, 8, True, p, 64)
        assert err(axe_q, axe_s) < naive, (p, m)


@pytest.mark.parametrize("acc_bits,tile", [(None, None), (16, 64)])
def test_gram_calibration_equals_the_rows_it_sums(acc_bits, tile):
    """GPTQ from the Gram matrix of the integer-quantized inputs is GPTQ from the rows."""
    w, x = _layer(5, out=16, k=128, n=96)
    kw = dict(weight_bits=4, input_bits=8, input_signed=True, acc_bits=acc_bits, tile=tile)
    s = token_scales(x.double(), 8, True)
    xq = quantize_inputs(x.double(), 8, True, s)
    q_rows, s_rows = quantize_layer(w, x, input_scale=s, **kw)
    q_gram, s_gram = quantize_layer(w, None, gram=xq.T @ xq, **kw)
    assert torch.equal(q_rows, q_gram) and torch.equal(s_rows, s_gram)


def test_gram_errors():
    w, x = _layer(0)
    kw = dict(weight_bits=4, input_bits=8, input_signed=True, acc_bits=16)
    g = x.double().T @ x.double()
    with pytest.raises(ValueError, match="inputs or their Gram matrix, not both"):
        quantize_layer(w, x, gram=g, **kw)
    with pytest.raises(ValueError, match="inputs or their Gram matrix, not both"):
        quantize_layer(w, None, **kw)
    with pytest.raises(ValueError, match="gpfq needs the inputs themselves"):
        quantize_layer(w, None, gram=g, algorithm="gpfq", **kw)
    with pytest.raises(ValueError, match=r"Gram matrix must be \[128, 128\], not \(10, 10\)"):
        quantize_layer(w, None, gram=g[:10, :10], **kw)


@pytest.mark.parametrize("granularity", ["tensor", "token"])
def test_quantize_model_gram_equals_rows_on_one_batch(granularity):
    """With every row kept (one calibration batch), the Gram pass and the row sample give the
    same integer weights; the Gram matrix sums every batch of a longer calibration."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    x = torch.randn(200, 32)
    kw = dict(weight_bits=4, input_bits=8, acc_bits=16, tile=16, input_granularity=granularity)
    a = quantize_model(model, lambda m: m(x), max_rows=4096, **kw)
    b = quantize_model(model, lambda m: m(x), gram=True, **kw)
    for name in ("0", "2"):
        assert torch.equal(a[int(name)].q_int, b[int(name)].q_int), name
    assert b[2].input_signed is False  # post-ReLU: unsigned, found by the first pass
    with pytest.raises(ValueError, match="gram=True calibrates gptq only"):
        quantize_model(model, lambda m: m(x), gram=True, algorithm="gpfq", **kw)
    hs = accumulate_hessians(model, lambda m: [m(x[:70]), m(x[70:])], ["0"])
    torch.testing.assert_close(hs["0"][0], x.double().T @ x.double(), rtol=1e-12, atol=1e-12)
    assert hs["0"][1] == 200


def test_calib_cache_reuses_the_calibration_with_identical_results():
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    x = torch.randn(300, 32)
    calls = []

    def calibrate(m):
        calls.append(1)
        m(x)

    kw = dict(weight_bits=4, input_bits=8, tile=16, input_granularity="token", gram=True)
    cache: dict = {}
    plain = quantize_model(model, calibrate, acc_bits=None, calib_cache=cache, **kw)
    assert len(calls) == 2  # statistics, then the Gram matrices
    axe = quantize_model(model, calibrate, acc_bits=12, calib_cache=cache, **kw)
    assert len(calls) == 2  # reused
    ref_plain = quantize_model(model, calibrate, acc_bits=None, **kw)
    ref_axe = quantize_model(model, calibrate, acc_bits=12, **kw)
    assert len(calls) == 6
    for i in (0, 2):
        assert torch.equal(plain[i].q_int, ref_plain[i].q_int)
        assert torch.equal(axe[i].q_int, ref_axe[i].q_int)
    assert not torch.equal(axe[0].q_int, plain[0].q_int)  # the constraint binds at P_I = 12
    quantize_model(model, calibrate, acc_bits=None, calib_cache=cache, **{**kw, "input_bits": 6})
    assert len(calls) == 8  # other input bits: calibrated anew


def test_row_weights_in_the_gram_matrix():
    torch.manual_seed(4)
    lin = torch.nn.Linear(6, 3)
    x = torch.randn(2, 5, 6)  # [batch, seq, in]: the first token of each sequence weighs 4

    def first_token(t):
        a = torch.ones(t.shape[:-1], dtype=torch.float64)
        a[..., 0] = 4
        return a

    h, rows = accumulate_hessians(lin, lambda m: m(x), [""], row_weight=first_token)[""]
    flat = x.reshape(-1, 6).double()
    a = first_token(x).reshape(-1)
    torch.testing.assert_close(h, flat.T @ (a[:, None] * flat), rtol=1e-12, atol=1e-12)
    assert rows == 10
    with pytest.raises(ValueError, match="one weight >= 0 per input row"):
        accumulate_hessians(lin, lambda m: m(x), [""], row_weight=lambda t: -first_token(t))
