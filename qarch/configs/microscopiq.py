"""MicroScopiQ family: multi-precision PE, ReCoN, array."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from hdl._params import check_int as _check_int

from .base import Config, batches, check_accumulators

__all__ = ["MsqPEConfig", "ReconConfig", "MsqArrayConfig"]


@dataclass(frozen=True)
class MsqPEConfig(Config):
    """MicroScopiQ multi-precision INT PE, b_max = 4 (``hdl.microscopiq.MsqPE``)."""

    a_bits: int = 8

    component: ClassVar[str] = "msq-pe"
    golden: ClassVar[str] = "integer products of the decoded weight lanes"

    def __post_init__(self) -> None:
        _check_int("a_bits", self.a_bits, 2, 16)

    @property
    def slug(self) -> str:
        return f"msq_pe_b4_a{self.a_bits}"

    def build(self):
        from hdl.microscopiq import MsqPE

        return MsqPE(a_bits=self.a_bits)


@dataclass(frozen=True)
class ReconConfig(Config):
    """ReCoN for one micro-block (``hdl.microscopiq.ReCoN``)."""

    lanes: int = 8
    prod_bits: int = 13
    b: int = 4
    d: int = 2

    component: ClassVar[str] = "recon"
    golden: ClassVar[str] = "golden.microscopiq.recon"

    def __post_init__(self) -> None:
        _check_int("lanes", self.lanes, 2, 64)
        if self.lanes & (self.lanes - 1):
            raise ValueError(f"lanes must be a power of two, not {self.lanes}")
        _check_int("prod_bits", self.prod_bits, 2, 40)
        if self.b not in (2, 4, 8):
            raise ValueError(f"b must be 2, 4 or 8, not {self.b}")
        _check_int("d", self.d, 1, 4)

    @property
    def slug(self) -> str:
        return f"recon_n{self.lanes}_p{self.prod_bits}_b{self.b}_d{self.d}"

    def build(self):
        from hdl.microscopiq import ReCoN

        return ReCoN(**dataclasses.asdict(self))


@dataclass(frozen=True)
class MsqArrayConfig(Config):
    """The MicroScopiQ array (``hdl.microscopiq.MsqArray``): b = 4 slots, ReCoN per row and
    micro-block of ``m`` lanes, the MaB tile is the array's K tile (T = rows)."""

    rows: int = 8
    cols: int = 8
    m: int = 8
    a_bits: int = 8
    d: int = 2
    acc_bits: int = 32
    out_bits: int = 32
    policy: str = "wrap"
    acc_depth: int = 4
    shift_bits: int = 4

    component: ClassVar[str] = "msq-array"
    golden: ClassVar[str] = "golden.microscopiq.msq_gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("m", self.m, 2, 64)
        _check_int("cols", self.cols, self.m, 64)
        if self.cols % self.m:
            raise ValueError(f"cols must be a multiple of m = {self.m}, not {self.cols}")
        _check_int("a_bits", self.a_bits, 2, 16)
        _check_int("d", self.d, 1, 4)
        check_accumulators(self)
        _check_int("shift_bits", self.shift_bits, 1, 6)

    @property
    def latency(self) -> int:
        """Vector in to outputs out: skew, PE register, two ReCoN stages, the P_I add, the
        output register (equal to ``hdl.microscopiq.MsqArray.latency``)."""
        return self.rows + 4

    def cycles(self, m: int, k: int, n: int) -> int:
        """Cycles of the GEMM [N, K] x [K, M] on tb/schedule.py's ``msq_schedule``: every pass
        loads R rows, streams its B vectors, then drains ``latency`` cycles (none after the
        last output), first input to last output inclusive."""
        tiles, blocks = -(-k // self.rows), -(-n // self.cols)
        seq = [b for _ in range(blocks) for b in batches(m, self.acc_depth) for _ in range(tiles)]
        return sum(self.rows + b + self.latency for b in seq)

    def utilisation(self, m: int, k: int, n: int) -> float:
        return m * k * n / (self.rows * self.cols * self.cycles(m, k, n))

    @property
    def slug(self) -> str:
        return (
            f"msq_array{self.rows}x{self.cols}_m{self.m}_a{self.a_bits}_d{self.d}"
            f"_s{self.shift_bits}_pi{self.acc_bits}_po{self.out_bits}_{self.policy}"
            f"_d{self.acc_depth}"
        )

    def build(self):
        from hdl.microscopiq import MsqArray

        return MsqArray(**dataclasses.asdict(self))
