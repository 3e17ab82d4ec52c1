"""OliVe golden model: formats, merged-grid rounding, pair rules, packing, quantizer."""

import pytest
import torch

from golden.olive import (
    POLICIES,
    OliveFormat,
    apply_pairs,
    decode_pair_operands,
    decode_pairs,
    encode_pairs,
    pack_pairs,
    quantize_module_olive,
    quantize_olive,
    round_merged,
    unpack_pairs,
)

# The spec's tables, transcribed by hand.
OUTLIERS = {
    "int4": (2, [12, 16, 24, 32, 48, 64, 96]),
    "flint4": (3, [24, 32, 48, 64, 96, 128, 192]),
}
NORMALS = {
    "int4": list(range(-7, 8)),
    "flint4": [-16, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 16],
}


@pytest.mark.parametrize("normal", ["int4", "flint4"])
def test_abfloat_bias_and_magnitudes_match_the_spec(normal):
    f = OliveFormat(normal)
    bias, mags = OUTLIERS[normal]
    assert f.bias == bias and f.outlier_mags().tolist() == mags
    assert f.normal_grid().tolist() == NORMALS[normal]
    assert f.identifier == 0b1000


def test_int8_variant():
    f = OliveFormat("int8")
    assert f.bias == 2 and f.identifier == 0x80 and f.normal_max == 127
    mags = f.outlier_mags()
    assert int(mags[0]) == 132 and int(mags[-1]) == 2016 and mags.numel() == 127
    assert f.normal_grid().tolist() == list(range(-127, 128))


def test_abfloat_split_is_a_parameter_with_the_same_bias_rule():
    f = OliveFormat("int8", e_bits=3)  # E3M4: smallest outlier (16 + 1) << bias > 127
    assert f.m_bits == 4 and f.bias == 3 and int(f.outlier_mags()[0]) == 136
    f = OliveFormat("int4", e_bits=3)  # E3M0: (1 + 1) << bias > 7 -> bias 2
    assert f.bias == 2 and f.outlier_mags().tolist() == [8, 16, 32, 64, 128, 256, 512]
    with pytest.raises(ValueError, match="e_bits must be in 1..3"):
        OliveFormat("int4", e_bits=4)
    with pytest.raises(ValueError, match="normal type must be one of"):
        OliveFormat("int5")


@pytest.mark.parametrize("normal", ["int4", "flint4"])
def test_every_pair_byte_decodes_to_the_spec_value_table(normal):
    """All 256 bytes: identifier -> 0, partner identifier -> abfloat, else normal."""
    f = OliveFormat(normal)
    bias, _ = OUTLIERS[normal]
    normal_of = {}
    for c in range(16):
        s, mag = c >> 3, c & 7
        if normal == "int4":
            v = mag
        else:  # flint3 magnitude: 0,1,2,3 then 4, 6, 8, 16
            v = [0, 1, 2, 3, 4, 6, 8, 16][mag]
        normal_of[c] = -v if s else v

    def abfloat(c):
        s, e, m = c >> 3, (c >> 1) & 3, c & 1
        v = (2 + m) << (e + bias)
        return -v if s else v

    for byte in range(256):
        even, odd = byte & 15, byte >> 4
        got = decode_pairs(unpack_pairs(torch.tensor([byte]), 4), f).tolist()
        exp = []
        for own, partner in ((even, odd), (odd, even)):
            if own == 8:
                exp.append(0)
            elif partner == 8:
                exp.append(abfloat(own))
            else:
                exp.append(normal_of[own])
        assert got == exp, (normal, byte)


