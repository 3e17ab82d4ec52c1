"""The calibration options every GPTQ-based scheme shares (gptq, axe-gptq, axe-gpfq,
microscopiq): capture order, act-order, the attention-sink row weight and the Gram path. The
defaults and the ablation behind them are in docs/evaluation.md ("GPTQ calibration")."""

from __future__ import annotations

from typing import Any

from .base import check_choice, check_positive

__all__ = [
    "SINK_WEIGHT",
    "SINK_HELP",
    "GRAM_HELP",
    "CAPTURES",
    "CAPTURE",
    "CAPTURE_HELP",
    "ACT_ORDER_HELP",
    "ASYM",
    "ASYM_HELP",
    "check_asym",
    "check_flag",
    "check_capture",
]

# GPTQ on a causal LM: the first token of each calibration window, where the attention sink
# forms, counts as this many rows in the Hessian (1 = plain GPTQ); see docs/evaluation.md.
SINK_WEIGHT = 16.0
SINK_HELP = (
    "LM GPTQ: rows the first token of each calibration window (the attention sink) counts as "
    "in the Hessian (1 = plain GPTQ)"
)
GRAM_HELP = "GPTQ Hessian over every calibration token (default) or over a 2,048-row sample"
CAPTURES = ("sequential", "block", "float")  # golden.calib.CAPTURES, without importing torch
CAPTURE = "block"
CAPTURE_HELP = (
    "where each layer's calibration inputs come from: the partly quantized model, one group of "
    "layers reading the same input at a time (sequential: q/k/v, o, gate/up, down) or a whole "
    "block at a time (block), or one pass over the float model (float)"
)
ACT_ORDER_HELP = (
    "quantize columns in descending Hessian diagonal (act-order; MicroScopiQ: whole "
    "macro-blocks, static groups)"
)


# Asymmetric calibration (GPTQv2 / GPTAQ): GPTQ starts from the weights moved this fraction of
# the way to the least-squares fit of the *float* model's layer output on the quantized model's
# inputs (golden.gptq.asymmetric_target); 0.25 as published, the ablation in docs/evaluation.md.
ASYM = 0.25
ASYM_HELP = (
    "asymmetric calibration (GPTQv2): move the weights this fraction of the way to the "
    "least-squares fit of the float model's layer output before GPTQ (0 = plain GPTQ, 1 = the "
    "full fit)"
)


def check_asym(value: Any, gram: bool) -> None:
    check_positive("asym", value, hi=1.0, closed=True)
    if value and not gram:
        raise ValueError("asym needs the Gram path (gram on); give asym 0 with gram off")


def check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")


def check_capture(value: Any) -> None:
    check_choice("capture", value, CAPTURES)
