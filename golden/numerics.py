"""Integer numerics shared by every golden model: overflow, rounding, codecs, bounds.

This is the one file that defines what "wrap", "saturate" and each rounding mode mean
(docs/numerics.md, "Overflow"). Everything here is
a pure function over ``torch.int64`` tensors (floats only where a rounding mode is applied to a
real-valued quotient).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = [
    "ROUNDING_MODES",
    "POLICIES",
    "IntFormat",
    "check_int64",
    "check_finite",
    "fits",
    "wrap",
    "saturate",
    "round_mode",
    "to_twos",
    "from_twos",
    "to_sign_mag",
    "from_sign_mag",
    "datatype_bound",
    "outer_bits_needed",
]

ROUNDING_MODES = ("half_even", "half_away", "half_up", "toward_zero", "floor")
POLICIES = ("wrap", "saturate")


def _check_bits(bits: int, name: str = "bits", minimum: int = 1) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool):
        raise TypeError(f"{name} must be an int, not {type(bits).__name__}")
    if bits < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {bits}")
    if bits > 62:
        # int64 arithmetic below must stay exact (sums of products need headroom).
        raise ValueError(f"{name} must be at most 62, not {bits}")


def check_int64(x: torch.Tensor, name: str = "tensor") -> None:
    """Raise TypeError unless ``x`` is a ``torch.int64`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}")
    if x.dtype != torch.int64:
        raise TypeError(f"{name} must have dtype torch.int64, not {x.dtype}")


def check_finite(x: torch.Tensor, name: str = "tensor") -> None:
    """Raise ValueError if a float tensor holds NaN or Inf (quantizers never guess)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, not {x.dtype}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(f"{name} holds {n_nan} NaN and {n_inf} Inf values; refusing to quantize")


def check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")


@dataclass(frozen=True)
class IntFormat:
    """A plain integer operand format: ``int{bits}`` (two's complement) or ``uint{bits}``.

    ``narrow`` (signed only) drops the most negative level, so the range is symmetric; the
    hardware still accepts every code, only the quantizer never produces -2^(bits-1).
    """

    bits: int
    signed: bool = True
    narrow: bool = False

    def __post_init__(self) -> None:
        _check_bits(self.bits, "bits", 2 if self.signed else 1)
        if self.narrow and not self.signed:
            raise ValueError("narrow applies to signed formats only")

    @property
    def min(self) -> int:
        if not self.signed:
            return 0
        return -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def name(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}{'n' if self.narrow else ''}"

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        """Integer values -> codes (bit patterns); values outside the format raise."""
        check_int64(values, "values")
        bad = (values < self.min) | (values > self.max)
        if bool(bad.any()):
            v = int(values[bad].flatten()[0])
            raise ValueError(f"value {v} is outside {self.name} [{self.min}, {self.max}]")
        return to_twos(values, self.bits) if self.signed else values.clone()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> integer values. Every b-bit code is valid (narrow only restricts encode)."""
        return from_twos(codes, self.bits) if self.signed else _check_codes(codes, self.bits)


def fits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Boolean mask: ``x`` is representable as a ``bits``-bit two's complement integer."""
    check_int64(x, "x")
    _check_bits(bits)
    return (x >= -(2 ** (bits - 1))) & (x <= 2 ** (bits - 1) - 1)


def wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the low ``bits`` bits of ``x`` and read them as two's complement (a plain adder)."""
    check_int64(x, "x")
    _check_bits(bits)
    m = 2**bits
    h = 2 ** (bits - 1)
    return torch.remainder(x + h, m) - h


def saturate(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Clamp ``x`` to [-2^(bits-1), 2^(bits-1) - 1]."""
    check_int64(x, "x")
    _check_bits(bits)
    return x.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def round_mode(x: torch.Tensor, mode: str = "half_even") -> torch.Tensor:
    """Round a real tensor to integers (returned as int64) with a named rounding mode.

    ``half_even``: ties to even; ``half_away``: ties away from zero; ``half_up``: ties toward
    +inf; ``toward_zero``: truncate; ``floor``: toward -inf.
    """
    if mode not in ROUNDING_MODES:
        raise ValueError(f"rounding mode must be one of {', '.join(ROUNDING_MODES)}, not {mode!r}")
    check_finite(x, "x")
    x = x.to(torch.float64)
    if mode == "half_even":
        r = torch.round(x)
    elif mode == "half_away":
        r = torch.sign(x) * torch.floor(torch.abs(x) + 0.5)
    elif mode == "half_up":
        r = torch.floor(x + 0.5)
    elif mode == "toward_zero":
        r = torch.trunc(x)
    else:
        r = torch.floor(x)
    return r.to(torch.int64)


def _check_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    check_int64(codes, "codes")
    _check_bits(bits)
    bad = (codes < 0) | (codes >= 2**bits)
    if bool(bad.any()):
        c = int(codes[bad].flatten()[0])
        raise ValueError(f"code {c} is out of range for a {bits}-bit code (0..{2**bits - 1})")
    return codes


def to_twos(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed integers -> ``bits``-bit two's complement codes (0 .. 2^bits - 1)."""
    check_int64(values, "values")
    _check_bits(bits, minimum=2)
    if not bool(fits(values, bits).all()):
        v = int(values[~fits(values, bits)].flatten()[0])
        raise ValueError(f"value {v} does not fit a {bits}-bit two's complement code")
    return torch.remainder(values, 2**bits)


def from_twos(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``bits``-bit two's complement codes -> signed integers. Layout: [b-1] sign ... [0]."""
    _check_codes(codes, bits)
    return torch.where(codes >= 2 ** (bits - 1), codes - 2**bits, codes)


def to_sign_mag(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed integers -> sign-magnitude codes. Layout MSB->LSB: [b-1] sign, [b-2:0] |v|.

    Zero encodes as +0 (code 0); the negative-zero code is never produced.
    """
    check_int64(values, "values")
    _check_bits(bits, minimum=2)
    lim = 2 ** (bits - 1) - 1
    bad = values.abs() > lim
    if bool(bad.any()):
        v = int(values[bad].flatten()[0])
        raise ValueError(f"value {v} does not fit a {bits}-bit sign-magnitude code (|v| <= {lim})")
    return torch.where(values < 0, 2 ** (bits - 1) + (-values), values)


def from_sign_mag(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Sign-magnitude codes -> signed integers; negative zero decodes to 0."""
    _check_codes(codes, bits)
    mag = codes % 2 ** (bits - 1)
    return torch.where(codes >= 2 ** (bits - 1), -mag, mag)


def _extremes(fmt: IntFormat | Iterable[int] | tuple[int, int]) -> tuple[int, int]:
    if isinstance(fmt, IntFormat):
        return fmt.min, fmt.max
    vals = [int(v) for v in fmt]
    if not vals:
        raise ValueError("a value set for datatype_bound must not be empty")
    return min(vals), max(vals)


def datatype_bound(
    k: int,
    w_fmt: IntFormat | Iterable[int],
    a_fmt: IntFormat | Iterable[int],
) -> int:
    """Smallest accumulator width P that cannot overflow for any K-term dot product.

    Exact, from the extreme products (int.md "Data-type bound"): ``hi = K * max(w*a)``,
    ``lo = K * min(w*a)`` over all representable pairs, then the smallest P with
    ``-2^(P-1) <= lo`` and ``hi <= 2^(P-1) - 1``. A product is bilinear, so its extremes over
    two finite value sets are among the four corner products. Formats are :class:`IntFormat`
    or any iterable of integer values (e.g. a decoded value table).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, not {k!r}")
    wlo, whi = _extremes(w_fmt)
    alo, ahi = _extremes(a_fmt)
    corners = [wlo * alo, wlo * ahi, whi * alo, whi * ahi]
    hi, lo = k * max(corners), k * min(corners)
    p = 1
    while not (-(2 ** (p - 1)) <= lo and hi <= 2 ** (p - 1) - 1):
        p += 1
    return p


def outer_bits_needed(inner_bits: int, k: int, tile: int) -> int:
    """Smallest P_O that never overflows when every tile fits P_I: P_I + ceil(log2(ceil(K/T)))."""
    _check_bits(inner_bits, "inner_bits", 2)
    if k < 1 or tile < 1:
        raise ValueError(f"k and tile must be positive, not k={k}, tile={tile}")
    return inner_bits + math.ceil(math.log2(math.ceil(k / tile)))
