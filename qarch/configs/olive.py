"""OliVe family: pair decoder, PE, array."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from golden.numerics import check_policy, datatype_bound
from hdl._params import check_bool as _check_bool
from hdl._params import check_int as _check_int

from .base import OMIT_DEFAULT, Config, StreamingArray, check_accumulators, warn_narrow

__all__ = ["OliveDecoderConfig", "OlivePEConfig", "OliveArrayConfig"]


def _olive_values(bits: int, e_bits: int) -> list[int]:
    """Every value a pair decoder can produce (all normal types at ``bits``)."""
    from golden.olive import NORMAL_TYPES, OliveFormat

    vals: set[int] = set()
    for name, b in NORMAL_TYPES.items():
        if b == bits:
            f = OliveFormat(name, e_bits)
            vals |= set(f.merged_grid().tolist()) | {(1 << f.m_bits) << f.bias}
    return sorted(vals | {-v for v in vals})


def _check_olive(bits: int, e_bits: int) -> None:
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits}")
    _check_int("e_bits", e_bits, 1, bits - 1)


@dataclass(frozen=True)
class OliveDecoderConfig(Config):
    """OliVe pair decoder: a pair byte (word) -> two (sign, mag, exp) operands."""

    bits: int = 4
    e_bits: int = 2

    component: ClassVar[str] = "olive-decoder"
    golden: ClassVar[str] = "golden.olive.decode_pair_operands"

    def __post_init__(self) -> None:
        _check_olive(self.bits, self.e_bits)

    @property
    def slug(self) -> str:
        return f"olive_decoder_b{self.bits}_e{self.e_bits}"

    def build(self):
        from hdl.olive import OlivePairDecoder

        return OlivePairDecoder(bits=self.bits, e_bits=self.e_bits)


@dataclass(frozen=True)
class OlivePEConfig(Config):
    """OliVe PE on pair-decoded operands (``hdl.olive.OlivePE``)."""

    bits: int = 4
    e_bits: int = 2
    acc_bits: int = 32
    policy: str = "wrap"
    outliers: bool = True  # False: an ablation without the outlier (abfloat) path
    # registers inside the PE (hdl.olive.OlivePE; the arrays' pipeline 2 and 3 build their PEs
    # so)
    pipeline: int = field(default=0, metadata=OMIT_DEFAULT)

    component: ClassVar[str] = "olive-pe"
    golden: ClassVar[str] = "golden.accum.accumulate"

    def __post_init__(self) -> None:
        _check_olive(self.bits, self.e_bits)
        _check_int("acc_bits", self.acc_bits, 2, 62)
        check_policy(self.policy)
        _check_bool("outliers", self.outliers)
        _check_int("pipeline", self.pipeline, 0, 2)

    @property
    def slug(self) -> str:
        extra = "" if self.outliers else "_nooutliers"
        extra += f"_pl{self.pipeline}" if self.pipeline else ""
        return f"olive_pe_b{self.bits}_e{self.e_bits}_p{self.acc_bits}_{self.policy}{extra}"

    def build(self):
        from hdl.olive import OlivePE

        return OlivePE(**dataclasses.asdict(self))


@dataclass(frozen=True)
class OliveArrayConfig(Config, StreamingArray):
    """The OliVe array: pair decoders at the edges feed adjacent K rows
    (``hdl.olive.OliveArray``). ``rows`` (the K tile) must be even; ``acc_bits`` 0 gives the
    data-type bound for K = rows over every decodable value."""

    rows: int = 4
    cols: int = 4
    bits: int = 4
    e_bits: int = 2
    acc_bits: int = 0
    out_bits: int = 32
    policy: str = "wrap"
    acc_depth: int = 4
    double_buffer: bool = False
    pipeline: int = 0  # 0..3: see hdl.array.SystolicArray

    component: ClassVar[str] = "olive-array"
    golden: ClassVar[str] = "golden.accum.gemm"
    pair_codes: ClassVar[bool] = True  # ports carry pair words (two codes, even low)

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 2, 64)
        if self.rows % 2:
            raise ValueError(f"rows must be even (OliVe pairs span two K rows), not {self.rows}")
        _check_int("cols", self.cols, 1, 64)
        _check_olive(self.bits, self.e_bits)
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
        vals = _olive_values(self.bits, self.e_bits)
        return datatype_bound(self.rows, vals, vals)

    @property
    def slug(self) -> str:
        return (
            f"olive_array{self.rows}x{self.cols}_b{self.bits}_e{self.e_bits}_pi{self.acc_bits}"
            f"_po{self.out_bits}_{self.policy}_d{self.acc_depth}{self.stream_suffix}"
        )

    def build(self):
        from hdl.olive import OliveArray

        warn_narrow(self)
        return OliveArray(**dataclasses.asdict(self))
