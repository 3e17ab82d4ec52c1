"""MicroScopiQ golden model (format and design: docs/microscopiq.md).

Weights ``W [N, K]`` (nn.Linear layout). Micro-block (MiB): ``m`` consecutive output channels at
one input column. Macro-block (MaB): ``M`` output channels x ``T`` input columns with one shared
inlier exponent ``E``. Inliers: ``b``-bit sign-magnitude codes ``s | mag`` (MSB first), value
``q * 2^E``. Outliers: ``2b``-bit two's complement ``o`` at ``2^(E + dE)`` (dE per MiB), split
into ``hi = o >> b`` (b-bit two's complement, stored in the outlier's slot) and
``lo = o - hi * 2^b`` (unsigned b bits, stored in the slot of a pruned partner inlier).

Also here: the exact integer semantics (``msq_gemm``), the ReCoN function, the Benes router
compiler (MiB metadata -> the config word the hardware's config memory holds) and the
network model it is checked against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .accum import accumulate
from .calib import accumulate_hessians, capture_linear_inputs, linear_names
from .gptq import check_strength, gptq_loop
from .numerics import check_finite, check_int64, check_policy

__all__ = [
    "MsqParams",
    "KIND_INLIER",
    "KIND_HI",
    "KIND_LO",
    "round_half_away",
    "hi_lo",
    "join_hi_lo",
    "inlier_code",
    "inlier_value",
    "MsqQuant",
    "quantize_msq",
    "quantize_module_msq",
    "msq_gemm",
    "MsqGemm",
    "recon",
    "benes_switch_count",
    "benes_route",
    "benes_apply",
    "LANE_PASS",
    "LANE_MERGE",
    "LANE_ZERO",
    "compile_router",
    "decode_router",
    "router_bits",
    "pair_configurations",
]

KIND_INLIER, KIND_HI, KIND_LO = 0, 1, 2
LANE_PASS, LANE_MERGE, LANE_ZERO = 0, 1, 2


@dataclass(frozen=True)
class MsqParams:
    """b: inlier bits (2, 4 or 8); m: MiB size; M, T: MaB rows x columns; k_sigma: outlier
    threshold; d: dE bits; e_search: pick each MaB's E among the MX value - 1, + 0, + 1 by the
    inliers' squared rounding error (the spec's allowed option; off = the MX convention)."""

    b: int = 4
    m: int = 8
    M: int = 64
    T: int = 64
    k_sigma: float = 3.0
    d: int = 2
    e_search: bool = False

    def __post_init__(self) -> None:
        if self.b not in (2, 4, 8):
            raise ValueError(f"b must be 2, 4 or 8, not {self.b!r}")
        if not isinstance(self.m, int) or self.m < 2 or self.m & (self.m - 1):
            raise ValueError(f"m must be a power of two >= 2, not {self.m!r}")
        if not isinstance(self.M, int) or self.M < self.m or self.M % self.m:
            raise ValueError(f"M must be a multiple of m = {self.m}, not {self.M!r}")
        if not isinstance(self.T, int) or self.T < 1:
            raise ValueError(f"T must be a positive int, not {self.T!r}")
        if not self.k_sigma > 0:
            raise ValueError(f"k_sigma must be positive, not {self.k_sigma!r}")
        if not isinstance(self.d, int) or not 1 <= self.d <= 4:
            raise ValueError(f"d must be in 1..4, not {self.d!r}")

    @property
    def qmax(self) -> int:
        return 2 ** (self.b - 1) - 1

    @property
    def omax(self) -> int:
        return 2 ** (2 * self.b - 1) - 1


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def hi_lo(o: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``hi = o >> b`` (arithmetic, signed b-bit), ``lo = o - hi * 2^b`` (0 .. 2^b - 1)."""
    check_int64(o, "o")
    hi = o >> b
    return hi, o - (hi << b)


def join_hi_lo(hi: torch.Tensor, lo: torch.Tensor, b: int) -> torch.Tensor:
    return (hi << b) + lo


def inlier_code(q: torch.Tensor, b: int) -> torch.Tensor:
    """Sign-magnitude b-bit code of integer inliers (|q| <= 2^(b-1) - 1)."""
    return torch.where(q < 0, (1 << (b - 1)) | (-q), q)


