"""The OPTQ/GPTQ column loop, shared by AXE (golden.axe) and MicroScopiQ (golden.microscopiq).

``H = 2 X X^T`` over the (quantized) calibration inputs, dead columns zeroed, damping of
``damp`` times the mean diagonal, the upper Cholesky factor of ``H^-1``, lazy blocks of
``block_size`` columns, in one of three column orders: the layer's own, act-order (descending
``diag(H)``, Frantar et al.'s "act-order"), or a caller's permutation (MicroScopiQ's static
groups: whole macro-blocks in act-order, each block's columns in place). The caller's
``quant_col(w_col, col)`` quantizes one column (real units, ``col`` = original index) and
returns its dequantized value; the loop pushes ``(w - dequant) / [H^-1]_kk`` onto the columns
not yet quantized. ``block_hook(w_block, col0)`` sees a copy of each block's up-to-date weights
[out, block] before its first column is quantized (``col0``: the original index of that first
column; MicroScopiQ computes its macro-block statistics there).

Asymmetric calibration (GPTQv2 / GPTAQ, Li et al., ICML 2025): plain GPTQ minimizes
``||(W - Q) X~||`` over the inputs ``X~`` the quantized model gives the layer; the model's real
target is the *float* model's output ``W X``. Since ``||W X - Q X~||^2 = ||W X - V X~||^2 +
||(V - Q) X~||^2`` for the least-squares optimum ``V = W X X~^T (X~ X~^T)^-1 = W + W C H^-1``
(``C = (X - X~)^T X~`` [in, in] in row layout, summed over the calibration rows), GPTQ run on
``V`` instead of ``W`` minimizes the float-target error. :func:`asymmetric_target` computes
``W + alpha W C H^-1`` with the damped ``H``; the exact optimum (``alpha`` = 1) over-fits a few
thousand calibration rows (SmolLM2: perplexity in the hundreds), the published method scales
the shift by 0.25 (docs/evaluation.md). The grid (the per-channel scales) stays the one of ``W``.

The loop, the damped Hessian's Cholesky factors and its inverse run in the dtype of ``w``:
float32 as in the published algorithm (GPTQ, AXE), or float64 (MicroScopiQ, whose per-column
rules are float64); the Hessian itself is accumulated in float64 and damped in the loop's
dtype. :func:`reference_gptq` is the published algorithm written out for one quantizer (round
to nearest on a per-channel symmetric grid), for the speed comparison in ``make bench`` and an
agreement test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = [
    "gptq_loop", "column_order", "group_order", "reference_gptq", "asymmetric_target",
    "check_strength",
]  # fmt: skip


@contextmanager
def _one_thread(on: bool = True) -> Iterator[None]:
    """MicroScopiQ's column rules are thousands of small numpy/torch ops: on one thread they run
    up to 2x faster than when each is handed to a pool (measured on 2 cores); the plain loop's
    rank-1 updates over 1,536 rows gain from the pool instead. The results are the same."""
    if not on:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def column_order(diag: torch.Tensor, act_order: bool) -> torch.Tensor:
    """Act-order: columns by descending Hessian diagonal (ties in column order); else 0..k-1."""
    k = diag.shape[0]
    if act_order:
        return torch.argsort(diag, descending=True, stable=True)
    return torch.arange(k, device=diag.device)


def group_order(diag: torch.Tensor, group: int) -> torch.Tensor:
    """Act-order with static groups: the groups of ``group`` consecutive columns (the last may
    be shorter) by descending summed Hessian diagonal, each group's columns in their own order;
    a group's statistics are then computed once, on its own columns, as without act-order."""
    k, dev = diag.shape[0], diag.device
    mass = torch.stack([diag[s : s + group].sum() for s in range(0, k, group)])
    first = (torch.argsort(mass, descending=True, stable=True) * group).tolist()
    return torch.cat([torch.arange(s, min(s + group, k), device=dev) for s in first])


def _check_order(order: torch.Tensor, k: int, device: torch.device) -> torch.Tensor:
    order = torch.as_tensor(order, dtype=torch.int64, device=device)
    if order.shape != (k,) or not torch.equal(
        torch.sort(order).values, torch.arange(k, device=device)
    ):
        raise ValueError(f"order must be a permutation of 0..{k - 1}")
    return order


