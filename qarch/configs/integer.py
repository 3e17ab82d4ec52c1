"""INT family: the INT PE and the weight-stationary INT array (also the AXE arrays)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from golden.numerics import IntFormat, check_policy, datatype_bound
from hdl._params import check_bool as _check_bool
from hdl._params import check_int as _check_int
from hdl.array import check_tile
from hdl.int_pe import check_skew

from .base import (
    OMIT_DEFAULT,
    Config,
    StreamingArray,
    check_accumulators,
    sgn,
    warn_narrow,
)

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

    # registers inside the PE (hdl.int_pe.IntPE: 1 the product, 2 also the partial products,
    # 3 also the partial sum in skewed halves; the arrays' pipeline 2 and 3 build their PEs so)
    pipeline: int = field(default=0, metadata=OMIT_DEFAULT)

    component: ClassVar[str] = "int-pe"
    golden: ClassVar[str] = "golden.accum.accumulate"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("pipeline", self.pipeline, 0, 3)
        if self.pipeline == 3:
            check_skew(self.w_bits, self.a_bits, self.acc_bits, self.policy)

    @property
    def slug(self) -> str:
        return (
            f"int_pe_w{self.w_bits}{sgn(self.w_signed)}_a{self.a_bits}{sgn(self.a_signed)}"
            f"_p{self.acc_bits}_{self.policy}" + (f"_pl{self.pipeline}" if self.pipeline else "")
        )

    def build(self):
        from hdl.int_pe import IntPE

        return IntPE(**dataclasses.asdict(self))


@dataclass(frozen=True)
class IntArrayConfig(_IntOperands, StreamingArray):
    """A weight-stationary R x C INT array (``hdl.array.IntArray``); tile T = rows, or ``tile``.

    ``acc_bits`` (P_I) defaults to the exact data-type bound for K = T; a narrower P_I warns
    with :class:`AccumulatorWidthWarning` when the design is built.
    """

    rows: int = 4
    cols: int = 4
    acc_bits: int = field(default=0)  # 0: the data-type bound for K = tile
    out_bits: int = 32
    acc_depth: int = 4
    double_buffer: bool = False
    pipeline: int = 0  # 0..3: see hdl.array.SystolicArray
    # AXE's tile T of the inner accumulator, a multiple of rows (0: T = rows): the column chain
    # runs on over T / rows K tiles (hdl.array.SystolicArray "tile")
    tile: int = field(default=0, metadata=OMIT_DEFAULT)

    component: ClassVar[str] = "int-array"
    golden: ClassVar[str] = "golden.accum.gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        _check_int("tile", self.tile, 0)
        if self.tile == self.rows:
            object.__setattr__(self, "tile", 0)  # the default, spelled out
        if self.tile:
            check_tile(self.tile, rows=self.rows, pipeline=self.pipeline, acc_depth=self.acc_depth)
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", self.bound_bits)
        super().__post_init__()
        check_accumulators(self)

    @property
    def latency(self) -> int:
        """StreamingArray's, and at pipeline 3 one cycle more: the partial sum moves down the
        columns in two halves a cycle apart, re-aligned at the bottom (hdl.array
        ``psum_skew``)."""
        return StreamingArray.latency.fget(self) + int(self.pipeline >= 3)

    @property
    def t(self) -> int:
        """The inner accumulator's tile T (rows unless ``tile`` says more)."""
        return self.tile or self.rows

    @property
    def bound_bits(self) -> int:
        """The data-type bound for one tile (K = T)."""
        return datatype_bound(
            self.t, IntFormat(self.w_bits, self.w_signed), IntFormat(self.a_bits, self.a_signed)
        )

    @property
    def slug(self) -> str:
        return (
            f"int_array{self.rows}x{self.cols}_w{self.w_bits}{sgn(self.w_signed)}"
            f"_a{self.a_bits}{sgn(self.a_signed)}_pi{self.acc_bits}_po{self.out_bits}"
            f"_{self.policy}_d{self.acc_depth}{self.stream_suffix}"
            + (f"_t{self.tile}" if self.tile else "")
        )

    def build(self):
        from hdl.array import IntArray

        warn_narrow(self)
        return IntArray(**{**dataclasses.asdict(self), "tile": self.tile or None})