def test_worked_example_both_policies():
    x = torch.tensor([2, -2, 6, 30, 38, 40, 100, 3, 50, 60, 7, 33, -500, 1.0])
    f = OliveFormat("int4")
    # The spec's units: normal max 7 -> 28 (grid / 4); ours are integer units, so x / 4.
    v = round_merged(x / 4, f)
    assert (v * 4).tolist() == [4, 0, 8, 28, 48, 48, 96, 4, 48, 64, 8, 28, -384, 0]
    first, _ = apply_pairs(v, f, "keep_first")
    assert (first * 4).tolist() == [4, 0, 8, 28, 48, 0, 96, 0, 48, 0, 8, 28, -384, 0]
    larger, _ = apply_pairs(v, f, "keep_larger")
    assert (larger * 4).tolist() == [4, 0, 8, 28, 48, 0, 96, 0, 0, 64, 8, 28, -384, 0]


@pytest.mark.parametrize("policy", POLICIES)
def test_four_pair_cases_and_round_trip(policy):
    f = OliveFormat("int4")
    v = torch.tensor([3, -5, 24, 2, -1, -48, 64, 96, 96, 64, 16, 16])
    vals, victim = apply_pairs(v, f, policy)
    exp = {
        "keep_larger": [3, -5, 24, 0, 0, -48, 0, 96, 96, 0, 16, 0],
        "keep_first": [3, -5, 24, 0, 0, -48, 64, 0, 96, 0, 16, 0],
    }[policy]
    assert vals.tolist() == exp
    codes = encode_pairs(vals, victim, f)
    assert decode_pairs(codes, f).tolist() == exp
    assert torch.equal(unpack_pairs(pack_pairs(codes, 4), 4), codes)
    # victims are stored as the identifier 1000
    assert codes[victim].eq(8).all() and not codes[~victim].eq(8).any()


def test_odd_k_pads_one_zero_and_saturation():
    f = OliveFormat("int4")
    v = round_merged(torch.tensor([[1.2, 500.0, -2.6], [-1000.0, 0.4, 10.0]]), f)
    assert v.tolist() == [[1, 96, -3], [-96, 0, 12]]  # saturate at the largest outlier
    vals, victim = apply_pairs(v, f)
    assert vals.shape == (2, 4) and vals.tolist() == [[0, 96, -3, 0], [-96, 0, 12, 0]]


def test_half_up_ties_on_the_merged_grid():
    f = OliveFormat("int4")
    y = torch.tensor([0.5, -0.5, 9.5, -9.5, 14.0, 80.0, -14.0, -80.0])
    # midpoints 0..1, 7..12 (the normal/outlier boundary: to the outlier on both signs, as the
    # reference), 12..16 and 64..96 (between outliers: toward +inf)
    assert round_merged(y, f).tolist() == [1, 0, 12, -12, 16, 96, -12, -64]


@pytest.mark.parametrize(
    "normal,tie,outlier",
    # normal max, smallest outlier (abfloat E2, bias from the normal max), their midpoint; in the
    # reference's units (normal max at 32) the ties are at 38, 40 and 32.375
    [("int4", 9.5, 12), ("flint4", 20.0, 24), ("int8", 129.5, 132)],
)
def test_boundary_tie_goes_to_the_outlier_on_both_signs(normal, tie, outlier):
    f = OliveFormat(normal)
    assert (f.normal_max + outlier) / 2 == tie and int(f.outlier_mags()[0]) == outlier
    got = round_merged(torch.tensor([tie, -tie, tie - 1e-3, -tie + 1e-3]), f).tolist()
    assert got == [outlier, -outlier, f.normal_max, -f.normal_max]
    # through the quantizer: alpha = normal max gives scale 1; the outlier's partner is the victim
    q = quantize_olive(torch.tensor([[-tie, 1.0]]), f.bits, role="activation", normal=normal,
                       alpha=float(f.normal_max))  # fmt: skip
    assert q.dequant.tolist() == [[-outlier, 0.0]]


def test_pack_layout():
    codes = torch.tensor([0x1, 0x8, 0xF, 0x3])
    assert pack_pairs(codes, 4).tolist() == [0x81, 0x3F]
    assert pack_pairs(codes, 8).tolist() == codes.tolist()
    with pytest.raises(ValueError, match="even last dimension"):
        pack_pairs(torch.tensor([1, 2, 3]), 4)
    with pytest.raises(ValueError, match="codes must be in 0..15"):
        decode_pairs(torch.tensor([16, 0]), OliveFormat("int4"))


