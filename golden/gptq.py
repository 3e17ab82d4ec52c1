"""The OPTQ/GPTQ column loop, shared by AXE (golden.axe) and MicroScopiQ (golden.microscopiq).

``H = 2 X X^T`` over the (quantized) calibration inputs, dead columns zeroed, damping of
``damp`` times the mean diagonal, the upper Cholesky factor of ``H^-1``, lazy blocks of
``block_size`` columns, optional act-order (descending ``diag(H)``). The caller's
``quant_col(w_col, col)`` quantizes one column (real units, ``col`` = original index) and
returns its dequantized value; the loop pushes ``(w - dequant) / [H^-1]_kk`` onto the columns
not yet quantized. ``block_hook(w_block, i1, i2)`` sees each block's up-to-date weights before
its first column is quantized (MicroScopiQ computes its macro-block statistics there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["gptq_loop", "column_order"]


@contextmanager
def _one_thread() -> Iterator[None]:
    """The column loop is thousands of small ops: on one thread they run up to 2x faster than
    when each is handed to a pool (measured on 2 cores); the results are the same."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def column_order(diag: torch.Tensor, act_order: bool) -> torch.Tensor:
    k = diag.shape[0]
    return torch.argsort(diag, descending=True, stable=True) if act_order else torch.arange(k)


def gptq_loop(
    w: torch.Tensor,
    xq: torch.Tensor | None,
    quant_col: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    act_order: bool = False,
    block_size: int = 128,
    damp: float = 0.01,
    block_hook: Callable[[torch.Tensor, int, int], None] | None = None,
    gram: torch.Tensor | None = None,
) -> None:
    """Run the loop over ``w`` [out, in] (float64, modified in place) with inputs ``xq``
    [samples, in], or with their Gram matrix ``gram`` = X^T X [in, in] accumulated over many
    more rows (golden.calib.accumulate_hessians; ``xq`` is then None). Quantized values are
    returned to the caller through ``quant_col``."""
    out, k = w.shape
    if (xq is None) == (gram is None):
        raise ValueError("give the calibration inputs xq or their Gram matrix, not both")
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, not {block_size!r}")
    if not (isinstance(damp, (int, float)) and math.isfinite(damp) and damp > 0):
        raise ValueError(f"damp must be finite and positive, not {damp!r}")
    h = 2 * (xq.T @ xq if gram is None else gram.to(torch.float64))
    if h.shape != (k, k):
        raise ValueError(f"the Gram matrix must be [{k}, {k}], not {tuple(h.shape)}")
    if not bool(torch.isfinite(h).all()):
        raise ValueError(
            "the Hessian holds NaN or Inf (non-finite calibration inputs or row weights)"
        )
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    perm = column_order(torch.diag(h), act_order)
    w_p, h = w[:, perm], h[perm][:, perm]
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=torch.float64)
    try:
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    except torch.linalg.LinAlgError:
        raise ValueError(
            f"the damped Hessian is not positive definite (damp={damp}); raise damp or check the "
            "calibration data"
        ) from None
    with _one_thread():
        for i1 in range(0, k, block_size):
            i2 = min(i1 + block_size, k)
            w1 = w_p[:, i1:i2].clone()
            if block_hook is not None:
                block_hook(w1, i1, i2)
            err1 = torch.zeros_like(w1)
            h1 = hinv[i1:i2, i1:i2]
            for i in range(i2 - i1):
                deq = quant_col(w1[:, i], int(perm[i1 + i]))
                e = (w1[:, i] - deq) / h1[i, i]
                w1[:, i:] -= e[:, None] * h1[i, i:][None, :]
                err1[:, i] = e
            w_p[:, i2:] -= err1 @ hinv[i1:i2, i2:]
