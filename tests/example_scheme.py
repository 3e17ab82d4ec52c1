"""An example of a user's own scheme: INT weights rounded toward zero after an offset.

This one file is everything a new scheme adds (docs/design.md, "Adding a scheme"): a frozen
config with its own options, a handler, a label, and one ``register`` call. ``qarch eval``, the
report and ``qarch.quantize`` pick it up without an edit anywhere else.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from qarch.schemes import QuantInfo, Scheme, SchemeConfig, option, register
from qarch.schemes.base import check_bits, check_positive, ebw


@dataclass(frozen=True)
class TruncIntConfig(SchemeConfig):
    """Symmetric per-channel INT weights, ``q = trunc(w / s + offset * sign(w))``."""

    bits: int = option(4, "weight bits")
    offset: float = option(0.0, "added to |w / s| before truncation (0: toward zero, 0.5: nearest)")

    def __post_init__(self) -> None:
        check_bits("bits", self.bits, 2, 16)
        check_positive("offset", self.offset, hi=0.5, closed=True)


def _quantize(model, config: TruncIntConfig, ctx) -> tuple:
    import torch

    layers = ctx.layers(model)
    q = copy.deepcopy(model)
    qmods = dict(q.named_modules())
    top = 2 ** (config.bits - 1) - 1
    for name, _ in layers:
        w = qmods[name].weight.detach().to(torch.float64)
        s = w.abs().amax(1, keepdim=True).clamp(min=1e-12) / top
        v = torch.trunc(w / s + config.offset * torch.sign(w)).clamp(-top, top)
        with torch.no_grad():
            qmods[name].weight.copy_((v * s).to(qmods[name].weight.dtype))
    return q, QuantInfo(ebw=ebw(layers, config.bits))


SCHEME = register(
    Scheme(
        "int-trunc", TruncIntConfig, _quantize, needs_calib=lambda c: False,
        label=lambda c: f"INT{c.bits} truncated (offset {c.offset:g})",
        summary="example: INT weights rounded toward zero",
    )
)  # fmt: skip
