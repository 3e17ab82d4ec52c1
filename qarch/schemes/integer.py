"""int: symmetric round-to-nearest INT weights, per output channel or per group of K."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .base import Context, QuantInfo, Scheme, SchemeConfig, check_bits, ebw, option, register

__all__ = ["IntConfig"]


@dataclass(frozen=True)
class IntConfig(SchemeConfig):
    """Weight-only symmetric RTN (``golden.int_quant.quantize_int``), float activations."""

    bits: int = option(4, "weight bits")
    group: int | None = option(None, "group size along K (default: one scale per channel)")

    def __post_init__(self) -> None:
        check_bits("bits", self.bits, 2, 16)
        if self.group is not None:
            check_bits("group", self.group, 1, 1 << 20)


def _quantize(model, config: IntConfig, ctx: Context):
    import torch

    from golden.int_quant import quantize_int

    layers = ctx.layers(model)
    q = model if ctx.inplace else copy.deepcopy(model)
    qmods = dict(q.named_modules())
    info = QuantInfo(ebw=ebw(layers, config.bits, config.group))
    for name, _ in layers:
        mod = qmods[name]
        w = mod.weight.detach()
        if config.group is None:
            res = quantize_int(w, config.bits, granularity="channel")
        else:
            res = quantize_int(w, config.bits, granularity="group", group_size=config.group)
        with torch.no_grad():
            mod.weight.copy_(res.dequant.to(w.dtype))
        if ctx.keep_codes:
            info.codes[name], info.scales[name] = res.values, res.scales
    return q, info


def _label(c: IntConfig) -> str:
    return f"INT{c.bits} " + ("per-channel RTN" if c.group is None else f"group-{c.group} RTN")


def _hardware(c: IntConfig):
    # The INT arrays take per-channel codes (the group scales have no datapath); A8 inputs.
    if c.group is None and c.bits in (4, 8):
        return f"int{c.bits}x8-pe-p32", f"int{c.bits}x8-array8x8-p32"
    return None


register(
    Scheme(
        "int", IntConfig, _quantize, needs_calib=lambda c: False, label=_label,
        hardware=_hardware, family="integer", summary="symmetric RTN INT weights",
    )
)  # fmt: skip
