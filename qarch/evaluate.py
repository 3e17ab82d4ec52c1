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
from collections.abc import Callable
from typing import NamedTuple

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
# GPTQ on a causal LM: the first token of each calibration window, where the attention sink
# forms, counts as this many rows in the Hessian (1 = plain GPTQ); see docs/evaluation.md.
SINK_WEIGHT = 16.0
# ANT weights at model level: clip ratios of max |w| from 1.0 (no weight clipped). The spec's
# range from 0.75 minimizes weight MSE by clipping the large weights the output depends on
# (SmolLM2 W4: 59.31 from 0.75, 38.53 from 1.0); see docs/evaluation.md.
ANT_CLIP_MIN = 1.0
# The top of each search, as the golden defaults and the reference: ANT's ratios of max |x| stop
# at 1.49 (range(75, 150) hundredths), OliVe's of the 3-sigma clip at 2.49.
ANT_RATIO_TOP = 1.49
OLIVE_RATIO_TOP = 2.49


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
    calib: torch.Tensor | Callable[[torch.nn.Module], object] | None = None,
    input_bits: int = 8,
    input_granularity: str = "token",
    acc_bits: int = 16,
    tile: int | None = 64,
    activations: bool = False,
    ratio_step: float = RATIO_STEP,
    gram: bool = True,
    sink_weight: float = SINK_WEIGHT,
    msq_exponent: str = "search",
    ant_clip_min: float = ANT_CLIP_MIN,
    calib_cache: dict | None = None,
    include=None,
    progress=None,
    info: dict | None = None,
):
    """A quantized copy of ``model`` (every Linear layer except the tied LM head, or those
    ``include(name, module)`` selects). GPTQ/AXE schemes (integer inputs of ``input_bits``,
    per tensor or per token) and ``activations=True`` of ant/olive calibrate on ``calib``:
    held-out token windows [n, seq] of a causal LM, or ``calibrate(m)`` running any model's
    held-out calibration forwards; microscopiq runs its GPTQ path on them when given. GPTQ
    (gptq, axe-gptq, microscopiq) takes each layer's Hessian over every calibration token
    (``gram=True``) or over a 2,048-row sample (``gram=False``; GPFQ always); with token
    windows, the first token of each (the attention sink) weighs ``sink_weight`` rows in that
    Hessian (docs/evaluation.md). ``msq_exponent``: MicroScopiQ's MaB exponent, ``"search"``
    (the best of the MX value and its neighbours, the spec's option) or ``"mx"``.
    ``ant_clip_min``: the lowest ANT clip ratio of max |w| searched (the spec's range starts at
    0.75; 1.0 never clips a weight, docs/evaluation.md). ``calib_cache``: a dict kept across
    calls on the same model and ``calib`` to reuse GPTQ/AXE calibration (golden.axe). ``info``,
    when a dict, receives ``ebw`` (effective bits per weight, scales and metadata included) and
    per-layer details (``layers``)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    info = {} if info is None else info
    if scheme == "fp32":
        info["ebw"] = 32.0
        return model
    if msq_exponent not in ("search", "mx"):
        raise ValueError(f"msq_exponent must be 'search' or 'mx', not {msq_exponent!r}")
    if not 0 < ant_clip_min <= ANT_RATIO_TOP:
        raise ValueError(f"ant_clip_min must be in (0, {ANT_RATIO_TOP}], not {ant_clip_min!r}")
    if not ratio_step > 0:
        raise ValueError(f"ratio_step must be positive, not {ratio_step!r}")
    needs_calib = scheme in ("gptq", "axe-gptq", "axe-gpfq") or (
        activations and scheme in ("ant", "olive")
    )
    if needs_calib and calib is None:
        raise ValueError(f"{scheme} needs calibration data (calib)")
    if activations and scheme not in ("ant", "olive"):
        raise ValueError(f"activations=True is for ant and olive, not {scheme!r}")

    def select(n, m):
        return not n.endswith("lm_head") and (include is None or include(n, m))

    def calibrate(m):
        if callable(calib):
            calib(m)
            return
        for row in calib:
            m(row[None])

    def sink_rows(x: torch.Tensor) -> torch.Tensor:  # x [batch, seq, in]
        a = torch.ones(x.shape[:-1], dtype=torch.float64)
        a[..., 0] = sink_weight
        return a

    if not sink_weight >= 0:
        raise ValueError(f"sink_weight must be >= 0, not {sink_weight!r}")
    weigh = sink_rows if calib is not None and not callable(calib) and sink_weight != 1 else None
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
            gram=gram and scheme != "axe-gpfq", row_weight=weigh, calib_cache=calib_cache,
        )  # fmt: skip
    if scheme == "ant":
        from golden.ant_quant import quantize_module

        q, rep = quantize_module(
            model, bits, calib=calibrate if activations else None, include=select,
            ratios=clip_ratios(ratio_step, ANT_RATIO_TOP, ant_clip_min), progress=progress,
        )  # fmt: skip
        info["ebw"] = _ebw(layers, bits)
        info["layers"] = {n: r._asdict() for n, r in rep.items()}
        return q
    if scheme == "olive":
        from golden.olive import quantize_module_olive

        q, rep = quantize_module_olive(
            model, bits, calib=calibrate if activations else None, include=select,
            ratios=clip_ratios(ratio_step, OLIVE_RATIO_TOP), max_rows=2048, progress=progress,
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
            model, MsqParams(b=bits, e_search=msq_exponent == "search"),
            calibrate=calibrate if calib is not None else None, include=select, max_rows=2048,
            gram=gram, row_weight=weigh, progress=progress,
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


def clip_ratios(step: float, top: float, low: float = 0.75) -> tuple[float, ...]:
    """The clip-ratio grid low, low + step, ... <= top (the golden defaults' range: from 0.75;
    ANT's ratios of max |x| stop at 1.49, OliVe's of the 3-sigma clip at 2.49)."""
    n = int((top - low) / step + 1e-9) + 1
    return tuple(round(low + step * i, 4) for i in range(n))


# --------------------------------------------------------------------------------------------
# The other models: an fp32 reference, held-out calibration and the metrics of a quantized copy


class Task(NamedTuple):
    """One evaluation model: the fp32 ``model``, ``calibrate(m)`` over held-out inputs (never
    the evaluation ones) and ``metrics(q)`` of a (quantized) copy against the fp32 model."""

    name: str
    model: torch.nn.Module
    calibrate: Callable[[torch.nn.Module], object]
    metrics: Callable[[torch.nn.Module], dict[str, float]]


TASK_MODELS = ("minilm-l6", "fashion-cnn", "efficientnet-lite0")
EVAL_SENTENCES = 512  # MiniLM: the first sentences of the text (embedding cosine)
CALIB_SENTENCES = 256  # the last ones calibrate
CNN_CALIB = 2048  # training images calibrate the Fashion-MNIST CNN; the test set evaluates
PHOTO_CROPS = 64  # EfficientNet: crops evaluated; 32 others (another seed) calibrate


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rho (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a.numpy(), b.numpy()).statistic)


@torch.no_grad()
def minilm_task(name: str = "minilm-l6") -> Task:
    """MiniLM: mean cosine between fp32 and quantized embeddings of the first 512 Wikipedia
    sentences, and the quantized model's Spearman rho on WordSim-353 and SimLex-999 (cosine of
    the two words' embeddings against the human scores)."""
    from .models import load_minilm, wiki_sentences, word_pairs

    model = load_minilm(name)
    sentences = wiki_sentences()
    evals, calib = sentences[:EVAL_SENTENCES], sentences[-CALIB_SENTENCES:]
    ref = model.encode(evals, batch_size=64, convert_to_tensor=True)
    words = {w: word_pairs(w) for w in ("wordsim353", "simlex999")}

    def calibrate(m):
        m.encode(calib, batch_size=64)

    def metrics(q) -> dict[str, float]:
        emb = q.encode(evals, batch_size=64, convert_to_tensor=True)
        out = {"cosine": float(torch.nn.functional.cosine_similarity(emb, ref).mean())}
        for key, (pairs, human) in words.items():
            vocab = sorted({w for p in pairs for w in p})
            vec = dict(zip(vocab, q.encode(vocab, batch_size=128, convert_to_tensor=True)))
            sim = torch.stack([torch.dot(vec[a], vec[b]) for a, b in pairs]).double()
            out[f"spearman_{key}"] = _spearman(sim, human)
        return out

    return Task(name, model, calibrate, metrics)


