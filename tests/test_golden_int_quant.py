"""INT quantizer: granularities, rounding, clip search, and clear errors."""

import pytest
import torch

from golden.int_quant import dequantize_int, quantize_int


def test_per_tensor_symmetric_known_answer():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0])
    q = quantize_int(x, 4)
    assert q.scales.tolist() == [1.0 / 7]
    # x / s = -7, -3.5, 0, 1.75, 7; half_even: -3.5 -> -4
    assert q.values.tolist() == [-7, -4, 0, 2, 7]
    assert q.codes.tolist() == [9, 12, 0, 2, 7]  # two's complement bit patterns
    assert torch.allclose(dequantize_int(q), q.dequant)


def test_rounding_mode_is_used():
    x = torch.tensor([-1.0, -0.5, 1.0])
    assert quantize_int(x, 4, rounding="half_away").values.tolist() == [-7, -4, 7]
    assert quantize_int(x, 4, rounding="half_up").values.tolist() == [-7, -3, 7]


def test_narrow_never_produces_most_negative():
    x = torch.linspace(-3, 2, 101)
    q = quantize_int(x, 4, narrow=True)
    assert q.values.min().item() == -7
    assert quantize_int(x, 4, clip_search=True).values.min().item() >= -8


def test_per_channel_and_group_scales():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, generator=g) * torch.tensor([[1.0], [10.0], [0.1], [3.0]])
    qc = quantize_int(x, 8, granularity="channel")
    assert qc.scales.shape == (4,)
    assert torch.allclose(qc.scales, x.abs().amax(1).double() / 127)
    qg = quantize_int(x, 4, granularity="group", group_size=8)
    assert qg.scales.shape == (8,)
    assert torch.equal(qg.values.abs().reshape(8, 8).amax(1), torch.full((8,), 7))
    assert torch.allclose(dequantize_int(qg), qg.dequant)


def test_unsigned_and_zero_groups():
    x = torch.tensor([[0.0, 0.0], [0.5, 1.0]])
    q = quantize_int(x, 8, signed=False, granularity="channel")
    assert q.values.tolist() == [[0, 0], [128, 255]]
    assert q.scales[0].item() == 1.0  # all-zero group: scale 1


def test_clip_search_reduces_mse():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 256, generator=g)
    x[0, 0] = 40.0  # one outlier stretches the plain max scale
    plain = quantize_int(x, 4, granularity="tensor")
    clipped = quantize_int(x, 4, granularity="tensor", clip_search=True)
    err = lambda q: ((q.dequant - x) ** 2).mean().item()  # noqa: E731
    assert err(clipped) < err(plain)
    assert clipped.scales.item() < plain.scales.item()


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        (dict(x=torch.tensor([1.0, float("nan")])), ValueError, "1 NaN and 0 Inf"),
        (dict(x=torch.tensor([1.0, float("inf")])), ValueError, "0 NaN and 1 Inf"),
        (
            dict(x=torch.ones(2, 10), granularity="group", group_size=4),
            ValueError,
            "last axis \\(10\\) is not a multiple of group_size \\(4\\)",
        ),
        (dict(x=torch.ones(2, 8), granularity="group"), ValueError, "positive int group_size"),
        (dict(x=torch.tensor([-1.0, 1.0]), signed=False), ValueError, "unsigned uint4 cannot hold"),
        (dict(x=torch.ones(3), granularity="row"), ValueError, "granularity must be one of"),
        (dict(x=torch.ones(3), rounding="nearest"), ValueError, "rounding must be one of"),
        (dict(x=torch.ones(3), group_size=4), ValueError, "group_size is only meaningful"),
        (dict(x=torch.ones(0)), ValueError, "empty tensor"),
        (dict(x=torch.ones(3, dtype=torch.int64)), TypeError, "floating-point tensor"),
        (dict(x=torch.ones(3), clip_search=True, clip_ratios=(1.5,)), ValueError, "clip_ratios"),
    ],
)
def test_quantizer_errors(kwargs, exc, msg):
    x = kwargs.pop("x")
    with pytest.raises(exc, match=msg):
        quantize_int(x, 4, **kwargs)


def test_bits_validation():
    with pytest.raises(ValueError, match="bits must be at least 2, not 1"):
        quantize_int(torch.ones(3), 1)