def inlier_value(code: torch.Tensor, b: int) -> torch.Tensor:
    mag = code & ((1 << (b - 1)) - 1)
    return torch.where((code >> (b - 1)).bool(), -mag, mag)


def _floor_log2(x: torch.Tensor) -> torch.Tensor:
    """floor(log2 x) for x > 0 (exact on powers of two), 0 where x == 0."""
    safe = torch.where(x > 0, x, torch.ones_like(x))
    m, e = torch.frexp(safe)  # safe = m * 2^e, m in [0.5, 1)
    return torch.where(x > 0, e.to(torch.int64) - 1, torch.zeros_like(e, dtype=torch.int64))


class MsqQuant(NamedTuple):
    params: MsqParams
    codes: torch.Tensor  # [N, K] stored b-bit slot codes
    kind: torch.Tensor  # [N, K] KIND_INLIER / KIND_HI / KIND_LO
    partner: torch.Tensor  # [N, K] partner row of an outlier slot (its lo half), else -1
    exp: torch.Tensor  # [N // M, ceil(K / T)] MaB inlier exponents E
    de: torch.Tensor  # [N // m, K] per-MiB dE (0 where the MiB has no outlier)
    dequant: torch.Tensor  # [N, K] float64
    metadata_bits: int
    n_outliers: int

    @property
    def ebw(self) -> float:
        """Effective bits per weight: slot bits + metadata bits, per weight."""
        return (self.codes.numel() * self.params.b + self.metadata_bits) / self.codes.numel()

    def coefficients(self) -> torch.Tensor:
        """Integer c[n, k] of the integer semantics: q (inlier), o * 2^dE (outlier), 0."""
        b = self.params.b
        c = inlier_value(self.codes, b)
        hi = torch.where(self.codes >= 1 << (b - 1), self.codes - (1 << b), self.codes)
        rows = self.partner.clamp(min=0)
        lo = self.codes.gather(0, rows)
        de = self.de.repeat_interleave(self.params.m, dim=0)
        o = join_hi_lo(hi, lo, b) << de
        c = torch.where(self.kind == KIND_HI, o, c)
        return torch.where(self.kind == KIND_LO, torch.zeros_like(c), c)


def _mab_stats(w: torch.Tensor, p: MsqParams):
    """Per MaB row group of a column tile ``w`` [N, t]: mean, population std, inlier E."""
    g = w.reshape(-1, p.M, w.shape[1])
    mean = g.mean(dim=(1, 2))
    std = g.std(dim=(1, 2), unbiased=False)
    out = (g - mean[:, None, None]).abs() > p.k_sigma * std[:, None, None]
    inliers = torch.where(out, torch.zeros_like(g), g)
    inl = inliers.abs().amax(dim=(1, 2))
    e = _floor_log2(inl) - (p.b - 2)
    e = torch.where(inl > 0, e, torch.zeros_like(e))
    if p.e_search:
        cands = torch.stack([e, e - 1, e + 1])  # MX E first: argmin keeps it on a tie
        sc = cands[:, :, None, None].to(torch.float64)  # 2^+-c: exact, as ldexp
        q = round_half_away(inliers * torch.exp2(-sc)).clamp(-p.qmax, p.qmax)
        err = ((q * torch.exp2(sc) - inliers) ** 2).sum(dim=(2, 3))  # [3, MaB]
        e = cands.gather(0, err.argmin(0)[None])[0]
    if bool((e.abs() > 127).any()):
        raise ValueError("a macro-block exponent does not fit 8 bits (weights out of range)")
    return mean, std, e


# The numpy column rules on the CPU (False: the torch rules there too, as the device tests do)
_NUMPY_ON_CPU = True


