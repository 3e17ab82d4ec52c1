"""gptq, axe-gptq, axe-gpfq: integer weights and integer activations as the INT arrays compute
them (``golden.axe.quantize_model``); AXE adds the P_I / T overflow guarantee."""

from __future__ import annotations

from dataclasses import dataclass

from .base import (
    Context,
    QuantInfo,
    Scheme,
    SchemeConfig,
    check_bits,
    check_choice,
    check_positive,
    ebw,
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

__all__ = ["GptqConfig", "AxeConfig", "AxeGpfqConfig"]

INPUT_SCALES = ("token", "tensor")
GPTQ_TILE = 64  # plain GPTQ checks no accumulator; AxeLinear still records a tile


@dataclass(frozen=True)
class _IntegerGemm(SchemeConfig):
    bits: int = option(4, "weight bits")
    input_bits: int = option(8, "activation bits")
    input_scale: str = option(
        "token", "dynamic per-token or calibrated per-tensor input scales", choices=INPUT_SCALES
    )
    act_order: bool = option(True, ACT_ORDER_HELP)
    capture: str = option(CAPTURE, CAPTURE_HELP, choices=CAPTURES)

    def __post_init__(self) -> None:
        check_bits("bits", self.bits, 2, 16)
        check_bits("input_bits", self.input_bits, 2, 16)
        check_choice("input_scale", self.input_scale, INPUT_SCALES)
        check_flag("act_order", self.act_order)
        check_capture(self.capture)

    @property
    def act_bits(self) -> int | None:
        return self.input_bits


@dataclass(frozen=True)
class _Gptq(_IntegerGemm):
    sink_weight: float = option(SINK_WEIGHT, SINK_HELP)
    gram: bool = option(True, GRAM_HELP)
    asym: float = option(ASYM, ASYM_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("sink_weight", self.sink_weight, closed=True)
        check_flag("gram", self.gram)
        check_asym(self.asym, self.gram)


@dataclass(frozen=True)
class GptqConfig(_Gptq):
    """Plain GPTQ integer weights (no accumulator constraint), integer inputs; or weight-only
    (float inputs)."""

    weight_only: bool = option(False, "quantize the weights only: float activations")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag("weight_only", self.weight_only)
        if self.weight_only and (self.input_bits, self.input_scale) != (8, "token"):
            raise ValueError("input_bits and input_scale do not apply with weight_only")

    @property
    def act_bits(self) -> int | None:
        return None if self.weight_only else self.input_bits


def _check_acc(c) -> None:
    check_bits("acc_bits", c.acc_bits, 2, 62)
    check_bits("tile", c.tile, 1, 1 << 20)


@dataclass(frozen=True)
class AxeConfig(_Gptq):
    """AXE-GPTQ: GPTQ whose every T-row partial sum provably fits a P_I-bit accumulator."""

    acc_bits: int = option(16, "inner accumulator P_I")
    tile: int = option(64, "K tile T of P_I")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_acc(self)


@dataclass(frozen=True)
class AxeGpfqConfig(_IntegerGemm):
    """AXE-GPFQ: the GPFQ path (a 2,048-row calibration sample) with the same guarantee."""

    acc_bits: int = option(16, "inner accumulator P_I")
    tile: int = option(64, "K tile T of P_I")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_acc(self)


def _quantize(model, config: _IntegerGemm, ctx: Context):
    from golden.axe import AxeLinear, quantize_model

    gptq = isinstance(config, _Gptq)
    ebw_before = ebw(ctx.layers(model), config.bits)  # before: inplace replaces them
    q = quantize_model(
        model, ctx.calibrate, weight_bits=config.bits, input_bits=config.act_bits,
        acc_bits=getattr(config, "acc_bits", None), tile=getattr(config, "tile", GPTQ_TILE),
        algorithm="gptq" if gptq else "gpfq", include=ctx.select, max_rows=2048,
        input_granularity=config.input_scale, progress=ctx.progress,
        gram=gptq and config.gram,
        row_weight=ctx.sink_rows(config.sink_weight) if gptq else None,
        calib_cache=ctx.calib_cache, act_order=config.act_order, capture=config.capture,
        inplace=ctx.inplace, asym=config.asym if gptq else 0.0,
    )  # fmt: skip
    info = QuantInfo(ebw=ebw_before)
    for name, m in q.named_modules():  # int64 copies of the model's compact codes
        if ctx.keep_codes and isinstance(m, AxeLinear):
            info.codes[name], info.scales[name] = m.q_int, m.w_scale
    return q, info


def _hardware(c: _IntegerGemm):
    from ..configs import PRESETS

    if c.act_bits is None:  # weight-only: float activations, no integer array
        return None
    acc = getattr(c, "acc_bits", 32)  # plain GPTQ: the exact 32-bit accumulator
    name = f"int{c.bits}x{c.input_bits}"
    pe, array = f"{name}-pe-p{acc}", f"{name}-array8x8-p{acc}"
    return (pe, array) if pe in PRESETS and array in PRESETS else None


def _wa(c: _IntegerGemm) -> str:
    return f"W{c.bits}A{c.act_bits or 16}"


for _name, _cfg, _label, _summary in (
    ("gptq", GptqConfig,
     lambda c: f"GPTQ {_wa(c)}" + ("" if c.weight_only else f" (per-{c.input_scale} A)"),
     "GPTQ integer weights and inputs"),
    ("axe-gptq", AxeConfig, lambda c: f"AXE-GPTQ {_wa(c)} P_I={c.acc_bits} T={c.tile}",
     "AXE-GPTQ: accumulator-aware GPTQ"),
    ("axe-gpfq", AxeGpfqConfig, lambda c: f"AXE-GPFQ {_wa(c)} P_I={c.acc_bits} T={c.tile}",
     "AXE-GPFQ: accumulator-aware GPFQ"),
):  # fmt: skip
    register(
        Scheme(
            _name, _cfg, _quantize, needs_calib=lambda c: True, label=_label,
            hardware=_hardware, family="integer", summary=_summary,
        )
    )  # fmt: skip
