"""ANT family: decoder, unified PE, array."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from golden.numerics import check_policy, datatype_bound
from hdl._params import check_int as _check_int

from .base import OMIT_DEFAULT, Config, StreamingArray, check_accumulators, warn_narrow

__all__ = ["AntDecoderConfig", "AntPEConfig", "AntArrayConfig"]


def _ant_values(bits: int) -> list[int]:
    """Every value any runtime type select can produce at ``bits`` (for the bound)."""
    from golden.ant import AntType

    vals: set[int] = set()
    for kind in ("int", "pot", "flint"):
        for sgn in (True, False):
            vals |= set(AntType(kind, bits, sgn).grid().tolist())
    return sorted(vals)


@dataclass(frozen=True)
class AntDecoderConfig(Config):
    """ANT decoder: (type_sel, code) -> (sign, mag, exp) (``hdl.ant.AntDecoder``)."""

    bits: int = 4

    component: ClassVar[str] = "ant-decoder"
    golden: ClassVar[str] = "golden.ant.AntType.decode"

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 3, 6)

    @property
    def slug(self) -> str:
        return f"ant_decoder_b{self.bits}"

    def build(self):
        from hdl.ant import AntDecoder

        return AntDecoder(bits=self.bits)


@dataclass(frozen=True)
class AntPEConfig(Config):
    """Unified ANT PE on decoded operands (``hdl.ant.AntPE``)."""

    bits: int = 4
    acc_bits: int = 32
    policy: str = "wrap"
    types: str = "int,flint,pot"  # an ablation: the ANT types the PE multiplies (int always)
    # registers inside the PE (hdl.ant.AntPE; the arrays' pipeline 2 and 3 build their PEs so)
    pipeline: int = field(default=0, metadata=OMIT_DEFAULT)

    component: ClassVar[str] = "ant-pe"
    golden: ClassVar[str] = "golden.accum.accumulate"

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 3, 6)
        _check_int("acc_bits", self.acc_bits, 2, 62)
        check_policy(self.policy)
        _check_int("pipeline", self.pipeline, 0, 2)
        from hdl.ant import ant_widths

        ant_widths(self.bits, self.type_list)  # validates the types

    @property
    def type_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.types.split(",") if t.strip())

    @property
    def slug(self) -> str:
        extra = "" if self.types == "int,flint,pot" else "_" + "_".join(self.type_list)
        extra += f"_pl{self.pipeline}" if self.pipeline else ""
        return f"ant_pe_b{self.bits}_p{self.acc_bits}_{self.policy}{extra}"

    def build(self):
        from hdl.ant import AntPE

        return AntPE(
            bits=self.bits, acc_bits=self.acc_bits, policy=self.policy, types=self.type_list,
            pipeline=self.pipeline,
        )  # fmt: skip


@dataclass(frozen=True)
class AntArrayConfig(Config, StreamingArray):
    """The ANT array: the foundation array with ANT decoders at its edges (``hdl.ant.AntArray``).

    ``acc_bits`` (P_I) defaults to the exact data-type bound for K = rows over every runtime
    type pair (unsigned PoT makes it wide); a narrower P_I warns when built.
    """

    rows: int = 4
    cols: int = 4
    bits: int = 4
    acc_bits: int = 0  # 0: the data-type bound for K = rows over all type pairs
    out_bits: int = 32
    policy: str = "wrap"
    acc_depth: int = 4
    double_buffer: bool = False
    pipeline: int = 0  # 0..3: see hdl.array.SystolicArray

    component: ClassVar[str] = "ant-array"
    golden: ClassVar[str] = "golden.accum.gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        _check_int("bits", self.bits, 3, 6)
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", min(self.bound_bits, 62))
        check_accumulators(self)

    @property
    def w_bits(self) -> int:
        return self.bits

    @property
    def a_bits(self) -> int:
        return self.bits

    @property
    def bound_bits(self) -> int:
        vals = _ant_values(self.bits)
        return datatype_bound(self.rows, vals, vals)

    @property
    def slug(self) -> str:
        return (
            f"ant_array{self.rows}x{self.cols}_b{self.bits}_pi{self.acc_bits}"
            f"_po{self.out_bits}_{self.policy}_d{self.acc_depth}{self.stream_suffix}"
        )

    def build(self):
        from hdl.ant import AntArray

        warn_narrow(self)
        return AntArray(**dataclasses.asdict(self))