class _Quantizer:
    """Column-at-a-time quantizer: MaB statistics set per tile, MiB rules per column.

    On the CPU the per-column rules run in numpy on float64 / int64 arrays: the GPTQ loop calls
    them once per column (about 150,000 times for SmolLM2), and numpy's per-operation overhead
    is a tenth of torch's on these [MiB, C, m] arrays. On any other device they run in torch on
    that device (:meth:`_columns_torch`), branch-free, so the host never waits for the device
    per column. Both are the same rules and give the same codes (a test compares them): every
    operation is exact or IEEE-identical (multiplying by 2^-E is ldexp; stable sorts keep ties
    by index). ``rha``, the sign-magnitude ``codes``, ``frexp`` and the ``hi``/``lo`` split are
    the forms of round_half_away, inlier_code, _floor_log2 and hi_lo above."""

    def __init__(self, n: int, k: int, p: MsqParams, device: torch.device):
        self.p = p
        self.numpy = device.type == "cpu" and _NUMPY_ON_CPU
        if self.numpy:
            self.codes = np.zeros((n, k), dtype=np.int64)
            self.kind = np.zeros((n, k), dtype=np.int64)
            self.partner = np.full((n, k), -1, dtype=np.int64)
            self.de = np.zeros((n // p.m, k), dtype=np.int64)
        else:
            self.codes = torch.zeros(n, k, dtype=torch.int64, device=device)
            self.kind = torch.zeros_like(self.codes)
            self.partner = torch.full_like(self.codes, -1)
            self.de = torch.zeros(n // p.m, k, dtype=torch.int64, device=device)
        self.exp = torch.zeros(n // p.M, -(-k // p.T), dtype=torch.int64, device=device)
        self.stats = None

    def enter_tile(self, w_tile: torch.Tensor, tile: int) -> None:
        p, g = self.p, w_tile.shape[0] // self.p.m
        mean, std, e = _mab_stats(w_tile, p)
        self.exp[:, tile] = e
        mib_of_mab = torch.arange(g, device=w_tile.device) * p.m // p.M
        ei = e[mib_of_mab][:, None]  # [MiB, 1]: the MaB exponent of each MiB
        ef = ei[..., None].to(torch.float64)
        # per MiB, broadcast over [MiB, C, m]: mean, outlier threshold, E, 2^-E and 2^E (exact
        # powers of two: multiplying by them is ldexp)
        self.stats = (mean[mib_of_mab][:, None, None], p.k_sigma * std[mib_of_mab][:, None, None],
                      ei, torch.exp2(-ef), torch.exp2(ef))  # fmt: skip
        if self.numpy:
            self.stats = tuple(t.numpy() for t in self.stats)

    def columns(self, wc: torch.Tensor, col: int) -> torch.Tensor:
        """Quantize columns ``wc`` [N, C] (C >= 1, all in the current tile) at ``col`` on;
        returns their dequantized values. Every MiB of every column at once (the same rules
        as the spec's per-MiB loop; ties go to the lower index)."""
        if not self.numpy:
            return self._columns_torch(wc, col)
        p, m = self.p, self.p.m
        mu, thr, ei, down, up = self.stats
        n, c = wc.shape
        g = n // m
        seg = wc.detach().numpy().reshape(g, m, c).transpose(0, 2, 1)  # [MiB, C, m]
        cols = slice(col, col + c)

        def back(t: np.ndarray) -> np.ndarray:  # [MiB, C, m] -> [N, C]
            return t.transpose(0, 2, 1).reshape(n, c)

        def rha(x: np.ndarray) -> np.ndarray:  # round_half_away
            return np.sign(x) * np.floor(np.abs(x) + 0.5)

        q = np.clip(rha(seg * down), -p.qmax, p.qmax)
        qi = q.astype(np.int64)
        codes = np.where(qi < 0, (1 << (p.b - 1)) | -qi, qi)  # inlier_code, sign-magnitude
        cand = np.abs(seg - mu) > thr
        if not cand.any():  # no outlier candidate: plain MX-INT inliers
            self.codes[:, cols] = back(codes)
            self.kind[:, cols] = KIND_INLIER
            self.partner[:, cols] = -1
            self.de[:, cols] = 0
            return torch.from_numpy(back(q * up))
        a = np.abs(seg)
        # at most m/2 outliers: the largest |w| stay outliers (ties: lower index first)
        outl = cand
        if (cand.sum(-1) > m // 2).any():
            order = np.argsort(-a, axis=-1, kind="stable")
            cs = np.take_along_axis(cand, order, -1)
            outl = np.zeros_like(cand)
            np.put_along_axis(outl, order, cs & (np.cumsum(cs, -1) <= m // 2), -1)
        n_out = outl.sum(-1, keepdims=True)
        # the n least salient inliers (|w|, ties lower index first) become partners
        order = np.argsort(np.where(outl, np.inf, a), axis=-1, kind="stable")
        part = np.zeros_like(outl)
        np.put_along_axis(part, order, np.arange(m) < n_out, -1)
        # the r-th outlier (by index) pairs with the r-th partner (by index)
        lane = np.arange(m)
        p_idx = np.sort(np.where(part, lane, lane + m), axis=-1) % m
        rank = np.maximum(np.cumsum(outl, -1) - 1, 0)
        mate = np.take_along_axis(p_idx, rank, -1)  # partner lane of each outlier (where outl)

        big = np.where(outl, a, 0.0).max(-1)  # [MiB, C]
        _, e2 = np.frexp(np.where(big > 0, big, 1.0))  # floor(log2 big) = e2 - 1
        de = np.clip(np.where(big > 0, e2 - 1, 0) - (2 * p.b - 2) - ei, 0, 2**p.d - 1)
        de = np.where(n_out[..., 0] > 0, de, 0)
        self.de[:, cols] = de
        sh = (ei + de)[..., None].astype(np.float64)
        o = np.clip(rha(seg * np.exp2(-sh)), -p.omax, p.omax).astype(np.int64)
        hi = o >> p.b
        lo = o - (hi << p.b)
        codes = np.where(outl, hi & ((1 << p.b) - 1), codes)
        lo_at = np.zeros_like(codes)
        # each partner lane is the mate of exactly one outlier: a scatter without collisions
        r_, c_, l_ = np.nonzero(outl)
        lo_at[r_, c_, mate[r_, c_, l_]] = lo[r_, c_, l_]
        codes = np.where(part, lo_at, codes)
        kind = np.where(outl, KIND_HI, np.where(part, KIND_LO, KIND_INLIER))
        row0 = (np.arange(g) * m)[:, None, None]
        partner = np.where(outl, row0 + mate, -1)
        d = np.where(outl, o * np.exp2(sh), q * up)
        self._store(cols, back, codes, kind, partner)
        return torch.from_numpy(back(np.where(part, 0.0, d)))

    def _columns_torch(self, wc: torch.Tensor, col: int) -> torch.Tensor:
        """:meth:`columns` in torch on the tensors' device. No branch on the data: the outlier
        cap and the partner scatter always run (with no candidate they change nothing)."""
        p, m = self.p, self.p.m
        mu, thr, ei, down, up = self.stats
        n, c = wc.shape
        g, dev = n // m, wc.device
        seg = wc.detach().reshape(g, m, c).transpose(1, 2)  # [MiB, C, m]
        cols = slice(col, col + c)

        def back(t: torch.Tensor) -> torch.Tensor:  # [MiB, C, m] -> [N, C]
            return t.transpose(1, 2).reshape(n, c)

        q = round_half_away(seg * down).clamp(-p.qmax, p.qmax)
        codes = inlier_code(q.to(torch.int64), p.b)
        cand = (seg - mu).abs() > thr
        a = seg.abs()
        # at most m/2 outliers: the largest |w| stay outliers (ties: lower index first)
        order = torch.argsort(-a, dim=-1, stable=True)
        cs = cand.gather(-1, order)
        outl = torch.zeros_like(cand).scatter(-1, order, cs & (cs.cumsum(-1) <= m // 2))
        n_out = outl.sum(-1, keepdim=True)
        # the n least salient inliers (|w|, ties lower index first) become partners
        lane = torch.arange(m, device=dev)
        order = torch.argsort(torch.where(outl, torch.inf, a), dim=-1, stable=True)
        part = torch.zeros_like(outl).scatter(-1, order, lane < n_out)
        # the r-th outlier (by index) pairs with the r-th partner (by index)
        p_idx = torch.sort(torch.where(part, lane, lane + m), dim=-1).values % m
        rank = (outl.cumsum(-1) - 1).clamp(min=0)
        mate = p_idx.gather(-1, rank)  # partner lane of each outlier (where outl)

        big = torch.where(outl, a, 0.0).amax(-1)  # [MiB, C]
        _, e2 = torch.frexp(torch.where(big > 0, big, 1.0))  # floor(log2 big) = e2 - 1
        e2 = e2.to(torch.int64)
        de = (torch.where(big > 0, e2 - 1, 0) - (2 * p.b - 2) - ei).clamp(0, 2**p.d - 1)
        de = torch.where(n_out[..., 0] > 0, de, 0)
        self.de[:, cols] = de
        sh = (ei + de)[..., None].to(torch.float64)
        o = round_half_away(seg * torch.exp2(-sh)).clamp(-p.omax, p.omax).to(torch.int64)
        hi = o >> p.b
        lo = o - (hi << p.b)
        codes = torch.where(outl, hi & ((1 << p.b) - 1), codes)
        # each partner lane is the mate of exactly one outlier: adding every outlier's lo at
        # its mate (0 from the other lanes) is a scatter without collisions
        lo_at = torch.zeros_like(codes).scatter_add(-1, mate, torch.where(outl, lo, 0))
        codes = torch.where(part, lo_at, codes)
        kind = torch.where(outl, KIND_HI, torch.where(part, KIND_LO, KIND_INLIER))
        row0 = (torch.arange(g, device=dev) * m)[:, None, None]
        partner = torch.where(outl, row0 + mate, -1)
        d = torch.where(outl, o * torch.exp2(sh), q * up)
        self._store(cols, back, codes, kind, partner)
        return back(torch.where(part, 0.0, d))

    def _store(self, cols: slice, back, codes, kind, partner) -> None:
        """Record the columns' codes, kinds and partner rows ([MiB, C, m] -> [N, C])."""
        self.codes[:, cols] = back(codes)
        self.kind[:, cols] = back(kind)
        self.partner[:, cols] = back(partner)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """codes, kind, partner and dE as tensors on the quantizer's device."""
        t = (self.codes, self.kind, self.partner, self.de)
        return tuple(torch.from_numpy(a) for a in t) if self.numpy else t

    def metadata_bits(self) -> int:
        p = self.p
        kind = self.tensors()[1]
        flagged = (kind == KIND_HI).reshape(-1, p.m, kind.shape[1]).sum(1)
        entry = [p.d + max(1, (p.m // 2 - 1).bit_length()) + n * 2 * (p.m - 1).bit_length()
                 for n in flagged[flagged > 0].tolist()]  # fmt: skip
        return self.exp.numel() * 8 + flagged.numel() + sum(entry)


def quantize_msq(
    weight: torch.Tensor,
    params: MsqParams | None = None,
    *,
    inputs: torch.Tensor | None = None,
    gram: torch.Tensor | None = None,
    damp: float = 0.01,
    act_order: bool = False,
    cross: torch.Tensor | None = None,
    asym: float = 0.0,
) -> MsqQuant:
    """MicroScopiQ-quantize ``weight`` [N, K] (N a multiple of M).

    With calibration ``inputs`` [samples, K]: the shared GPTQ loop (golden.gptq) with lazy
    blocks of T columns, so each MaB's statistics and exponent come from the compensated weights
    when the loop enters its tile; pruning and quantization error are both compensated.
    ``gram``: instead of ``inputs``, their Gram matrix X^T X [K, K] over many more rows
    (golden.calib.accumulate_hessians). ``act_order``: act-order with static groups, the
    macro-blocks (T columns each, the loop's lazy blocks) in descending order of their summed
    Hessian diagonal, each block's columns in place, so every MaB keeps its own columns and
    statistics (golden.gptq.group_order). ``cross`` with ``asym`` > 0: asymmetric calibration
    (golden.gptq.asymmetric_target; the MaB statistics come from the shifted weights).
    Without: round-to-nearest with magnitude pruning (the same rules, no compensation).
    """
    p = params or MsqParams()
    check_finite(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be [out, in], not {tuple(weight.shape)}")
    n, k = weight.shape
    if n % p.M:
        raise ValueError(f"output channels ({n}) must be a multiple of M = {p.M}")
    w = weight.detach().to(torch.float64).clone()
    qz = _Quantizer(n, k, p, w.device)
    deq = torch.zeros_like(w)

    def quant_col(wc: torch.Tensor, col: int) -> torch.Tensor:
        deq[:, col] = qz.columns(wc[:, None], col)[:, 0]
        return deq[:, col]

    if inputs is not None and gram is not None:
        raise ValueError("give the calibration inputs or their Gram matrix, not both")
    if inputs is None and gram is None:  # no compensation: a tile's columns are independent
        for t0 in range(0, k, p.T):
            qz.enter_tile(w[:, t0 : t0 + p.T], t0 // p.T)
            deq[:, t0 : t0 + p.T] = qz.columns(w[:, t0 : t0 + p.T], t0)
    else:
        if inputs is not None:
            check_finite(inputs, "inputs")
            if inputs.dim() != 2 or inputs.shape[1] != k:
                raise ValueError(f"inputs must be [samples, in={k}], not {tuple(inputs.shape)}")
            inputs = inputs.detach().to(torch.float64)

        def hook(w1: torch.Tensor, col0: int) -> None:
            qz.enter_tile(w1, col0 // p.T)

        gptq_loop(
            w, inputs, quant_col, act_order=act_order, static_groups=p.T, block_size=p.T,
            damp=damp, block_hook=hook, gram=gram, one_thread=True, cross=cross, asym=asym,
        )  # fmt: skip
    codes, kind, partner, de = qz.tensors()
    return MsqQuant(
        p, codes, kind, partner, qz.exp, de, deq, qz.metadata_bits(), int((kind == KIND_HI).sum()),
    )  # fmt: skip


def quantize_module_msq(
    model: torch.nn.Module,
    params: MsqParams | None = None,
    *,
    calibrate=None,
    include=None,
    max_rows: int = 1024,
    gram: bool = False,
    row_weight=None,
    progress=None,
    act_order: bool = False,
    capture: str = "float",
    inplace: bool = False,
    asym: float = 0.0,
) -> tuple[torch.nn.Module, dict[str, MsqQuant]]:
    """MicroScopiQ on every selected Linear layer of a copy of ``model`` (weight-only; layers
    whose output count is not a multiple of M are skipped and not reported). With
    ``calibrate(m)`` each layer runs the GPTQ path on its captured float inputs (at most
    ``max_rows`` rows per layer, or with ``gram=True`` the Gram matrix of every row, weighted
    by ``row_weight``, see golden.calib), captured in one pass over the float model
    (``capture="float"``) or stage by stage on the partly quantized copy (``"block"``,
    ``"sequential"``: golden.calib.quantize_sequential); ``act_order`` as in
    :func:`quantize_msq`; ``asym`` > 0 (with ``gram``): asymmetric calibration, the float
    model's inputs from a float stream beside the block-by-block capture
    (golden.calib.quantize_sequential ``paired``). Without ``calibrate``, the RTN fallback.
    The copy holds the dequantized weights; returns it and the per-layer results (EBW, metadata)."""
    import copy

    from .calib import CAPTURES, quantize_sequential

    if capture not in CAPTURES:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES)}, not {capture!r}")
    check_strength("asym", asym)
    if asym and not gram:
        raise ValueError("asym > 0 needs gram=True (GPTQ from Gram matrices)")
    p = params or MsqParams()
    names = [n for n in linear_names(model, include)
             if dict(model.named_modules())[n].out_features % p.M == 0]  # fmt: skip
    if not names:
        raise ValueError(f"no selected Linear layer has a multiple of M = {p.M} outputs")
    qmodel = model if inplace else copy.deepcopy(model)  # inplace: large models
    results: dict[str, MsqQuant] = {}

    def layer(n: str, inputs, g, c=None) -> None:
        lin = dict(qmodel.named_modules())[n]
        q = quantize_msq(lin.weight, p, inputs=inputs, gram=g, act_order=act_order, cross=c,
                         asym=asym if c is not None else 0.0)  # fmt: skip
        with torch.no_grad():
            lin.weight.copy_(q.dequant.to(lin.weight.dtype))
        results[n] = q

    def stage(stage_names: list[str], run=None, source=None) -> None:
        src = qmodel if source is None else source
        each = progress(stage_names) if progress and source is not None else stage_names
        if gram:
            grams = accumulate_hessians(src, calibrate, stage_names, row_weight=row_weight, run=run,
                                        cross=bool(asym))  # fmt: skip
            for n in each:
                g = grams.pop(n)
                layer(n, None, g[0], g[2] if asym else None)
        else:
            caps = capture_linear_inputs(src, calibrate, stage_names, max_rows, run=run)
            for n in each:
                layer(n, caps.pop(n).rows, None)

    if calibrate is None:
        for n in progress(names) if progress else names:
            layer(n, None, None)
    elif capture == "float":  # every layer's inputs from one pass over the float model
        with torch.no_grad():
            stage(names, source=model)
    else:
        quantize_sequential(qmodel, calibrate, names, stage, capture=capture, progress=progress,
                            paired=bool(asym))  # fmt: skip
    return qmodel, {n: results[n] for n in names}


class MsqGemm(NamedTuple):
    y: torch.Tensor  # [N, B] Y_int (P_O bits)
    s: torch.Tensor  # [N, tiles, B] S (P_I bits)
    ovf_inner: torch.Tensor  # [N, B] any tile's S overflowed
    ovf_outer: torch.Tensor  # [N, B]
    e_min: torch.Tensor  # [N // M] per output group


def msq_gemm(
    c: torch.Tensor,
    x: torch.Tensor,
    exp: torch.Tensor,
    *,
    M: int,
    T: int,
    inner_bits: int,
    outer_bits: int,
    policy: str = "wrap",
) -> MsqGemm:
    """The normative integer semantics: ``S[n, t] = sum_k c[n, k] x_k`` over tile t (k order,
    P_I bits), ``Y[n] = sum_t S[n, t] << (E[g, t] - E_min[g])`` (P_O bits); flags sticky.
    ``c`` [N, K] from :meth:`MsqQuant.coefficients`, ``x`` [K, B] activation codes."""
    check_policy(policy)
    check_int64(c, "c")
    check_int64(x, "x")
    n, k = c.shape
    tiles = -(-k // T)
    terms = c[:, :, None] * x[None, :, :]  # [N, K, B]
    s, oi = [], torch.zeros(n, x.shape[1], dtype=torch.bool)
    for t in range(tiles):
        r = accumulate(terms[:, t * T : (t + 1) * T].permute(0, 2, 1), inner_bits, policy)
        s.append(r.value)
        oi |= r.overflow
    s = torch.stack(s, dim=1)  # [N, tiles, B]
    e_min = exp.amin(dim=1)
    shift = (exp - e_min[:, None]).repeat_interleave(M, dim=0)  # [N, tiles]
    outer = accumulate((s << shift[:, :, None]).permute(0, 2, 1), outer_bits, policy)
    return MsqGemm(outer.value, s, oi, outer.overflow, e_min)


# -- ReCoN -------------------------------------------------------------------------------------


def recon(p: list[int], pairs: list[tuple[int, int]], de: int, b: int) -> list[int]:
    """The ReCoN function: ``q_i = ((p_i << b) + p_j) << dE`` for each pair (i, j), ``q_j = 0``,
    ``q_n = p_n`` for every other lane."""
    q = list(p)
    for i, j in pairs:
        q[i] = ((p[i] << b) + p[j]) << de
        q[j] = 0
    return q


def benes_switch_count(n: int) -> int:
    return 1 if n == 2 else n + 2 * benes_switch_count(n // 2)


def benes_route(perm: list[int]) -> list[int]:
    """Switch bits (1 = cross) that make output o receive input ``perm[o]`` in the recursive
    Benes network of :func:`benes_apply` (the looping algorithm)."""
    n = len(perm)
    if n == 2:
        return [int(perm[0] == 1)]
    inv = [0] * n
    for o, i in enumerate(perm):
        inv[i] = o
    upper_in = [None] * n  # per input: routed through the upper subnetwork?
    for start in range(0, n, 2):
        if upper_in[perm[start]] is not None:
            continue
        o = start  # output 2j takes the upper subnetwork; follow the loop
        while True:
            i = perm[o]
            upper_in[i], upper_in[i ^ 1] = True, False
            o2 = inv[i ^ 1] ^ 1  # the output sharing a switch with the lower one
            if upper_in[perm[o2]] is not None:
                break
            o = o2
    first = [int(not upper_in[2 * s]) for s in range(n // 2)]
    last = [0] * (n // 2)
    up, lo = [0] * (n // 2), [0] * (n // 2)
    for o in range(n):
        i = perm[o]
        if upper_in[i]:
            up[o // 2] = i // 2
            if o % 2:
                last[o // 2] = 1
        else:
            lo[o // 2] = i // 2
    return first + benes_route(up) + benes_route(lo) + last


def benes_apply(bits: list[int], values: list) -> list:
    """The network: first-stage switch s takes inputs (2s, 2s+1) to the upper / lower
    subnetworks' input s (crossed when its bit is 1); the last stage takes the subnetworks'
    output s to outputs (2s, 2s+1) (crossed when its bit is 1). Bits: first stage, upper
    subnetwork, lower subnetwork, last stage (recursively)."""
    n = len(values)
    if n == 2:
        return list(values[::-1] if bits[0] else values)
    h = n // 2
    sub = benes_switch_count(h) if h > 1 else 0
    first, rest = bits[:h], bits[h:]
    up_bits, lo_bits, last = rest[:sub], rest[sub : 2 * sub], rest[2 * sub :]
    up = [values[2 * s + first[s]] for s in range(h)]
    lo = [values[2 * s + 1 - first[s]] for s in range(h)]
    up, lo = benes_apply(up_bits, up), benes_apply(lo_bits, lo)
    out = []
    for s in range(h):
        out += [lo[s], up[s]] if last[s] else [up[s], lo[s]]
    return out


def router_bits(n: int, d: int) -> int:
    """Width of one ReCoN config word: switches, 2 mode bits per lane, dE."""
    return benes_switch_count(n) + 2 * n + d


def compile_router(pairs: list[tuple[int, int]], de: int, n: int = 8, d: int = 2) -> int:
    """MiB metadata -> ReCoN config word, LSB first: Benes switch bits (route input j to output
    i for every pair; the remaining lanes fill the remaining outputs in order), then the lane
    modes (2 bits each: 0 pass, 1 merge, 2 zero), then dE (d bits)."""
    outs, ins = [i for i, _ in pairs], [j for _, j in pairs]
    if len(set(outs + ins)) != 2 * len(pairs) or any(not 0 <= v < n for v in outs + ins):
        raise ValueError(f"pairs must be disjoint lanes in 0..{n - 1}: {pairs}")
    if not 0 <= de < 2**d:
        raise ValueError(f"dE must be in 0..{2**d - 1}, not {de}")
    perm = [None] * n
    for i, j in pairs:
        perm[i] = j
    free = iter(v for v in range(n) if v not in ins)
    perm = [p if p is not None else next(free) for p in perm]
    bits = benes_route(perm)
    modes = [LANE_PASS] * n
    for i, j in pairs:
        modes[i], modes[j] = LANE_MERGE, LANE_ZERO
    word = 0
    for k, v in enumerate(bits):
        word |= v << k
    pos = len(bits)
    for lane, mode in enumerate(modes):
        word |= mode << (pos + 2 * lane)
    return word | (de << (pos + 2 * n))


def decode_router(word: int, n: int = 8, d: int = 2) -> tuple[list[int], list[int], int]:
    s = benes_switch_count(n)
    bits = [(word >> k) & 1 for k in range(s)]
    modes = [(word >> (s + 2 * lane)) & 3 for lane in range(n)]
    return bits, modes, (word >> (s + 2 * n)) & ((1 << d) - 1)


def pair_configurations(n: int = 8) -> list[list[tuple[int, int]]]:
    """Every legal MiB configuration: sets of up to n/2 disjoint ordered (outlier, partner)
    lane pairs (5,937 for n = 8)."""
    out: list[list[tuple[int, int]]] = []

    def rec(free: list[int], pairs: list[tuple[int, int]]) -> None:
        # each matching once (pairs by increasing lower lane), then every orientation
        for orient in itertools.product((False, True), repeat=len(pairs)):
            out.append([(c, a) if o else (a, c) for (a, c), o in zip(pairs, orient)])
        if len(pairs) == n // 2:
            return
        last = pairs[-1][0] if pairs else -1
        for a in free:
            if a > last:
                for c in free:
                    if c > a:
                        rec([v for v in free if v not in (a, c)], [*pairs, (a, c)])

    rec(list(range(n)), [])
    return out