@torch.no_grad()
def fashion_task(progress=None) -> Task:
    """The project's Fashion-MNIST CNN: top-1 accuracy on the 10,000 test images and agreement
    with the fp32 model's predictions; 2,048 training images calibrate."""
    from .models import fashion_mnist, load_fashion_cnn

    model = load_fashion_cnn(progress=progress)
    x, y = fashion_mnist("test")
    cx, _ = fashion_mnist("train")
    cx = cx[torch.linspace(0, cx.shape[0] - 1, CNN_CALIB).long()]
    ref = torch.cat([model(b) for b in x.split(1000)]).argmax(1)

    def calibrate(m):
        for b in cx.split(512):
            m(b)

    def metrics(q) -> dict[str, float]:
        pred = torch.cat([q(b) for b in x.split(1000)]).argmax(1)
        return {
            "accuracy": float((pred == y).double().mean()),
            "agreement": float((pred == ref).double().mean()),
        }

    return Task("fashion-cnn", model, calibrate, metrics)


@torch.no_grad()
def efficientnet_task() -> Task:
    """EfficientNet-Lite0 (no labelled ImageNet offline): top-1 agreement with the fp32 model on
    64 crops of scikit-learn's two photos, and how often the fp32 top-1 is in the quantized
    top-5; 32 crops of another seed calibrate."""
    from .models import load_efficientnet, photo_crops

    model = load_efficientnet()
    x = photo_crops(PHOTO_CROPS, seed=0)
    cx = photo_crops(32, seed=1)
    ref = model(x).argmax(1)

    def calibrate(m):
        for b in cx.split(16):
            m(b)

    def metrics(q) -> dict[str, float]:
        logits = q(x)
        top5 = logits.topk(5, dim=1).indices
        return {
            "agreement": float((logits.argmax(1) == ref).double().mean()),
            "top5_agreement": float((top5 == ref[:, None]).any(1).double().mean()),
        }

    return Task("efficientnet-lite0", model, calibrate, metrics)


def task_for(name: str, progress=None) -> Task:
    """The :class:`Task` of ``minilm-l6`` (or a sentence-transformers path with ``minilm:``
    prefix), ``fashion-cnn`` or ``efficientnet-lite0``."""
    if name == "fashion-cnn":
        return fashion_task(progress)
    if name == "efficientnet-lite0":
        return efficientnet_task()
    if name == "minilm-l6":
        return minilm_task()
    if name.startswith("minilm:"):
        return minilm_task(name.removeprefix("minilm:"))
    raise ValueError(f"no evaluation task for model {name!r}")
