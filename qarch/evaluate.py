"""`qarch eval`: perplexity of a (quantized) causal LM on the packaged Wikipedia text.

Context 512, non-overlapping windows from the first token, every window's 511 next-token
predictions count (shared/spec/evaluation.md). Calibration never touches these tokens: it reads
held-out windows from ``qarch.models.CALIB_OFFSET`` on.

Schemes: ``fp32``; ``int`` (weight-only symmetric round-to-nearest, per output channel or per
group of input columns); ``ant`` and ``olive`` (weight-only, or weights and activations at the
same bits with per-tensor calibrated activation types); ``microscopiq`` (weight-only, GPTQ path
on held-out text); ``gptq``, ``axe-gptq``, ``axe-gpfq`` (integer weights and ``input_bits``
integer activations as the hardware computes them, per-tensor calibrated or per-token dynamic
scales, ``golden.axe.quantize_model``; AXE with the P_I / T overflow guarantee).
"""

from __future__ import annotations

import copy
import math

import torch

from golden.calib import linear_names
from golden.int_quant import quantize_int

__all__ = ["SCHEMES", "perplexity", "perplexities", "apply_scheme"]

SCHEMES = ("fp32", "int", "ant", "olive", "microscopiq", "gptq", "axe-gptq", "axe-gpfq")
CONTEXT = 512
SCALE_BITS = 16  # an fp16 scale per channel (or group) in the EBW
# Clip-ratio step of the ANT / OliVe searches at model level: 0.05 instead of the golden
# default 0.01 / 0.02 keeps a whole-model run in minutes; see docs/results.md.
RATIO_STEP = 0.05


