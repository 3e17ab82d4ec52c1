"""ant: ANT adaptive types (int / PoT / flint per layer), weights and optionally activations."""

from __future__ import annotations

from dataclasses import dataclass

from .base import (
    Context,
    QuantInfo,
    Scheme,
    SchemeConfig,
    check_bits,
    check_positive,
    ebw,
    option,
    register,
)

__all__ = ["AntConfig", "ANT_RATIO_TOP", "clip_ratios"]

# The top of ANT's clip search, as the golden default and the reference: ratios of max |x| stop
# at 1.49 (the reference's range(75, 150) hundredths).
ANT_RATIO_TOP = 1.49


def clip_ratios(step: float, top: float, low: float = 0.75) -> tuple[float, ...]:
    """The clip-ratio grid low, low + step, ... <= top (the golden defaults' range: from 0.75;
    ANT's ratios of max |x| stop at 1.49, OliVe's of the 3-sigma clip at 2.49)."""
    n = int((top - low) / step + 1e-9) + 1
    return tuple(round(low + step * i, 4) for i in range(n))


@dataclass(frozen=True)
class AntConfig(SchemeConfig):
    """ANT (``golden.ant_quant.quantize_module``): per layer the type of int / PoT / flint with
    the lowest weight MSE, per-channel clip search.

    ``clip_min``: the search's lowest ratio of max |w|. The spec's range starts at 0.75, which
    minimises weight MSE by clipping the large weights the outputs depend on; from 1.0 no weight
    is clipped (SmolLM2 W4: 47.19 from 0.75, 39.94 from 1.0; docs/evaluation.md).
    ``ratio_step``: 0.05 instead of the golden 0.01 keeps a whole-model run in minutes."""

    bits: int = option(4, "weight bits (activation bits too with --activations)")
    activations: bool = option(False, "quantize activations too, calibrated per tensor")
    ratio_step: float = option(0.05, "clip-ratio search step (the golden default is 0.01)")
    clip_min: float = option(
        1.0, "lowest weight clip ratio of max |w| searched (1.0: no weight clipped; the spec's "
        "range starts at 0.75)", flag="--ant-clip-min",
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_bits("bits", self.bits, 3, 8)
        if not isinstance(self.activations, bool):
            raise TypeError(f"activations must be a bool, not {type(self.activations).__name__}")
        # a finer step multiplies the search's time and memory for a flat optimum
        check_positive("ratio_step", self.ratio_step, lo=0.001, hi=1.0, closed=True)
        check_positive("clip_min", self.clip_min, hi=ANT_RATIO_TOP)

    @property
    def act_bits(self) -> int | None:
        return self.bits if self.activations else None

    def ratios(self) -> tuple[float, ...]:
        """The clip ratios searched (weights, and activations with ``activations``)."""
        return clip_ratios(self.ratio_step, ANT_RATIO_TOP, self.clip_min)


def _quantize(model, config: AntConfig, ctx: Context):
    from golden.ant_quant import quantize_module

    ebw_before = ebw(ctx.layers(model), config.bits)  # before: inplace replaces them
    q, rep = quantize_module(
        model, config.bits, calib=ctx.calibrate if config.activations else None,
        include=ctx.select, ratios=config.ratios(), progress=ctx.progress,
        keep_codes=ctx.keep_codes, inplace=ctx.inplace,
    )  # fmt: skip
    info = QuantInfo(ebw=ebw_before)
    for n, r in rep.items():
        info.layers[n] = {k: v for k, v in r._asdict().items() if k not in ("codes", "scales")}
        if ctx.keep_codes:
            info.codes[n], info.scales[n] = r.codes, r.scales
    return q, info


def _label(c: AntConfig) -> str:
    clip = "max" if c.clip_min == 1.0 else f"{c.clip_min:g} max"
    wa = f"W{c.bits}A{c.bits}" if c.activations else f"W{c.bits}"
    return f"ANT {wa} (int/pot/flint, clip >= {clip})"


register(
    Scheme(
        "ant", AntConfig, _quantize, needs_calib=lambda c: c.activations, label=_label,
        hardware=lambda c: ("ant4-pe-p32", "ant4-array8x8-p32") if c.bits == 4 else None,
        family="ant", summary="ANT adaptive int / PoT / flint types",
    )
)  # fmt: skip
