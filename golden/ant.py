"""ANT numeric types: int, PoT and flint (docs/ant.md, "Format definitions"), 2/3..8 bits.

Every type is a fixed-length b-bit code whose value is an integer (smallest non-zero magnitude 1)
and which decodes to ``(sign, mag, exp)`` with ``value = (-1)**sign * mag * 2**exp``, so one
unified PE (small multiplier + shifter) serves all of them.

Bit layouts, MSB -> LSB:

- ``int{b}`` signed: two's complement; unsigned: plain binary. Decode ``(v < 0, |v|, 0)``.
- ``pot{b}`` signed: ``[b-1]`` sign, ``[b-2:0]`` k; unsigned: ``[b-1:0]`` k. k = 0 is 0, else
  the magnitude is 2^(k-1). Decode ``(sign, k > 0, max(k-1, 0))``. The sign-1 k-0 code ("-0")
  decodes to 0 and is never produced.
- ``flint{n}`` unsigned (first-one prefix code): MSB 0 -> the value is the code. MSB 1 -> k =
  number of consecutive 1s after the MSB; all ones -> 2^(2n-2); otherwise r = n-2-k mantissa
  bits m follow the terminating 0 and the value is (2^r + m) << (n-1+k-r).
  Decode: MSB 0 -> (0, c, 0); all ones -> (0, 1, 2n-2); else (0, 2^r + m, n-1+k-r).
- ``flint{n}`` signed: ``[n-1]`` sign + an (n-1)-bit unsigned flint magnitude; "-0" decodes to 0
  and is never produced (OliVe reuses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .numerics import check_int64

__all__ = ["ANT_KINDS", "AntType", "Decoded", "flint_unsigned_decode"]

ANT_KINDS = ("int", "pot", "flint")


class Decoded(NamedTuple):
    sign: torch.Tensor  # int64 0/1
    mag: torch.Tensor  # int64 >= 0
    exp: torch.Tensor  # int64 >= 0

    def value(self) -> torch.Tensor:
        return torch.where(self.sign.bool(), -1, 1) * (self.mag << self.exp)


def flint_unsigned_decode(codes: torch.Tensor, n: int) -> Decoded:
    """Decode n-bit unsigned flint codes to (0, mag, exp) by the prefix-code definition."""
    msb = codes >> (n - 1)
    low = codes & ((1 << (n - 1)) - 1)
    k = torch.zeros_like(codes)  # consecutive 1s after the MSB
    run = torch.ones_like(codes, dtype=torch.bool)
    for i in range(n - 1):
        run &= ((low >> (n - 2 - i)) & 1).bool()
        k += run.long()
    all_ones = k == n - 1
    r = (n - 2 - k).clamp(min=0)  # mantissa bits after the terminating 0
    m = low & ((1 << r) - 1)
    mag = torch.where(msb == 0, codes, torch.where(all_ones, 1, (1 << r) + m))
    exp = torch.where(msb == 0, 0, torch.where(all_ones, 2 * n - 2, n - 1 + k - r))
    return Decoded(torch.zeros_like(codes), mag, exp)


@dataclass(frozen=True)
class AntType:
    """One ANT type: ``kind`` in int / pot / flint, ``bits`` in 2..8, signed or unsigned."""

    kind: str
    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ANT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ANT_KINDS)}, not {self.kind!r}")
        if not isinstance(self.bits, int) or isinstance(self.bits, bool):
            raise TypeError(f"bits must be an int, not {type(self.bits).__name__}")
        lo = 3 if (self.signed and self.kind != "int") else 2
        # PoT magnitudes reach 2^(2^(b-1)-2) (signed) / 2^(2^b-2): int64 ends at 7 / 6 bits.
        hi = (7 if self.signed else 6) if self.kind == "pot" else 8
        if not lo <= self.bits <= hi:
            which = f" ({'signed' if self.signed else 'unsigned'})" if self.kind == "pot" else ""
            raise ValueError(f"{self.kind} bits must be in {lo}..{hi}{which}, not {self.bits}")
        if not isinstance(self.signed, bool):
            raise TypeError(f"signed must be a bool, not {type(self.signed).__name__}")

    @property
    def name(self) -> str:
        return f"{self.kind}{self.bits}{'' if self.signed else 'u'}"

    def _check(self, codes: torch.Tensor) -> None:
        check_int64(codes, "codes")
        bad = (codes < 0) | (codes >= 2**self.bits)
        if bool(bad.any()):
            c = int(codes[bad].flatten()[0])
            raise ValueError(f"code {c} is out of range for {self.name} (0..{2**self.bits - 1})")

    def decode(self, codes: torch.Tensor) -> Decoded:
        """Codes -> (sign, mag, exp)."""
        self._check(codes)
        b = self.bits
        top = 1 << (b - 1)
        if self.kind == "int":
            if self.signed:
                v = torch.where(codes >= top, codes - 2**b, codes)
                return Decoded((v < 0).long(), v.abs(), torch.zeros_like(v))
            return Decoded(torch.zeros_like(codes), codes.clone(), torch.zeros_like(codes))
        sign = (codes >> (b - 1)) if self.signed else torch.zeros_like(codes)
        field = codes & (top - 1) if self.signed else codes.clone()
        if self.kind == "pot":
            return Decoded(sign, (field > 0).long(), (field - 1).clamp(min=0))
        d = flint_unsigned_decode(field, b - 1 if self.signed else b)
        return Decoded(sign, d.mag, d.exp)

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> integer values; negative-zero codes give 0."""
        return self.decode(codes).value()

    def table(self) -> list[tuple[int, int]]:
        """Every (code, value) pair, in code order."""
        codes = torch.arange(2**self.bits, device="cpu")
        return list(zip(codes.tolist(), self.values(codes).tolist()))

    def producible_codes(self) -> torch.Tensor:
        """Codes the quantizer may emit: all but the sign-magnitude negative zero."""
        codes = torch.arange(2**self.bits, device="cpu")  # a host table; users move it
        if self.signed and self.kind != "int":
            codes = codes[codes != 1 << (self.bits - 1)]
        return codes

    def grid(self) -> torch.Tensor:
        """Sorted distinct values of the type (the quantization grid G_t)."""
        return torch.unique(self.values(self.producible_codes()))

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        """Grid values -> codes (0 -> code 0); a value not on the grid raises."""
        check_int64(values, "values")
        codes = self.producible_codes().to(values.device)
        vals = self.values(codes)
        order = torch.argsort(vals)
        sv, sc = vals[order], codes[order]
        idx = torch.searchsorted(sv, values).clamp(max=len(sv) - 1)
        bad = sv[idx] != values
        if bool(bad.any()):
            v = int(values[bad].flatten()[0])
            raise ValueError(f"value {v} is not representable in {self.name}")
        return sc[idx]
