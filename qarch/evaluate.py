"""`qarch eval`'s measurements: perplexity of a causal LM and the other models' tasks.

Perplexity: context 512, non-overlapping windows from the first token, every window's 511
next-token predictions count (docs/evaluation.md). Calibration never touches these
tokens: it reads held-out windows from ``qarch.models.CALIB_OFFSET`` on. The schemes themselves
are ``qarch.schemes`` (``qarch.quantize(model, config)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["perplexity", "perplexities", "Task", "TASK_MODELS", "task_for"]

CONTEXT = 512


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
    device = next(model.parameters()).device  # the windows go where the model is
    nll = []  # every window has context - 1 predictions: the mean of the means is the mean
    for s in progress(starts) if progress else starts:
        window = ids[s : s + context][None].to(device)
        nll.append(model(window, labels=window).loss.item())
    return {n: math.exp(sum(nll[: n // context]) / (n // context)) for n in counts}


def perplexity(model, ids: torch.Tensor, tokens: int, context: int = CONTEXT, progress=None):
    """exp(mean NLL) over the first ``tokens`` tokens (a multiple of ``context``)."""
    return perplexities(model, ids, (tokens,), context, progress)[tokens]


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

    return float(spearmanr(a.cpu().numpy(), b.cpu().numpy()).statistic)


@torch.no_grad()
def minilm_task(name: str = "minilm-l6", device: torch.device | None = None) -> Task:
    """MiniLM: mean cosine between fp32 and quantized embeddings of the first 512 Wikipedia
    sentences, and the quantized model's Spearman rho on WordSim-353 and SimLex-999 (cosine of
    the two words' embeddings against the human scores)."""
    from .models import load_minilm, wiki_sentences, word_pairs

    model = load_minilm(name)
    if device is not None:
        model.to(device)  # encode() runs where the model is
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
def fashion_task(progress=None, device: torch.device | None = None) -> Task:
    """The project's Fashion-MNIST CNN: top-1 accuracy on the 10,000 test images and agreement
    with the fp32 model's predictions; 2,048 training images calibrate."""
    from .models import fashion_mnist, load_fashion_cnn

    model = load_fashion_cnn(progress=progress)
    x, y = fashion_mnist("test")
    cx, _ = fashion_mnist("train")
    cx = cx[torch.linspace(0, cx.shape[0] - 1, CNN_CALIB).long()]
    if device is not None:
        model, x, y, cx = model.to(device), x.to(device), y.to(device), cx.to(device)
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
def efficientnet_task(device: torch.device | None = None) -> Task:
    """EfficientNet-Lite0 (no labelled ImageNet offline): top-1 agreement with the fp32 model on
    64 crops of scikit-learn's two photos, and how often the fp32 top-1 is in the quantized
    top-5; 32 crops of another seed calibrate."""
    from .models import load_efficientnet, photo_crops

    model = load_efficientnet()
    x = photo_crops(PHOTO_CROPS, seed=0)
    cx = photo_crops(32, seed=1)
    if device is not None:
        model, x, cx = model.to(device), x.to(device), cx.to(device)
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


def task_for(name: str, progress=None, device: torch.device | None = None) -> Task:
    """The :class:`Task` of ``minilm-l6`` (or a sentence-transformers path with ``minilm:``
    prefix), ``fashion-cnn`` or ``efficientnet-lite0``, its model and data on ``device``
    (default: where they load, the CPU)."""
    if name == "fashion-cnn":
        return fashion_task(progress, device)
    if name == "efficientnet-lite0":
        return efficientnet_task(device)
    if name == "minilm-l6":
        return minilm_task(device=device)
    if name.startswith("minilm:"):
        return minilm_task(name.removeprefix("minilm:"), device)
    raise ValueError(f"no evaluation task for model {name!r}")
