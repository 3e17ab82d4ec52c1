"""Golden integer core: overflow, rounding, codecs, bounds, accumulation (int.md)."""

import itertools
import random

import pytest
import torch

from golden.accum import accumulate, dot, gemm
from golden.numerics import (
    IntFormat,
    datatype_bound,
    fits,
    from_sign_mag,
    from_twos,
    outer_bits_needed,
    round_mode,
    saturate,
    to_sign_mag,
    to_twos,
    wrap,
)

T = lambda *v: torch.tensor(v, dtype=torch.int64)  # noqa: E731


def test_wrap_and_saturate_known_values():
    assert wrap(T(127, 128, -129, 256, -1), 8).tolist() == [127, -128, 127, 0, -1]
    assert saturate(T(127, 128, -129, 1000, -5), 8).tolist() == [127, 127, -128, 127, -5]
    assert fits(T(-128, 127, 128, -129), 8).tolist() == [True, True, False, False]


def test_wrap_matches_bit_truncation():
    for x in range(-600, 600):
        low = x & 0xFF
        assert wrap(T(x), 8).item() == (low - 256 if low >= 128 else low)


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("half_even", [0, 2, 2, -0, -2, -2, 1, -1]),
        ("half_away", [1, 2, 3, -1, -2, -3, 1, -1]),
        ("half_up", [1, 2, 3, 0, -1, -2, 1, -1]),
        ("toward_zero", [0, 1, 2, 0, -1, -2, 1, -1]),
        ("floor", [0, 1, 2, -1, -2, -3, 1, -2]),
    ],
)
def test_rounding_modes_on_ties(mode, expected):
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1.2, -1.2])
    assert round_mode(x, mode).tolist() == expected


def test_rounding_errors():
    with pytest.raises(ValueError, match="rounding mode must be one of"):
        round_mode(torch.tensor([1.0]), "nearest")
    with pytest.raises(ValueError, match="1 NaN and 0 Inf"):
        round_mode(torch.tensor([float("nan"), 1.0]), "floor")


@pytest.mark.parametrize("bits", range(2, 9))
def test_twos_complement_exhaustive(bits):
    codes = torch.arange(2**bits)
    vals = from_twos(codes, bits)
    assert vals.min().item() == -(2 ** (bits - 1)) and vals.max().item() == 2 ** (bits - 1) - 1
    assert torch.equal(to_twos(vals, bits), codes)
    # MSB is the sign: code c has value c - 2^b when its top bit is set
    assert all(
        v == (c - 2**bits if c >> (bits - 1) else c) for c, v in zip(codes.tolist(), vals.tolist())
    )


@pytest.mark.parametrize("bits", range(2, 9))
def test_sign_magnitude_exhaustive(bits):
    codes = torch.arange(2**bits)
    vals = from_sign_mag(codes, bits)
    assert vals[2 ** (bits - 1)].item() == 0  # negative zero decodes to 0
    back = to_sign_mag(vals, bits)
    nz = codes != 2 ** (bits - 1)
    assert torch.equal(back[nz], codes[nz]) and back[~nz].item() == 0


def test_codec_errors():
    with pytest.raises(ValueError, match="code 16 is out of range for a 4-bit code"):
        from_twos(T(3, 16), 4)
    with pytest.raises(ValueError, match="value 8 does not fit a 4-bit two's complement"):
        to_twos(T(8), 4)
    with pytest.raises(ValueError, match="value -8 does not fit a 4-bit sign-magnitude"):
        to_sign_mag(T(-8), 4)
    with pytest.raises(TypeError, match="dtype torch.int64"):
        from_twos(torch.tensor([1], dtype=torch.int32), 4)
    with pytest.raises(ValueError, match="bits must be at least 2, not 1"):
        to_twos(T(0), 1)


def test_int_format():
    f = IntFormat(4, signed=True, narrow=True)
    assert (f.min, f.max, f.name) == (-7, 7, "int4n")
    assert IntFormat(8, signed=False).max == 255
    with pytest.raises(ValueError, match="outside int4n"):
        f.encode(T(-8))
    with pytest.raises(ValueError, match="narrow applies to signed formats only"):
        IntFormat(4, signed=False, narrow=True)


def test_datatype_bound_spec_example():
    # int.md: K = 512, signed 4-bit weights, unsigned 8-bit activations -> P = 21
    assert datatype_bound(512, IntFormat(4, True), IntFormat(8, False)) == 21


def _brute_bound(k, wv, av):
    prods = [x * y for x in wv for y in av]
    hi, lo = k * max(prods), k * min(prods)
    return next(p for p in range(1, 64) if -(2 ** (p - 1)) <= lo and hi <= 2 ** (p - 1) - 1)


