"""microscopiq: MicroScopiQ weights (MX inliers, 2b-bit outliers in pruned slots), GPTQ or RTN."""

from __future__ import annotations

from dataclasses import dataclass

from .base import (
    Context,
    QuantInfo,
    Scheme,
    SchemeConfig,
    check_choice,
    check_positive,
    option,
    register,
)
from .calibration import (
    ACT_ORDER_HELP,
    ASYM,
    ASYM_HELP,
    CAPTURE,
    CAPTURE_HELP,
    CAPTURES,
    GRAM_HELP,
    SINK_HELP,
    SINK_WEIGHT,
    check_asym,
    check_capture,
    check_flag,
)

__all__ = ["MicroScopiQConfig"]


@dataclass(frozen=True)
class MicroScopiQConfig(SchemeConfig):
    """MicroScopiQ (``golden.microscopiq.quantize_module_msq``), weight-only: the GPTQ path on
    held-out calibration data, or round to nearest (``rtn``)."""

    bits: int = option(4, "inlier bits b (outliers get 2b), 2 or 4")
    exponent: str = option(
        "search", "each macro-block's inlier exponent: the best of the MX value and its two "
        "neighbours by squared error (search) or the MX value (mx)", flag="--msq-exponent",
        choices=("search", "mx"),
    )  # fmt: skip
    rtn: bool = option(False, "round to nearest instead of GPTQ (no calibration)")
    sink_weight: float = option(SINK_WEIGHT, SINK_HELP)
    gram: bool = option(True, GRAM_HELP)
    act_order: bool = option(True, ACT_ORDER_HELP)
    capture: str = option(CAPTURE, CAPTURE_HELP, choices=CAPTURES)
    asym: float = option(ASYM, ASYM_HELP)

    def __post_init__(self) -> None:
        check_choice("bits", self.bits, (2, 4))
        check_choice("exponent", self.exponent, ("search", "mx"))
        for name in ("rtn", "gram", "act_order"):
            check_flag(name, getattr(self, name))
        check_positive("sink_weight", self.sink_weight, closed=True)
        check_capture(self.capture)
        check_asym(self.asym, self.gram)


def _quantize(model, config: MicroScopiQConfig, ctx: Context):
    from golden.microscopiq import MsqParams, quantize_module_msq

    q, rep = quantize_module_msq(
        model, MsqParams(b=config.bits, e_search=config.exponent == "search"),
        calibrate=None if config.rtn else ctx.calibrate, include=ctx.select, max_rows=2048,
        gram=config.gram, row_weight=None if config.rtn else ctx.sink_rows(config.sink_weight),
        progress=ctx.progress, act_order=config.act_order, capture=config.capture,
        inplace=ctx.inplace, asym=0.0 if config.rtn else config.asym,
    )  # fmt: skip
    slots = sum(r.codes.numel() * config.bits + r.metadata_bits for r in rep.values())
    info = QuantInfo(ebw=slots / sum(r.codes.numel() for r in rep.values()))
    info.layers = {
        n: {"ebw": r.ebw, "outliers": r.n_outliers / r.codes.numel()} for n, r in rep.items()
    }
    if ctx.keep_codes:
        info.codes = {n: r.codes for n, r in rep.items()}
    return q, info


def _label(c: MicroScopiQConfig) -> str:
    extra = ", MX exponent" if c.exponent == "mx" else ""
    return f"MicroScopiQ W{c.bits} (b={c.bits}, {'RTN' if c.rtn else 'GPTQ'}{extra})"


register(
    Scheme(
        "microscopiq", MicroScopiQConfig, _quantize, needs_calib=lambda c: not c.rtn,
        label=_label,
        hardware=lambda c: ("msq-pe", "msq-array8x8-p32" if c.bits == 4 else "msq-b2-array8x8-p32"),
        family="microscopiq", summary="MicroScopiQ outliers in pruned slots (weights)",
    )
)  # fmt: skip
