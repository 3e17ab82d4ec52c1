"""Property-based tests (Hypothesis) over the public golden API: for random valid inputs the
invariants hold (codes in range, decode(encode(x)) round trips, dequantized values finite, the
exact GEMM and its flags, AXE's guarantee); the invalid classes are in test_golden_validation."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden.accum import gemm
from golden.ant import AntType
from golden.ant_quant import quantize_ant
from golden.axe import guarantee_holds, quantize_layer
from golden.int_quant import quantize_int
from golden.numerics import IntFormat, datatype_bound, wrap
from golden.olive import OliveFormat, decode_pairs, quantize_olive, unpack_pairs

FAST = settings(
    max_examples=25, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


@st.composite
def tensors(draw, rows=(1, 6), cols=(1, 24), scale=(1e-3, 1e3)):
    """A float tensor [r, c] from a seed, a shape, a magnitude and a distribution."""
    r = draw(st.integers(*rows))
    c = draw(st.integers(*cols))
    seed = draw(st.integers(0, 2**31 - 1))
    mag = draw(st.floats(*scale))
    kind = draw(st.sampled_from(["normal", "laplace", "uniform", "sparse"]))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(r, c, generator=g)
    if kind == "laplace":
        x = torch.sign(x) * torch.log1p(torch.rand(r, c, generator=g) * 50)
    elif kind == "uniform":
        x = torch.rand(r, c, generator=g) * 2 - 1
    elif kind == "sparse":
        x = x * (torch.rand(r, c, generator=g) < 0.2)
    return x * mag


ANT_TYPES = [
    (kind, bits, signed)
    for kind in ("int", "pot", "flint")
    for signed in (True, False)
    for bits in range(3 if (signed and kind != "int") else 2, 7)
]


@FAST
@given(st.sampled_from(ANT_TYPES), st.data())
def test_ant_codes_round_trip(t, data):
    ty = AntType(*t)
    codes = data.draw(st.lists(st.sampled_from(ty.producible_codes().tolist()), min_size=1))
    codes = torch.tensor(codes)
    assert torch.equal(ty.encode(ty.values(codes)), codes)
    d = ty.decode(codes)
    assert bool(((d.sign == 0) | (d.sign == 1)).all()) and bool((d.mag >= 0).all())


@FAST
@given(tensors(), st.sampled_from([3, 4, 5, 6, 8]), st.sampled_from(["weight", "activation"]))
def test_ant_quantizer_invariants(x, bits, role):
    q = quantize_ant(x, bits, role=role)
    assert q.codes.min() >= 0 and q.codes.max() < 2**bits
    assert torch.equal(q.type.values(q.codes), q.values)
    assert bool(torch.isin(q.values, q.type.grid()).all())
    assert bool(torch.isfinite(q.dequant).all()) and bool((q.scales > 0).all())
    # nothing quantizes worse than clipping everything to zero
    assert q.mse[q.type.kind] <= float((x.double() ** 2).sum()) * (1 + 1e-9)


@FAST
@given(tensors(cols=(2, 24)), st.sampled_from([4, 8]), st.sampled_from(["weight", "activation"]))
def test_olive_pairs_decode_to_the_dequantized_values(x, bits, role):
    q = quantize_olive(x, bits, role=role)
    assert q.codes.min() >= 0 and q.codes.max() < 2**bits
    assert torch.equal(unpack_pairs(q.packed, bits), q.codes)
    vals = decode_pairs(q.codes, q.fmt)
    scale = q.scale[:, None] if role == "weight" else q.scale
    deq = (vals[..., : x.shape[-1]].double() * scale).float()
    assert torch.allclose(deq, q.dequant, rtol=1e-6, atol=0)
    outlier = vals.abs() > q.fmt.normal_max
    pairs = outlier.reshape(*outlier.shape[:-1], -1, 2)
    assert not bool((pairs[..., 0] & pairs[..., 1]).any())  # at most one outlier per pair
    assert bool(torch.isfinite(q.dequant).all())


@FAST
@given(tensors(), st.integers(2, 8), st.booleans())
def test_int_quantizer_invariants(x, bits, per_channel):
    q = quantize_int(x, bits, granularity="channel" if per_channel else "tensor")
    fmt = IntFormat(bits, True)
    assert q.values.min() >= fmt.min and q.values.max() <= fmt.max
    assert bool(torch.isfinite(q.dequant).all())
    step = q.scales.reshape(-1).max()
    assert float((q.dequant - x).abs().max()) <= float(step) / 2 * (1 + 1e-6) + 1e-12


@FAST
@given(
    st.integers(1, 5), st.integers(1, 12), st.integers(1, 4), st.integers(2, 8),
    st.integers(1, 12), st.sampled_from(["wrap", "saturate"]), st.integers(0, 2**31 - 1),
)  # fmt: skip
def test_gemm_is_exact_or_flagged(n, k, m, bits, tile, policy, seed):
    g = torch.Generator().manual_seed(seed)
    lo = -(2 ** (bits - 1))
    w = torch.randint(lo, -lo, (n, k), generator=g)
    a = torch.randint(lo, -lo, (k, m), generator=g)
    fmt = IntFormat(bits, True)
    p_i = datatype_bound(min(tile, k), fmt, fmt)
    r = gemm(w, a, inner_bits=p_i, tile=tile, outer_bits=62, policy=policy)
    assert torch.equal(r.exact, w @ a)
    assert not bool(r.ovf_inner.any()) and torch.equal(r.y, w @ a)  # the bound never overflows
    narrow = gemm(w, a, inner_bits=bits, tile=tile, outer_bits=bits, policy=policy)
    clean = ~(narrow.ovf_inner | narrow.ovf_outer)
    assert torch.equal(narrow.y[clean], (w @ a)[clean])  # no flag: the exact sum
    if policy == "wrap":
        assert torch.equal(narrow.y, wrap(narrow.tiles.sum(0), bits))


@FAST
@given(tensors(rows=(2, 6), cols=(8, 64), scale=(0.1, 10)), st.integers(10, 20),
       st.sampled_from([8, 16, 32]), st.booleans(), st.integers(0, 2**31 - 1))  # fmt: skip
def test_axe_guarantee_holds(w, acc_bits, tile, signed, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, w.shape[1], generator=g)
    x = x if signed else x.abs()
    q, s = quantize_layer(w, x, weight_bits=4, input_bits=8, input_signed=signed,
                          acc_bits=acc_bits, tile=tile)  # fmt: skip
    assert guarantee_holds(q, 8, signed, acc_bits, tile)
    assert q.abs().max() <= 8 and bool(torch.isfinite(s).all())


def test_olive_formats_decode_every_outlier_code():
    for normal in ("int4", "flint4", "int8"):
        f = OliveFormat(normal)
        mags = f.outlier_mags()
        assert bool((mags > f.normal_max).all()) and bool((mags[1:] > mags[:-1]).all())