def _hessian(xq: torch.Tensor | None, gram: torch.Tensor | None, k: int) -> torch.Tensor:
    if (xq is None) == (gram is None):
        raise ValueError("give the calibration inputs xq or their Gram matrix, not both")
    if gram is None:
        xq = xq.to(torch.float64)
    h = 2 * (xq.T @ xq if gram is None else gram.to(torch.float64))
    if h.shape != (k, k):
        raise ValueError(f"the Gram matrix must be [{k}, {k}], not {tuple(h.shape)}")
    if not bool(torch.isfinite(h).all()):
        raise ValueError(
            "the Hessian holds NaN or Inf (non-finite calibration inputs or row weights)"
        )
    return h


def check_strength(name: str, value: object) -> None:
    """The strength of asymmetric calibration (``asym`` / ``alpha``): a finite number >= 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, not {value!r}")


def asymmetric_target(
    w: torch.Tensor, gram: torch.Tensor, cross: torch.Tensor, alpha: float, damp: float = 0.01
) -> torch.Tensor:
    """``W + alpha W C (H + damp mean(diag H) I)^-1`` in float64 (``w`` [out, in]; ``gram`` =
    ``X~^T X~``, ``cross`` = ``(X - X~)^T X~``, both [in, in] over the same weighted rows; see
    the module doc), returned in ``w``'s dtype. Dead inputs (zero diagonal) get no shift."""
    check_strength("alpha", alpha)
    k = w.shape[1]
    if gram.shape != (k, k) or cross.shape != (k, k):
        raise ValueError(
            f"gram and cross must be [{k}, {k}], not {tuple(gram.shape)} and {tuple(cross.shape)}"
        )
    if not bool(torch.isfinite(cross).all()):
        raise ValueError("the cross matrix holds NaN or Inf (non-finite calibration inputs)")
    h = gram.to(torch.float64).clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h.diagonal().add_(damp * torch.mean(torch.diag(h)))
    c = cross.to(torch.float64).clone()
    c[:, dead] = 0
    w64 = w.detach().to(torch.float64)
    shift = torch.linalg.solve(h, (w64 @ c).T).T  # W C H^-1 (H symmetric)
    return (w64 + alpha * shift).to(w.dtype)