def test_operands_fit_the_hardware_widths():
    for normal in ("int4", "flint4"):
        f = OliveFormat(normal)
        d = decode_pair_operands(unpack_pairs(torch.arange(256), 4), f)
        assert int(d.mag.max()) <= 7 and int(d.exp.max()) <= 6
    f = OliveFormat("int8")
    pairs = torch.cartesian_prod(torch.arange(256), torch.arange(256)).flatten()
    d = decode_pair_operands(pairs, f)
    assert int(d.mag.max()) <= 127 and int(d.exp.max()) <= 5


def _heavy(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    mask = torch.rand(shape, generator=g) < 0.01
    return torch.where(mask, x * 25, x)


def test_quantizer_keeps_outliers_and_beats_plain_int4():
    w = _heavy((64, 256), 0)
    q = quantize_olive(w)
    assert q.fmt.normal in ("int4", "flint4") and q.mse[q.fmt.normal] == min(q.mse.values())
    assert q.codes.shape == (64, 256) and q.packed.shape == (64, 128)
    assert torch.equal(unpack_pairs(q.packed, 4), q.codes)
    deq = decode_pairs(q.codes, q.fmt).double() * q.scale[:, None]
    torch.testing.assert_close(deq.float(), q.dequant)
    assert 0 < q.stats.outlier_fraction < 0.1 and q.stats.collisions <= q.stats.outlier_pairs
    # the largest outliers survive (same sign, same magnitude within the abfloat step)
    big = w.abs() > 10
    assert (q.dequant[big].sign() == w[big].sign()).float().mean() > 0.9
    # per-channel int4 RTN (max-abs) on the same tensor is much worse
    s = w.abs().amax(1, keepdim=True) / 7
    rtn = torch.round(w / s).clamp(-7, 7) * s
    assert ((q.dequant - w) ** 2).mean() < 0.5 * ((rtn - w) ** 2).mean()


def test_quantizer_activation_8bit_and_odd_k():
    a = _heavy((3, 5, 63), 1)
    q = quantize_olive(a, 8, role="activation")
    assert q.fmt.normal == "int8" and q.codes.shape == (3, 5, 64) and q.dequant.shape == a.shape
    s = a.abs().max() / 127  # per-tensor int8 RTN, max-abs: the outliers cost it resolution
    rtn = torch.round(a / s).clamp(-127, 127) * s
    assert q.scale.numel() == 1 and ((q.dequant - a) ** 2).mean() < 0.5 * ((rtn - a) ** 2).mean()
    r = quantize_olive(a, 8, role="activation", alpha=float(q.scale) * 127)
    assert torch.equal(r.codes, q.codes)


def test_quantizer_errors():
    with pytest.raises(ValueError, match="x holds 1 NaN"):
        quantize_olive(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="weights must be"):
        quantize_olive(torch.ones(3))
    with pytest.raises(ValueError, match="not a 4-bit OliVe normal type"):
        quantize_olive(torch.ones(2, 2), normal="int8")
    with pytest.raises(ValueError, match="policy must be one of"):
        quantize_olive(torch.ones(2, 2), policy="keep_both")


@pytest.mark.parametrize("bits,tol", [(4, 0.3), (8, 0.15)])
def test_whole_model_w4a4_w8a8(bits, tol):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    x = _heavy((128, 32), 2)
    q, rep = quantize_module_olive(model, bits, calib=lambda m: m(x))
    types = ("int4", "flint4") if bits == 4 else ("int8",)
    assert set(rep) == {"0", "2"} and rep["0"].act_type in types
    with torch.no_grad():
        ref, got = model(x), q(x)
    assert ((got - ref).norm() / ref.norm()) < tol
    assert torch.equal(model[0].weight, model[0].weight)  # original untouched