@pytest.mark.parametrize(
    "wb,ws,ab,as_,k",
    list(itertools.product((2, 3, 4), (True, False), (2, 4, 5), (True, False), (1, 3, 8, 100))),
)
def test_datatype_bound_brute_force(wb, ws, ab, as_, k):
    wf, af = IntFormat(wb, ws), IntFormat(ab, as_)
    wv, av = range(wf.min, wf.max + 1), range(af.min, af.max + 1)
    assert datatype_bound(k, wf, af) == _brute_bound(k, wv, av)
    assert datatype_bound(k, list(wv), list(av)) == datatype_bound(k, wf, af)


def test_datatype_bound_is_tight():
    # the bound width never overflows and one bit less does, on the extreme operands
    wf, af = IntFormat(4), IntFormat(8)
    p = datatype_bound(16, wf, af)
    w, a = torch.full((16,), wf.min), torch.full((16,), af.min)
    assert not dot(w, a, p).overflow and dot(w, a, p - 1).overflow


def test_outer_bits_needed():
    assert outer_bits_needed(16, 512, 64) == 19
    assert outer_bits_needed(16, 64, 64) == 16
    assert outer_bits_needed(16, 65, 64) == 17


def _ref_accumulate(terms, bits, policy):
    """Independent scalar loop: the register after each addition, in k order."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    reg, flag = 0, False
    for t in terms:
        s = reg + t
        if s < lo or s > hi:
            flag = True
            reg = max(lo, min(hi, s)) if policy == "saturate" else ((s - lo) % 2**bits) + lo
        else:
            reg = s
    return reg, flag, sum(terms)


@pytest.mark.parametrize("policy", ["wrap", "saturate"])
def test_accumulate_matches_scalar_loop(policy):
    rng = random.Random(7)
    for trial in range(300):
        bits = rng.randint(3, 10)
        terms = [rng.randint(-(2**bits), 2**bits) for _ in range(rng.randint(1, 12))]
        res = accumulate(T(*terms), bits, policy)
        got = (res.value.item(), res.overflow.item(), res.exact.item())
        assert got == _ref_accumulate(terms, bits, policy), f"seed 7 trial {trial}: {terms}"


def test_saturate_order_matters_and_flags():
    # 8-bit: +100 +100 -100: saturate clamps at 127 then gives 27; wrap gives the exact 100
    r = accumulate(T(100, 100, -100), 8, "saturate")
    assert (r.value.item(), r.overflow.item(), r.exact.item()) == (27, True, 100)
    r = accumulate(T(100, 100, -100), 8, "wrap")
    assert (r.value.item(), r.overflow.item()) == (100, True)
    r = accumulate(T(-100, 100, 100), 8, "saturate")
    assert (r.value.item(), r.overflow.item()) == (100, False)


def _ref_gemm(w, a, pi, t, po, policy):
    n, k = w.shape
    m = a.shape[1]
    y, oi, oo = (
        [[0] * m for _ in range(n)],
        [[False] * m for _ in range(n)],
        [[False] * m for _ in range(n)],
    )
    for i in range(n):
        for j in range(m):
            tiles = []
            for k0 in range(0, k, t):
                terms = [int(w[i, kk]) * int(a[kk, j]) for kk in range(k0, min(k, k0 + t))]
                v, f, _ = _ref_accumulate(terms, pi, policy)
                tiles.append(v)
                oi[i][j] |= f
            y[i][j], oo[i][j], _ = _ref_accumulate(tiles, po, policy)
    return y, oi, oo


@pytest.mark.parametrize("policy", ["wrap", "saturate"])
@pytest.mark.parametrize("tile", [1, 3, 4, 10, 11])
def test_gemm_multistage_matches_loops(policy, tile):
    g = torch.Generator().manual_seed(tile)
    w = torch.randint(-8, 8, (3, 10), generator=g)
    a = torch.randint(-128, 128, (10, 4), generator=g)
    res = gemm(w, a, inner_bits=11, tile=tile, outer_bits=12, policy=policy)
    y, oi, oo = _ref_gemm(w, a, 11, tile, 12, policy)
    assert res.y.tolist() == y and res.ovf_inner.tolist() == oi and res.ovf_outer.tolist() == oo
    assert torch.equal(res.exact, w @ a)


def test_gemm_single_stage_default_and_errors():
    w = torch.randint(-8, 8, (2, 5))
    a = torch.randint(-8, 8, (5, 3))
    res = gemm(w, a, inner_bits=32)
    assert torch.equal(res.y, w @ a) and not res.ovf_inner.any() and res.tiles.shape[0] == 1
    with pytest.raises(ValueError, match="w is \\[N=2, K=5\\] but a has 4 rows"):
        gemm(w, a[:4], inner_bits=32)
    with pytest.raises(ValueError, match="tile must be a positive int"):
        gemm(w, a, inner_bits=32, tile=0)
    with pytest.raises(ValueError, match="policy must be one of wrap, saturate"):
        gemm(w, a, inner_bits=32, policy="clamp")
    with pytest.raises(TypeError, match="torch.int64"):
        gemm(w.float(), a, inner_bits=32)