def _inverse_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of the damped ``H^-1`` (``h`` is modified)."""
    h.diagonal().add_(damp * torch.mean(torch.diag(h)))
    try:
        return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    except torch.linalg.LinAlgError:
        raise ValueError(
            f"the damped Hessian is not positive definite (damp={damp}); raise damp or check the "
            "calibration data"
        ) from None


def gptq_loop(
    w: torch.Tensor,
    xq: torch.Tensor | None,
    quant_col: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    act_order: bool = False,
    static_groups: int | None = None,
    order: torch.Tensor | None = None,
    block_size: int = 128,
    damp: float = 0.01,
    block_hook: Callable[[torch.Tensor, int], None] | None = None,
    gram: torch.Tensor | None = None,
    one_thread: bool = False,
    cross: torch.Tensor | None = None,
    asym: float = 0.0,
) -> None:
    """Run the loop over ``w`` [out, in] (float32 or float64, modified in place) with inputs
    ``xq`` [samples, in], or with their Gram matrix ``gram`` = X^T X [in, in] accumulated over
    many more rows (golden.calib.accumulate_hessians; ``xq`` is then None). ``act_order`` with
    ``static_groups`` = G: :func:`group_order` over groups of G columns. ``order``: any column
    permutation instead (not with ``act_order``). Quantized values are returned through
    ``quant_col``. ``one_thread``: run the loop on one torch thread (for heavy callbacks).
    ``cross`` = (X - X~)^T X~ [in, in] (X the float model's inputs of the layer, over the same
    rows as ``xq`` / ``gram``) with ``asym`` > 0: asymmetric calibration, the loop starts from
    :func:`asymmetric_target` (``w`` then holds the shifted weights before the loop runs)."""
    out, k = w.shape
    if w.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"w must be float32 or float64, not {w.dtype}")
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, not {block_size!r}")
    if not (isinstance(damp, (int, float)) and math.isfinite(damp) and damp > 0):
        raise ValueError(f"damp must be finite and positive, not {damp!r}")
    if order is not None and act_order:
        raise ValueError("give act_order or an explicit order, not both")
    check_strength("asym", asym)
    if asym and cross is None:
        raise ValueError("asym > 0 needs the cross matrix (X - X~)^T X~ of the float inputs")
    h64 = _hessian(xq, gram, k)  # 2 X~^T X~, float64
    if asym:  # h64 / 2 is X~^T X~ exactly (a power of two)
        w.copy_(asymmetric_target(w, h64 / 2, cross, asym, damp))
    h = h64.to(w.dtype)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    bounds = list(range(0, k, block_size))  # lazy-block starts, in processing order
    if order is not None:
        perm = _check_order(order, k, w.device)
    elif act_order and static_groups is not None:
        if not isinstance(static_groups, int) or static_groups < 1:
            raise ValueError(f"static_groups must be a positive int, not {static_groups!r}")
        perm = group_order(torch.diag(h), static_groups)
        # a lazy block never straddles two groups (a short last group may come first)
        firsts = perm[perm % static_groups == 0].tolist()
        sizes = [min(static_groups, k - c) for c in firsts]
        starts = [0, *itertools.accumulate(sizes[:-1])]
        bounds = [s + j for s, n in zip(starts, sizes) for j in range(0, n, block_size)]
    else:
        perm = column_order(torch.diag(h), act_order)
    cols = perm.tolist()  # the one transfer of the order to the host, for the callbacks
    identity = cols == list(range(k))
    if not identity:
        h = h[perm][:, perm]
    hinv = _inverse_factor(h, damp)
    # [H^-1]_kk on the host, once per layer: a Python divisor is the same float as the 0-d
    # tensor and costs no indexing op per column (nor a device wait per column or block)
    diag = hinv.diagonal().tolist()
    w_p = w if identity else w[:, perm]
    with _one_thread(one_thread):
        for i1, i2 in zip(bounds, bounds[1:] + [k]):
            if block_hook is not None:
                block_hook(w_p[:, i1:i2].clone(), cols[i1])
            # the block column-major ([cols, out]): each column the callback sees, each error
            # and each rank-1 update is one contiguous run (the published loop's [out, cols]
            # layout strides every one of them); the values are the same floats
            w1 = w_p[:, i1:i2].T.contiguous()
            err1 = torch.empty_like(w1)
            rows = hinv[i1:i2, i1:i2].unbind(0)
            for i, (wc, e, hr) in enumerate(zip(w1.unbind(0), err1.unbind(0), rows)):
                deq = quant_col(wc, cols[i1 + i])
                torch.sub(wc, deq, out=e).div_(diag[i1 + i])
                # rounded product, then subtraction, as the published e h^T matmul: addr_ on
                # this layout would go to BLAS ger, whose fused multiply-add rounds differently
                w1[i:].sub_(torch.outer(hr[i:], e))
            w_p[:, i2:].addmm_(err1.T.contiguous(), hinv[i1:i2, i2:], alpha=-1)
    if not identity:
        w[:, perm] = w_p


def reference_gptq(
    w: torch.Tensor,
    gram: torch.Tensor,
    bits: int,
    *,
    act_order: bool = False,
    block_size: int = 128,
    damp: float = 0.01,
) -> torch.Tensor:
    """The published GPTQ algorithm (Frantar et al., 2023, Algorithm 1, with lazy batch updates
    and act-order) in float32, quantizing inline to a per-channel symmetric grid (scale
    max|w| / (2^(bits-1) - 1), codes clamped to the signed range), as a yardstick for
    :func:`gptq_loop`: returns the integer codes [out, in]."""
    w = w.detach().to(torch.float32).clone()
    out, k = w.shape
    qmax = 2 ** (bits - 1) - 1
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    h = 2 * gram.to(torch.float32).clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    perm = torch.arange(k, device=h.device)
    if act_order:
        perm = torch.argsort(torch.diag(h), descending=True)
    w, h = w[:, perm], h[perm][:, perm]
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, device=h.device)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        h1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            c = torch.clamp(torch.round(w1[:, i] / scale), -qmax - 1, qmax)
            q[:, i1 + i] = c
            e = (w1[:, i] - c * scale) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1).matmul(h1[i, i:].unsqueeze(0))
            err1[:, i] = e
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    return q[:, torch.argsort(perm)].to(torch.int64)
