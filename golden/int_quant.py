"""INT quantizer (int.md "Quantizer"): ``q = clamp(round(x / s), lo, hi)``.

Scales are per tensor, per output channel (dim 0) or per group of ``group_size`` consecutive
elements along the last (K) axis. Default rounding ``half_even``; default scale ``max|x| / hi``
(symmetric) or, for unsigned formats, ``max(x) / hi``. The optional clip search tries
``r * max|x|`` for each ratio r and keeps, per scale group, the one with the lowest MSE.

An all-zero scale group gets scale 1 (its codes are all 0 either way); this avoids 0/0 and is
documented in docs/numerics.md.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .numerics import ROUNDING_MODES, IntFormat, check_finite, round_mode

__all__ = ["GRANULARITIES", "DEFAULT_CLIP_RATIOS", "IntQuant", "quantize_int", "dequantize_int"]

GRANULARITIES = ("tensor", "channel", "group")
DEFAULT_CLIP_RATIOS = tuple(round(0.5 + 0.01 * i, 2) for i in range(51))  # 0.50 .. 1.00


class IntQuant(NamedTuple):
    codes: torch.Tensor  # int64 bit patterns (two's complement for signed formats), x's shape
    values: torch.Tensor  # int64 integer values of the codes
    scales: torch.Tensor  # float64, broadcastable against x after _expand()
    dequant: torch.Tensor  # values * scale, x's dtype
    fmt: IntFormat
    granularity: str
    group_size: int | None


def _group_view(x: torch.Tensor, granularity: str, group_size: int | None) -> torch.Tensor:
    """View ``x`` as [groups, elements] following the scale granularity."""
    if granularity == "tensor":
        return x.reshape(1, -1)
    if x.dim() < 1:
        raise ValueError(f"granularity {granularity!r} needs at least a 1-D tensor")
    if granularity == "channel":
        return x.reshape(x.shape[0], -1)
    if group_size is None or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group granularity needs a positive int group_size, not {group_size!r}")
    k = x.shape[-1]
    if k % group_size:
        raise ValueError(
            f"the last axis ({k}) is not a multiple of group_size ({group_size}); "
            "pad the tensor or choose a group size that divides K"
        )
    return x.reshape(-1, group_size)


def quantize_int(
    x: torch.Tensor,
    bits: int,
    *,
    signed: bool = True,
    narrow: bool = False,
    granularity: str = "tensor",
    group_size: int | None = None,
    rounding: str = "half_even",
    clip_search: bool = False,
    clip_ratios: tuple[float, ...] = DEFAULT_CLIP_RATIOS,
) -> IntQuant:
    """Quantize a float tensor to ``int{bits}`` / ``uint{bits}`` codes plus scales."""
    fmt = IntFormat(bits, signed, narrow)
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}"
        )
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")
    if granularity != "group" and group_size is not None:
        raise ValueError(
            f"group_size is only meaningful with granularity='group', not {granularity!r}"
        )
    check_finite(x, "x")
    if x.numel() == 0:
        raise ValueError("cannot quantize an empty tensor")
    if not signed and bool((x < 0).any()):
        raise ValueError(
            f"unsigned {fmt.name} cannot hold negative values (min {float(x.min()):g}); "
            "use signed=True"
        )
    if clip_search and (not clip_ratios or any(not 0 < r <= 1 for r in clip_ratios)):
        raise ValueError(f"clip_ratios must be non-empty and in (0, 1], not {clip_ratios!r}")

    g = _group_view(x.to(torch.float64), granularity, group_size)
    amax = g.abs().amax(dim=1, keepdim=True)
    amax = torch.where(amax > 0, amax, torch.ones_like(amax) * fmt.max)  # all-zero group: s = 1

    def q_at(scale: torch.Tensor) -> torch.Tensor:
        return round_mode(g / scale, rounding).clamp(fmt.min, fmt.max)

    scale = amax / fmt.max
    if clip_search:
        best_err = None
        best_scale = scale
        for r in clip_ratios:
            s = amax * r / fmt.max
            err = ((q_at(s) * s - g) ** 2).sum(dim=1, keepdim=True)
            if best_err is None:
                best_err, best_scale = err, s
            else:
                better = err < best_err  # strict: ties keep the larger clip (earlier ratio)
                best_err = torch.where(better, err, best_err)
                best_scale = torch.where(better, s, best_scale)
        scale = best_scale
    values = q_at(scale)
    deq = (values * scale).reshape(x.shape).to(x.dtype)
    values = values.reshape(x.shape)
    return IntQuant(
        codes=fmt.encode(values),
        values=values,
        scales=scale.squeeze(1),
        dequant=deq,
        fmt=fmt,
        granularity=granularity,
        group_size=group_size,
    )


def dequantize_int(q: IntQuant) -> torch.Tensor:
    """Codes + scales -> real values (recomputed from the codes, not copied from ``q``)."""
    vals = q.fmt.decode(q.codes).to(torch.float64)
    g = _group_view(vals, q.granularity, q.group_size)
    return (g * q.scales[:, None]).reshape(q.codes.shape).to(q.dequant.dtype)
