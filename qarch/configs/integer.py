"""INT family: the INT PE and the weight-stationary INT array (also the AXE arrays)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from golden.numerics import IntFormat, check_policy, datatype_bound
from hdl._params import check_bool as _check_bool
from hdl._params import check_int as _check_int

from .base import Config, StreamingArray, check_accumulators, sgn, warn_narrow

__all__ = ["IntPEConfig", "IntArrayConfig"]


@dataclass(frozen=True)
class _IntOperands(Config):
    """Operand and accumulator fields common to the INT family."""

    w_bits: int = 4
    a_bits: int = 8
    w_signed: bool = True
    a_signed: bool = True
    acc_bits: int = 32
    policy: str = "wrap"

    def __post_init__(self) -> None:
        _check_int("w_bits", self.w_bits, 2, 16)
        _check_int("a_bits", self.a_bits, 2, 16)
        _check_bool("w_signed", self.w_signed)
        _check_bool("a_signed", self.a_signed)
        _check_int("acc_bits", self.acc_bits, 2, 62)
        check_policy(self.policy)

    @property
    def w_fmt(self) -> IntFormat:
        return IntFormat(self.w_bits, self.w_signed)

    @property
    def a_fmt(self) -> IntFormat:
        return IntFormat(self.a_bits, self.a_signed)


@dataclass(frozen=True)
class IntPEConfig(_IntOperands):
    """One INT multiply-accumulate PE (``hdl.int_pe.IntPE``)."""

    component: ClassVar[str] = "int-pe"
    golden: ClassVar[str] = "golden.accum.accumulate"

    @property
    def slug(self) -> str:
        return (
            f"int_pe_w{self.w_bits}{sgn(self.w_signed)}_a{self.a_bits}{sgn(self.a_signed)}"
            f"_p{self.acc_bits}_{self.policy}"
        )

    def build(self):
        from hdl.int_pe import IntPE

        return IntPE(**dataclasses.asdict(self))


@dataclass(frozen=True)
class IntArrayConfig(_IntOperands, StreamingArray):
    """A weight-stationary R x C INT array (``hdl.array.IntArray``); tile T = rows.

    ``acc_bits`` (P_I) defaults to the exact data-type bound for K = rows; a narrower P_I warns
    with :class:`AccumulatorWidthWarning` when the design is built.
    """

    rows: int = 4
    cols: int = 4
    acc_bits: int = field(default=0)  # 0: the data-type bound for K = rows
    out_bits: int = 32
    acc_depth: int = 4
    double_buffer: bool = False
    pipeline: int = 0  # 0..3: see hdl.array.SystolicArray

    component: ClassVar[str] = "int-array"
    golden: ClassVar[str] = "golden.accum.gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", self.bound_bits)
        super().__post_init__()
        check_accumulators(self)

    @property
    def bound_bits(self) -> int:
        """The data-type bound for one tile (K = rows)."""
        return datatype_bound(
            self.rows, IntFormat(self.w_bits, self.w_signed), IntFormat(self.a_bits, self.a_signed)
        )

    @property
    def slug(self) -> str:
        return (
            f"int_array{self.rows}x{self.cols}_w{self.w_bits}{sgn(self.w_signed)}"
            f"_a{self.a_bits}{sgn(self.a_signed)}_pi{self.acc_bits}_po{self.out_bits}"
            f"_{self.policy}_d{self.acc_depth}{self.stream_suffix}"
        )

    def build(self):
        from hdl.array import IntArray

        warn_narrow(self)
        return IntArray(**dataclasses.asdict(self))