@torch.no_grad()
def perplexities(
    model, ids: torch.Tensor, counts, context: int = CONTEXT, progress=None
) -> dict[int, float]:
    """exp(mean NLL) over the first N tokens for each N in ``counts`` (multiples of
    ``context``), from one pass over the windows of the largest."""
    for tokens in counts:
        if tokens < context or tokens % context:
            raise ValueError(f"--tokens must be a positive multiple of {context}, not {tokens}")
        if tokens > ids.numel():
            raise ValueError(f"the text has {ids.numel()} tokens, fewer than {tokens}")
    starts = range(0, max(counts), context)
    nll = []  # every window has context - 1 predictions: the mean of the means is the mean
    for s in progress(starts) if progress else starts:
        window = ids[s : s + context][None]
        nll.append(model(window, labels=window).loss.item())
    return {n: math.exp(sum(nll[: n // context]) / (n // context)) for n in counts}


def perplexity(model, ids: torch.Tensor, tokens: int, context: int = CONTEXT, progress=None):
    """exp(mean NLL) over the first ``tokens`` tokens (a multiple of ``context``)."""
    return perplexities(model, ids, (tokens,), context, progress)[tokens]


def _ebw(layers, elem_bits: float, group: int | None = None) -> float:
    """Element bits plus one fp16 scale per output row (or per ``group`` weights of a row),
    per weight, over every quantized layer ``(name, module)``, weighted by size."""
    w = sum(m.weight.numel() for _, m in layers)
    scales = sum(m.weight.numel() // group if group else m.weight.shape[0] for _, m in layers)
    return elem_bits + SCALE_BITS * scales / w


def apply_scheme(
    model,
    scheme: str,
    *,
    bits: int = 4,
    group: int | None = None,
    calib_ids: torch.Tensor | None = None,
    input_bits: int = 8,
    input_granularity: str = "token",
    acc_bits: int = 16,
    tile: int | None = 64,
    activations: bool = False,
    ratio_step: float = RATIO_STEP,
    include=None,
    progress=None,
    info: dict | None = None,
):
    """A quantized copy of ``model`` (every Linear layer except the tied LM head, or those
    ``include(name, module)`` selects). GPTQ/AXE schemes (integer inputs of ``input_bits``,
    per tensor or per token) and ``activations=True`` of ant/olive calibrate on ``calib_ids``
    [n, seq] (held-out windows); microscopiq runs its GPTQ path on them when given. ``info``,
    when a dict, receives ``ebw`` (effective bits per weight, scales and metadata included) and
    per-layer details (``layers``)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    info = {} if info is None else info
    if scheme == "fp32":
        info["ebw"] = 32.0
        return model
    if not ratio_step > 0:
        raise ValueError(f"ratio_step must be positive, not {ratio_step!r}")
    needs_calib = scheme in ("gptq", "axe-gptq", "axe-gpfq") or (
        activations and scheme in ("ant", "olive")
    )
    if needs_calib and calib_ids is None:
        raise ValueError(f"{scheme} needs calibration windows (calib_ids)")
    if activations and scheme not in ("ant", "olive"):
        raise ValueError(f"activations=True is for ant and olive, not {scheme!r}")

    def select(n, m):
        return not n.endswith("lm_head") and (include is None or include(n, m))

    def calibrate(m):
        for row in calib_ids:
            m(row[None])

    mods = dict(model.named_modules())
    layers = [(n, mods[n]) for n in linear_names(model, select)]
    if scheme in ("gptq", "axe-gptq", "axe-gpfq"):
        from golden.axe import quantize_model

        info["ebw"] = _ebw(layers, bits)
        return quantize_model(
            model, calibrate, weight_bits=bits, input_bits=input_bits,
            acc_bits=None if scheme == "gptq" else acc_bits, tile=tile,
            algorithm="gpfq" if scheme == "axe-gpfq" else "gptq", include=select,
            max_rows=2048, input_granularity=input_granularity, progress=progress,
        )  # fmt: skip
    if scheme == "ant":
        from golden.ant_quant import quantize_module

        q, rep = quantize_module(
            model, bits, calib=calib_ids if activations else None, ratios=_ratios(ratio_step, 1.50),
            include=select, progress=progress,
        )  # fmt: skip
        info["ebw"] = _ebw(layers, bits)
        info["layers"] = {n: r._asdict() for n, r in rep.items()}
        return q
    if scheme == "olive":
        from golden.olive import quantize_module_olive

        q, rep = quantize_module_olive(
            model, bits, calib=calibrate if activations else None, include=select,
            ratios=_ratios(ratio_step, 2.49), max_rows=2048, progress=progress,
        )  # fmt: skip
        info["ebw"] = _ebw(layers, bits)
        info["layers"] = {
            n: {"weight_type": r.weight_type, "outliers": r.weight_stats.outlier_fraction,
                "collisions": r.weight_stats.collision_fraction, "act_type": r.act_type}
            for n, r in rep.items()
        }  # fmt: skip
        return q
    if scheme == "microscopiq":
        from golden.microscopiq import MsqParams, quantize_module_msq

        q, rep = quantize_module_msq(
            model, MsqParams(b=bits), calibrate=calibrate if calib_ids is not None else None,
            include=select, max_rows=2048, progress=progress,
        )  # fmt: skip
        slots = sum(r.codes.numel() * bits + r.metadata_bits for r in rep.values())
        info["ebw"] = slots / sum(r.codes.numel() for r in rep.values())
        info["layers"] = {
            n: {"ebw": r.ebw, "outliers": r.n_outliers / r.codes.numel()} for n, r in rep.items()
        }
        return q
    q = copy.deepcopy(model)
    qmods = dict(q.named_modules())
    for name, _ in layers:
        mod = qmods[name]
        w = mod.weight.detach()
        if group is None:
            res = quantize_int(w, bits, granularity="channel")
        else:
            res = quantize_int(w, bits, granularity="group", group_size=group)
        with torch.no_grad():
            mod.weight.copy_(res.dequant.to(w.dtype))
    info["ebw"] = _ebw(layers, bits, group)
    return q


def _ratios(step: float, top: float) -> tuple[float, ...]:
    """The clip-ratio grid 0.75, 0.75 + step, ... <= top (the golden defaults' range: ANT's
    ratios of max |x| stop at 1.50, OliVe's of the 3-sigma clip at 2.49)."""
    n = int((top - 0.75) / step + 1e-9) + 1
    return tuple(round(0.75 + step * i, 4) for i in range(n))
