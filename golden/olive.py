"""OliVe: outlier-victim pair quantization (docs/olive.md), golden model.

Values are in *integer units of the normal type* (int4: -7..7; flint4: 0, ±1 .. ±16; int8:
-127..127); a tensor's real value is ``value * scale``. Every element code is ``bits`` wide,
MSB first:

- normal, int sign-magnitude: ``s | m...m``; flint4: ``s | flint3`` (golden.ant). The
  negative-zero pattern ``1 0...0`` is the **identifier**: "I am the victim (value 0), my
  partner is an outlier".
- outlier, abfloat: ``s | e (E bits) | m (M bits)``, magnitude ``(2^M + m) << (e + bias)``,
  (e, m) = (0, 0) excluded; ``bias`` is the smallest with ``(2^M + 1) << bias`` above the
  normal maximum.

Pairs are elements (2i, 2i+1) of the last axis (the reduction axis K). Packed layout: 4-bit
pairs in one byte, even element in bits [3:0], odd in [7:4]; 8-bit pairs in two bytes, even
first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .ant import Decoded, flint_unsigned_decode
from .ant_quant import quantize_to_grid
from .calib import capture_linear_inputs, linear_names
from .numerics import check_finite, check_int64

__all__ = [
    "NORMAL_TYPES",
    "POLICIES",
    "DEFAULT_RATIOS",
    "OliveFormat",
    "round_merged",
    "apply_pairs",
    "encode_pairs",
    "pack_pairs",
    "unpack_pairs",
    "decode_pairs",
    "decode_pair_operands",
    "OliveQuant",
    "OutlierStats",
    "quantize_olive",
    "quantize_module_olive",
]

NORMAL_TYPES = {"int4": 4, "flint4": 4, "int8": 8}
POLICIES = ("keep_larger", "keep_first")
DEFAULT_RATIOS = tuple(round(0.75 + 0.02 * i, 2) for i in range(88))  # 0.75 .. 2.49


@dataclass(frozen=True)
class OliveFormat:
    """A normal type plus its abfloat outlier type. ``e_bits``: abfloat exponent bits
    (default 2: E2M1 at 4 bits, E2M5 at 8 bits)."""

    normal: str = "int4"
    e_bits: int = 2

    def __post_init__(self) -> None:
        if self.normal not in NORMAL_TYPES:
            raise ValueError(
                f"normal type must be one of {', '.join(NORMAL_TYPES)}, not {self.normal!r}"
            )
        if not isinstance(self.e_bits, int) or not 1 <= self.e_bits <= self.bits - 1:
            raise ValueError(
                f"e_bits must be in 1..{self.bits - 1} for {self.bits}-bit codes, not "
                f"{self.e_bits!r}"
            )
        # the largest outlier, (2^(M+1) - 1) << (2^E - 1 + bias), must be an int64 value
        top = _outlier_top_bit(self.bits, self.e_bits, self.normal_max)
        if top > 62:
            ok = [
                e
                for e in range(1, self.bits)
                if _outlier_top_bit(self.bits, e, self.normal_max) <= 62
            ]
            raise ValueError(
                f"e_bits={self.e_bits} gives {self.normal} outliers up to 2^{top}, beyond the "
                f"golden model's int64 values; e_bits must be in 1..{max(ok)}"
            )

    @property
    def bits(self) -> int:
        return NORMAL_TYPES[self.normal]

    @property
    def m_bits(self) -> int:
        return self.bits - 1 - self.e_bits

    @property
    def identifier(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def normal_max(self) -> int:
        return 16 if self.normal == "flint4" else 2 ** (self.bits - 1) - 1

    @property
    def bias(self) -> int:
        """Smallest bias whose smallest outlier ``(2^M + 1) << bias`` exceeds the normal max."""
        return _bias(self.m_bits, self.normal_max)

    def _check(self, codes: torch.Tensor) -> None:
        check_int64(codes, "codes")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 1 << self.bits):
            raise ValueError(f"codes must be in 0..{(1 << self.bits) - 1} for {self.normal}")

    # -- element decoders (each as (sign, mag, exp), value = (-1)^sign * mag << exp) --------
    def normal_decode(self, codes: torch.Tensor) -> Decoded:
        """Normal codes (the identifier decodes to 0)."""
        self._check(codes)
        low = self.bits - 1
        sign = codes >> low
        mag_field = codes & ((1 << low) - 1)
        if self.normal == "flint4":
            d = flint_unsigned_decode(mag_field, low)
            mag, exp = d.mag, d.exp
        else:
            mag, exp = mag_field, torch.zeros_like(codes)
        return Decoded(torch.where(mag == 0, 0, sign), mag, exp)

    def abfloat_decode(self, codes: torch.Tensor) -> Decoded:
        """abfloat codes by the formula ((e, m) = (0, 0) is never produced; it decodes as the
        formula gives, 2^M << bias, like the hardware)."""
        self._check(codes)
        sign = codes >> (self.bits - 1)
        e = (codes >> self.m_bits) & ((1 << self.e_bits) - 1)
        m = codes & ((1 << self.m_bits) - 1)
        return Decoded(sign, (1 << self.m_bits) + m, e + self.bias)

    def normal_grid(self) -> torch.Tensor:
        codes = torch.arange(1 << self.bits, device="cpu")  # host tables: users move them
        return torch.unique(self.normal_decode(codes).value())

    def outlier_mags(self) -> torch.Tensor:
        """Every abfloat magnitude, ascending ((e, m) = (0, 0) excluded)."""
        codes = torch.arange(1, 1 << (self.bits - 1), device="cpu")
        return torch.sort(self.abfloat_decode(codes).value()).values

    def merged_grid(self) -> torch.Tensor:
        out = self.outlier_mags()
        return torch.unique(torch.cat([self.normal_grid(), out, -out]))

    def outlier_max(self) -> int:
        return int(self.outlier_mags()[-1])

    # -- element encoders (exact values only) -------------------------------------------------
    def _encode(self, values: torch.Tensor, codes: torch.Tensor, vals: torch.Tensor, what: str):
        check_int64(values, "values")
        hit = values.unsqueeze(-1) == vals
        if not bool(hit.any(-1).all()):
            bad = values[~hit.any(-1)][0].item()
            raise ValueError(f"{bad} is not a {self.normal} {what} value")
        return codes[hit.to(torch.int64).argmax(-1)]

    def encode_normal(self, values: torch.Tensor) -> torch.Tensor:
        codes = torch.arange(1 << self.bits, device=values.device)
        codes = codes[codes != self.identifier]
        return self._encode(values, codes, self.normal_decode(codes).value(), "normal")

    def encode_outlier(self, values: torch.Tensor) -> torch.Tensor:
        codes = torch.arange(1 << self.bits, device=values.device)
        codes = codes[(codes & (self.identifier - 1)) != 0]
        return self._encode(values, codes, self.abfloat_decode(codes).value(), "outlier")


def _bias(m_bits: int, normal_max: int) -> int:
    b = 0
    while ((1 << m_bits) + 1) << b <= normal_max:
        b += 1
    return b


def _outlier_top_bit(bits: int, e_bits: int, normal_max: int) -> int:
    """Bit length of the largest abfloat magnitude ``(2^(M+1) - 1) << (2^E - 1 + bias)``."""
    m_bits = bits - 1 - e_bits
    return m_bits + 1 + (1 << e_bits) - 1 + _bias(m_bits, normal_max)


def round_merged(y: torch.Tensor, fmt: OliveFormat) -> torch.Tensor:
    """Nearest value of the merged grid (normal values and ±outlier magnitudes), saturating at
    the largest outlier. ``y`` float in normal units -> int64.

    Ties go toward +inf, except the tie between the normal maximum and the smallest outlier
    magnitude, which goes to the outlier on both signs (int4: 9.5 -> 12 and -9.5 -> -12). That
    is the reference's rule: its merged grid is the sorted normal values followed by the sorted
    outliers, and its nearest-value kernel keeps the *last* closest entry, so an outlier beats
    an equally close normal value whatever the sign; elsewhere the entries are ascending and
    the last closest is the larger (half up)."""
    v = quantize_to_grid(y, fmt.merged_grid(), "half_up")
    low = int(fmt.outlier_mags()[0])  # the smallest outlier; nothing lies between it and normal_max
    tie = y == -(fmt.normal_max + low) / 2  # the positive tie already went up, to +low
    return torch.where(tie, -low, v)


def _pairs(v: torch.Tensor) -> torch.Tensor:
    """[..., K] -> [..., ceil(K/2), 2], odd K padded with one zero."""
    if v.shape[-1] % 2:
        v = torch.cat([v, torch.zeros_like(v[..., :1])], dim=-1)
    return v.reshape(*v.shape[:-1], v.shape[-1] // 2, 2)


def apply_pairs(
    v: torch.Tensor, fmt: OliveFormat, policy: str = "keep_larger"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair rules on merged-grid values ``[..., K]`` -> (values ``[..., K']``, victim mask),
    K' = K rounded up to even. A victim is 0 and is stored as the identifier."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    p = _pairs(v)
    out = p.abs() > fmt.normal_max
    both = out[..., 0] & out[..., 1]
    if policy == "keep_larger":  # ties keep the even element
        keep_even = p[..., 0].abs() >= p[..., 1].abs()
    else:
        keep_even = torch.ones_like(both)
    victim = torch.stack(
        [
            (out[..., 1] & ~out[..., 0]) | (both & ~keep_even),
            (out[..., 0] & ~out[..., 1]) | (both & keep_even),
        ],
        dim=-1,
    )
    vals = torch.where(victim, 0, p)
    return vals.flatten(-2), victim.flatten(-2)


def encode_pairs(vals: torch.Tensor, victim: torch.Tensor, fmt: OliveFormat) -> torch.Tensor:
    """Element codes ``[..., K']`` from :func:`apply_pairs` output. The pair invariants are
    checked, since a broken pair would decode to other values: K' even, at most one outlier per
    pair, an outlier's partner flagged as the victim, a victim 0 and next to an outlier."""
    check_int64(vals, "vals")
    if not isinstance(victim, torch.Tensor) or victim.dtype != torch.bool:
        raise TypeError("victim must be a bool tensor (the mask apply_pairs returns)")
    if victim.shape != vals.shape:
        raise ValueError(f"victim {tuple(victim.shape)} and vals {tuple(vals.shape)} differ")
    if vals.shape[-1] % 2:
        raise ValueError("pair values need an even last dimension (apply_pairs pads odd K)")
    is_out = vals.abs() > fmt.normal_max
    po, pv, vv = _pairs(is_out), _pairs(victim), _pairs(vals)
    for bad, what in (
        (po[..., 0] & po[..., 1], "holds two outliers"),
        (pv & (vv != 0), "has a victim flag on a non-zero value"),
        (pv & ~po.flip(-1), "has a victim whose partner is not an outlier"),
        (po & ~pv.flip(-1), "has an outlier whose partner is not flagged as the victim"),
    ):
        if bool(bad.any()):
            raise ValueError(f"a pair {what} (apply_pairs output is required)")
    codes = torch.full_like(vals, fmt.identifier)
    normal = ~is_out & ~victim
    codes[normal] = fmt.encode_normal(vals[normal])
    codes[is_out] = fmt.encode_outlier(vals[is_out])
    return codes


def pack_pairs(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Element codes ``[..., K']`` (K' even) -> packed bytes: 4-bit ``[..., K'/2]`` with the
    even element in bits [3:0]; 8-bit ``[..., K']`` (two bytes per pair, even first)."""
    check_int64(codes, "codes")
    if codes.shape[-1] % 2:
        raise ValueError("pair codes need an even last dimension")
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 1 << bits):
        bad = int(codes[(codes < 0) | (codes >= 1 << bits)][0])
        raise ValueError(f"codes must be in 0..{(1 << bits) - 1} for {bits}-bit pairs, not {bad}")
    if bits == 8:
        return codes.clone()
    p = codes.reshape(*codes.shape[:-1], -1, 2)
    return p[..., 0] | (p[..., 1] << 4)


def unpack_pairs(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_pairs`."""
    check_int64(packed, "packed")
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits}")
    if packed.numel() and (int(packed.min()) < 0 or int(packed.max()) > 255):
        bad = int(packed[(packed < 0) | (packed > 255)][0])
        raise ValueError(f"packed pairs are bytes (0..255), not {bad}")
    if bits == 8:
        return packed.clone()
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(-2)


def decode_pair_operands(codes: torch.Tensor, fmt: OliveFormat) -> Decoded:
    """Element codes ``[..., K']`` (pairs along the last axis) -> (sign, mag, exp) per element,
    as the pair decoder does: own code = identifier -> 0; partner = identifier -> abfloat;
    else normal."""
    fmt._check(codes)
    if codes.shape[-1] % 2:
        raise ValueError("pair codes need an even last dimension")
    p = codes.reshape(*codes.shape[:-1], -1, 2)
    partner = p.flip(-1)
    ident = fmt.identifier
    nd, ad = fmt.normal_decode(p), fmt.abfloat_decode(p)
    is_victim = p == ident
    is_out = (partner == ident) & ~is_victim
    z = torch.zeros_like(p)
    sign = torch.where(is_victim, z, torch.where(is_out, ad.sign, nd.sign))
    mag = torch.where(is_victim, z, torch.where(is_out, ad.mag, nd.mag))
    exp = torch.where(is_victim, z, torch.where(is_out, ad.exp, nd.exp))
    return Decoded(sign.flatten(-2), mag.flatten(-2), exp.flatten(-2))


def decode_pairs(codes: torch.Tensor, fmt: OliveFormat) -> torch.Tensor:
    """Element codes ``[..., K']`` -> integer values (normal units)."""
    return decode_pair_operands(codes, fmt).value()


class OutlierStats(NamedTuple):
    pairs: int
    outlier_pairs: int  # pairs holding an outlier (after the pair rules: one per pair)
    collisions: int  # outlier-outlier pairs (one outlier became the victim)

    @property
    def outlier_fraction(self) -> float:
        return self.outlier_pairs / self.pairs if self.pairs else 0.0

    @property
    def collision_fraction(self) -> float:
        return self.collisions / self.pairs if self.pairs else 0.0


class OliveQuant(NamedTuple):
    fmt: OliveFormat
    codes: torch.Tensor  # [..., K'] element codes
    packed: torch.Tensor  # pack_pairs(codes)
    scale: torch.Tensor  # [out] per channel (weights) or [1] (activations)
    dequant: torch.Tensor  # [..., K] float (padding dropped)
    stats: OutlierStats
    mse: dict[str, float]  # per candidate normal type


def _stats(v: torch.Tensor, fmt: OliveFormat) -> OutlierStats:
    p = _pairs(v).abs() > fmt.normal_max
    n_out = p.sum(-1)
    return OutlierStats(int(n_out.numel()), int((n_out > 0).sum()), int((n_out == 2).sum()))


def _quantize_with(x, fmt, scale, policy):
    """x [..., K] float, scale broadcastable -> (values [..., K'], victim, dequant [..., K])."""
    v = round_merged(x / scale, fmt)
    vals, victim = apply_pairs(v, fmt, policy)
    deq = vals[..., : x.shape[-1]].to(torch.float64) * scale
    return v, vals, victim, deq


def quantize_olive(
    x: torch.Tensor,
    bits: int = 4,
    *,
    role: str = "weight",
    normal: str | None = None,
    policy: str = "keep_larger",
    e_bits: int = 2,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    alpha: float | None = None,
) -> OliveQuant:
    """OliVe-quantize ``x`` (pairs along its last axis).

    Base clip ``max(|mu + 3 sigma|, |mu - 3 sigma|)`` (unbiased std) per output channel
    (``role="weight"``, x ``[out, in]``) or per tensor (``"activation"``); search
    ``alpha = r * x_max`` over ``ratios`` with the normal maximum at alpha, merged-grid rounding
    (half up), pair rules, MSE; per channel for weights. At 4 bits the normal type (int4 or
    flint4) with the lower total MSE wins unless ``normal`` is given; 8 bits uses int8.
    ``alpha`` skips the search (activations at run time, with the calibrated alpha).
    Unsigned tensors are treated as signed: the identifier needs the spare sign code.
    """
    check_finite(x, "x")
    if role not in ("weight", "activation"):
        raise ValueError(f"role must be 'weight' or 'activation', not {role!r}")
    if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
        raise ValueError(f"ratios must be non-empty, finite and positive, not {ratios!r}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be finite and positive, not {alpha!r}")
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits!r}")
    if role == "weight" and x.dim() != 2:
        raise ValueError(f"weights must be [out, in], not {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError("cannot quantize an empty tensor")
    if normal is None:
        names = ["int4", "flint4"] if bits == 4 else ["int8"]
    else:
        if NORMAL_TYPES.get(normal) != bits:
            raise ValueError(f"normal type {normal!r} is not a {bits}-bit OliVe normal type")
        names = [normal]
    x = x.detach().to(torch.float64)
    if role == "weight":
        mu, sd = x.mean(dim=1, keepdim=True), x.std(dim=1, keepdim=True)
    else:
        mu, sd = x.mean().reshape(1), x.std().reshape(1)
    if not torch.isfinite(sd).all():  # a single element: no spread
        sd = torch.zeros_like(sd)
    x_max = torch.maximum((mu + 3 * sd).abs(), (mu - 3 * sd).abs())
    # A constant row (sigma = 0, mu = 0) falls back to its max |x| so the scale stays positive.
    fallback = x.abs().amax(dim=-1, keepdim=True) if role == "weight" else x.abs().max().reshape(1)
    x_max = torch.where(x_max > 0, x_max, fallback.clamp(min=1e-12))
    best = None
    mse = {}
    for name in names:
        fmt = OliveFormat(name, e_bits)
        if alpha is not None:
            cands = [torch.full_like(x_max, float(alpha))]
        else:
            cands = [r * x_max for r in ratios]
        best_err = best_alpha = None
        for a in cands:
            scale = a / fmt.normal_max
            s = scale if role == "weight" else scale.reshape([1] * x.dim())
            *_, deq = _quantize_with(x, fmt, s, policy)
            err = ((deq - x) ** 2).mean(dim=-1) if role == "weight" else ((deq - x) ** 2).mean()
            if best_err is None:
                best_err, best_alpha = err, a.clone()
            else:
                better = err < best_err  # strict: the smallest ratio wins ties
                best_alpha = torch.where(better.reshape(best_alpha.shape), a, best_alpha)
                best_err = torch.where(better, err, best_err)
        mse[name] = float(best_err.mean())
        if best is None or mse[name] < best[0]:
            best = (mse[name], fmt, best_alpha)
    _, fmt, a = best
    scale = a / fmt.normal_max
    s = scale if role == "weight" else scale.reshape([1] * x.dim())
    v, vals, victim, deq = _quantize_with(x, fmt, s, policy)
    codes = encode_pairs(vals, victim, fmt)
    return OliveQuant(
        fmt, codes, pack_pairs(codes, bits), scale.reshape(-1), deq.to(torch.float32),
        _stats(v, fmt), mse,
    )  # fmt: skip


class LayerReport(NamedTuple):
    weight_type: str
    weight_stats: OutlierStats
    act_type: str | None
    act_alpha: float | None
    codes: torch.Tensor | None = None  # with keep_codes: the pair codes and channel scales
    scales: torch.Tensor | None = None


def _act_hook(fmt: OliveFormat, alpha: float, policy: str):
    def hook(module, args):
        x = args[0]
        q = quantize_olive(
            x, fmt.bits, role="activation", normal=fmt.normal, policy=policy,
            e_bits=fmt.e_bits, alpha=alpha,
        )  # fmt: skip
        return (q.dequant.to(x.dtype), *args[1:])

    return hook


def quantize_module_olive(
    model: torch.nn.Module,
    bits: int = 4,
    *,
    calib=None,
    policy: str = "keep_larger",
    include=None,
    max_rows: int = 4096,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    progress=None,
    keep_codes: bool = False,
    inplace: bool = False,
) -> tuple[torch.nn.Module, dict[str, LayerReport]]:
    """OliVe on every Linear layer of a copy of ``model`` (W4A4 / W8A8 with ``calib``).

    Weights: pairs along ``in``, per-channel clip search, normal type per layer. With
    ``calib(m)`` (runs calibration forwards), each layer's input gets a per-tensor alpha and
    type from the calibration inputs (an even sample of ``max_rows`` rows), and the copy
    quantizes it (pairs along the hidden axis) on every later forward. ``include(name,
    module)`` selects layers; ``ratios`` is the clip search grid; ``progress(iterable)`` wraps
    the layer loop; ``keep_codes`` keeps each layer's weight codes and scales in its report.
    """
    import copy

    names = linear_names(model, include)
    acts = capture_linear_inputs(model, calib, names, max_rows) if calib is not None else {}
    qmodel = model if inplace else copy.deepcopy(model)  # inplace: large models
    qmods = dict(qmodel.named_modules())
    report = {}
    for n in progress(names) if progress else names:
        lin = qmods[n]
        wq = quantize_olive(lin.weight, bits, policy=policy, ratios=ratios)
        with torch.no_grad():
            lin.weight.copy_(wq.dequant)
        a_fmt = a_alpha = None
        if calib is not None:
            aq = quantize_olive(acts[n].rows, bits, role="activation", policy=policy, ratios=ratios)
            a_fmt, a_alpha = aq.fmt, float(aq.scale[0]) * aq.fmt.normal_max
            lin.register_forward_pre_hook(_act_hook(a_fmt, a_alpha, policy))
        report[n] = LayerReport(
            wq.fmt.normal, wq.stats, a_fmt and a_fmt.normal, a_alpha,
            *((wq.codes, wq.scale) if keep_codes else ()),
        )  # fmt: skip
    return qmodel, report
