"""`qarch eval`: perplexity of a (quantized) causal LM on the packaged Wikipedia text.

Context 512, non-overlapping windows from the first token, every window's 511 next-token
predictions count (shared/spec/evaluation.md). Calibration never touches these tokens: it reads
held-out windows from ``qarch.models.CALIB_OFFSET`` on.

Schemes so far: ``fp32``; ``int`` (weight-only symmetric round-to-nearest, per output channel
or per group of input columns); ``gptq``, ``axe-gptq``, ``axe-gpfq`` (integer weights and
``input_bits`` integer activations as the hardware computes them, ``golden.axe.quantize_model``
calibrated on held-out text; AXE with the P_I / T overflow guarantee). The other outlier-aware
schemes join as issue 7 proceeds.
"""

from __future__ import annotations

import copy
import math

import torch

from golden.int_quant import quantize_int

__all__ = ["SCHEMES", "perplexity", "apply_scheme"]

SCHEMES = ("fp32", "int", "gptq", "axe-gptq", "axe-gpfq")
CONTEXT = 512


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, tokens: int, context: int = CONTEXT, progress=None):
    """exp(mean NLL) over the first ``tokens`` tokens (a multiple of ``context``)."""
    if tokens < context or tokens % context:
        raise ValueError(f"--tokens must be a positive multiple of {context}, not {tokens}")
    if tokens > ids.numel():
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than {tokens}")
    starts = range(0, tokens, context)
    nll, count = 0.0, 0
    for s in progress(starts) if progress else starts:
        window = ids[s : s + context][None]
        loss = model(window, labels=window).loss.item()
        nll += loss * (context - 1)
        count += context - 1
    return math.exp(nll / count)


def apply_scheme(
    model,
    scheme: str,
    *,
    bits: int = 4,
    group: int | None = None,
    calib_ids: torch.Tensor | None = None,
    input_bits: int = 8,
    acc_bits: int = 16,
    tile: int | None = 64,
    include=None,
    progress=None,
):
    """A quantized copy of ``model`` (every Linear layer except the tied LM head, or those
    ``include(name, module)`` selects). GPTQ/AXE schemes calibrate on ``calib_ids``
    [n, seq] (held-out windows)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    if scheme == "fp32":
        return model
    if scheme in ("gptq", "axe-gptq", "axe-gpfq"):
        from golden.axe import quantize_model

        if calib_ids is None:
            raise ValueError(f"{scheme} needs calibration windows (calib_ids)")

        def calibrate(m):
            for row in calib_ids:
                m(row[None])

        def select(n, m):
            return not n.endswith("lm_head") and (include is None or include(n, m))

        return quantize_model(
            model, calibrate, weight_bits=bits, input_bits=input_bits,
            acc_bits=None if scheme == "gptq" else acc_bits, tile=tile,
            algorithm="gpfq" if scheme == "axe-gpfq" else "gptq", include=select,
            max_rows=2048, progress=progress,
        )  # fmt: skip
    q = copy.deepcopy(model)
    for name, mod in q.named_modules():
        if isinstance(mod, torch.nn.Linear) and not name.endswith("lm_head"):
            w = mod.weight.detach()
            if group is None:
                res = quantize_int(w, bits, granularity="channel")
            else:
                res = quantize_int(w, bits, granularity="group", group_size=group)
            with torch.no_grad():
                mod.weight.copy_(res.dequant.to(w.dtype))
    return q
