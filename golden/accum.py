"""Exact integer dot products and GEMMs with P-bit accumulators (int.md, normative).

A dot product ``y = sum_k w_k * a_k`` runs in increasing k into a P-bit two's complement
register. ``wrap`` keeps the low P bits after every addition; ``saturate`` clamps after every
addition (k order matters). Both raise a sticky flag: wrap when the exact running sum leaves the
P-bit range, saturate when a clamp happened. Multi-stage accumulation splits K into contiguous
tiles of T terms (the last may be shorter), sums each tile in a P_I-bit inner accumulator and
adds the tile results, in tile order, in a P_O-bit outer accumulator with the same policy.

Every function also returns the exact (unbounded) result so a test can tell a correct wrap from
a wrong sum.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .numerics import _check_bits, check_int64, check_policy, fits, saturate, wrap

__all__ = ["AccResult", "GemmResult", "accumulate", "dot", "gemm"]


class AccResult(NamedTuple):
    value: torch.Tensor  # the P-bit register after the last addition (int64, signed)
    overflow: torch.Tensor  # bool, sticky
    exact: torch.Tensor  # the unbounded sum


class GemmResult(NamedTuple):
    y: torch.Tensor  # [N, M] final (outer) accumulator values
    exact: torch.Tensor  # [N, M] unbounded W @ A
    ovf_inner: torch.Tensor  # [N, M] bool: some tile's inner accumulator overflowed
    ovf_outer: torch.Tensor  # [N, M] bool: the outer accumulator overflowed
    tiles: torch.Tensor  # [n_tiles, N, M] inner accumulator value of each tile


def _max_abs(x: torch.Tensor) -> int:
    return int(x.abs().max()) if x.numel() else 0


def _check_exact(bound: int, what: str) -> None:
    """The exact sums must be int64 values: otherwise torch wraps silently and the golden model
    would report a wrong "exact" result (and a wrong flag). ``bound`` bounds every |sum|."""
    if bound >= 1 << 62:
        raise ValueError(f"operands too large for exact int64 sums: {what} (must stay below 2^62)")


def _check_operands(w: torch.Tensor, a: torch.Tensor, k: int) -> None:
    mw, ma = _max_abs(w), _max_abs(a)
    _check_exact(mw * ma * k, f"max |w| = {mw}, max |a| = {ma}, K = {k}")


def accumulate(terms: torch.Tensor, bits: int, policy: str = "wrap") -> AccResult:
    """Add ``terms`` along the last axis, in index order, into a ``bits``-bit accumulator.

    The register starts at 0. Returns the register value, the sticky overflow flag and the exact
    sum, each with the last axis reduced.
    """
    check_int64(terms, "terms")
    _check_bits(bits, "bits", 2)
    check_policy(policy)
    n = terms.shape[-1]
    _check_exact(_max_abs(terms) * n, f"max |term| = {_max_abs(terms)}, {n} terms")
    return _accumulate(terms, bits, policy)


def _accumulate(terms: torch.Tensor, bits: int, policy: str) -> AccResult:
    """:func:`accumulate` on checked arguments (the callers have bounded the sums)."""
    exact = terms.sum(-1)
    if policy == "wrap":
        # Wrapping is a ring homomorphism, so the register equals wrap(exact sum). The first
        # time the exact prefix leaves the range the register still equals the prefix, so
        # "exact running sum left the range" is also what an adder's overflow detector sees.
        prefix = terms.cumsum(-1)
        ovf = (
            (~fits(prefix, bits)).any(-1)
            if terms.shape[-1]
            else torch.zeros_like(exact, dtype=torch.bool)
        )
        return AccResult(wrap(exact, bits), ovf, exact)
    reg = torch.zeros_like(exact)
    ovf = torch.zeros_like(exact, dtype=torch.bool)
    for k in range(terms.shape[-1]):
        s = reg + terms[..., k]
        reg = saturate(s, bits)
        ovf |= reg != s
    return AccResult(reg, ovf, exact)


def dot(
    w: torch.Tensor,
    a: torch.Tensor,
    bits: int,
    policy: str = "wrap",
) -> AccResult:
    """Single-stage dot product over the last axis of integer operands ``w`` and ``a``."""
    check_int64(w, "w")
    check_int64(a, "a")
    if w.shape[-1] != a.shape[-1]:
        raise ValueError(
            f"w and a must share the reduction length, not {w.shape[-1]} and {a.shape[-1]}"
        )
    _check_bits(bits, "bits", 2)
    check_policy(policy)
    _check_operands(w, a, w.shape[-1])
    return _accumulate(w * a, bits, policy)


def gemm(
    w: torch.Tensor,
    a: torch.Tensor,
    *,
    inner_bits: int,
    tile: int | None = None,
    outer_bits: int | None = None,
    policy: str = "wrap",
) -> GemmResult:
    """Multi-stage integer GEMM ``Y = W @ A`` on decoded integer operands.

    ``w``: [N, K] (rows = output channels), ``a``: [K, M] (columns = activation vectors).
    K is split into tiles of ``tile`` terms (default: K, single stage); each tile is summed in
    an ``inner_bits`` accumulator, tile results in an ``outer_bits`` accumulator (default:
    ``inner_bits``), both with ``policy``. This is what the weight-stationary array computes
    with T = its row count.
    """
    check_int64(w, "w")
    check_int64(a, "a")
    if w.dim() != 2 or a.dim() != 2:
        raise ValueError(f"gemm needs 2-D operands, not w{tuple(w.shape)} and a{tuple(a.shape)}")
    n, k = w.shape
    if a.shape[0] != k:
        raise ValueError(f"w is [N={n}, K={k}] but a has {a.shape[0]} rows; they must match")
    if k == 0:
        raise ValueError("K must be at least 1")
    tile = k if tile is None else tile
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
        raise ValueError(f"tile must be a positive int, not {tile!r}")
    # A tile of T >= K terms is one tile: the same registers, flags and results as T = K, without
    # zero-padding to T (tile=2**40 would otherwise allocate N * T * M products).
    tile = min(tile, k)
    outer_bits = inner_bits if outer_bits is None else outer_bits
    _check_bits(inner_bits, "inner_bits", 2)
    _check_bits(outer_bits, "outer_bits", 2)
    check_policy(policy)
    _check_operands(w, a, k)  # bounds every tile sum and every outer sum too
    n_tiles = -(-k // tile)
    # products [N, K, M]; zero-padding the last tile adds zero terms, which never change a
    # register, a clamp or a flag.
    prod = w[:, :, None] * a[None, :, :]
    pad = n_tiles * tile - k
    if pad:
        prod = torch.cat([prod, prod.new_zeros(n, pad, prod.shape[2])], dim=1)
    prod = prod.reshape(n, n_tiles, tile, -1).permute(1, 0, 3, 2)  # [tiles, N, M, T]
    inner = _accumulate(prod, inner_bits, policy)
    outer = _accumulate(inner.value.permute(1, 2, 0), outer_bits, policy)
    return GemmResult(
        y=outer.value,
        exact=inner.exact.sum(0),
        ovf_inner=inner.overflow.any(0),
        ovf_outer=outer.overflow,
        tiles=inner.value,
    )
