"""fp32: the unquantized reference."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Context, QuantInfo, Scheme, SchemeConfig, register

__all__ = ["Fp32Config"]


@dataclass(frozen=True)
class Fp32Config(SchemeConfig):
    """No quantization: the model as loaded."""

    @property
    def weight_bits(self) -> float:
        return 32.0

    @property
    def act_bits(self) -> int:
        return 32


def _quantize(model, config: Fp32Config, ctx: Context):
    return model, QuantInfo(ebw=32.0)


register(
    Scheme(
        "fp32", Fp32Config, _quantize, needs_calib=lambda c: False, label=lambda c: "fp32",
        summary="the unquantized model",
    )
)  # fmt: skip
