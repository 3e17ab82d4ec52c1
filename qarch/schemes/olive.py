"""olive: OliVe outlier-victim pairs (int4 / flint4 / int8 normals, abfloat outliers)."""

from __future__ import annotations

from dataclasses import dataclass

from .ant import clip_ratios
from .base import (
    Context,
    QuantInfo,
    Scheme,
    SchemeConfig,
    check_choice,
    check_positive,
    ebw,
    option,
    register,
)

__all__ = ["OliveConfig", "OLIVE_RATIO_TOP"]

OLIVE_RATIO_TOP = 2.49  # ratios of the 3-sigma clip, as the golden default


@dataclass(frozen=True)
class OliveConfig(SchemeConfig):
    """OliVe (``golden.olive.quantize_module_olive``): pairs along K, per-channel clip search
    from the 3-sigma clip, the normal type per layer; activations calibrated per tensor."""

    bits: int = option(4, "element bits, 4 or 8 (activation bits too with --activations)")
    activations: bool = option(False, "quantize activations too, calibrated per tensor")
    ratio_step: float = option(0.05, "clip-ratio search step (the golden default is 0.02)")

    def __post_init__(self) -> None:
        check_choice("bits", self.bits, (4, 8))
        if not isinstance(self.activations, bool):
            raise TypeError(f"activations must be a bool, not {type(self.activations).__name__}")
        # a finer step multiplies the search's time and memory for a flat optimum
        check_positive("ratio_step", self.ratio_step, lo=0.001, hi=1.0, closed=True)

    @property
    def act_bits(self) -> int | None:
        return self.bits if self.activations else None


def _quantize(model, config: OliveConfig, ctx: Context):
    from golden.olive import quantize_module_olive

    ebw_before = ebw(ctx.layers(model), config.bits)  # before: inplace replaces them
    q, rep = quantize_module_olive(
        model, config.bits, calib=ctx.calibrate if config.activations else None,
        include=ctx.select, ratios=clip_ratios(config.ratio_step, OLIVE_RATIO_TOP),
        max_rows=2048, progress=ctx.progress, keep_codes=ctx.keep_codes, inplace=ctx.inplace,
    )  # fmt: skip
    info = QuantInfo(ebw=ebw_before)
    info.layers = {
        n: {"weight_type": r.weight_type, "outliers": r.weight_stats.outlier_fraction,
            "collisions": r.weight_stats.collision_fraction, "act_type": r.act_type}
        for n, r in rep.items()
    }  # fmt: skip
    if ctx.keep_codes:
        info.codes = {n: r.codes for n, r in rep.items()}
        info.scales = {n: r.scales for n, r in rep.items()}
    return q, info


register(
    Scheme(
        "olive", OliveConfig, _quantize, needs_calib=lambda c: c.activations,
        label=lambda c: f"OliVe W{c.bits}" + (f"A{c.bits}" if c.activations else ""),
        hardware=lambda c: (f"olive{c.bits}-pe-p32", f"olive{c.bits}-array8x8-p32"),
        family="olive", summary="OliVe outlier-victim pairs",
    )
)  # fmt: skip
