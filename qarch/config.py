"""Design configurations: one frozen dataclass per design family, with presets.

A config is the single description of a design that the RTL generator (``build()``), the golden
model (``golden_*``), the cocotb testbench and the synthesis sweep all read. ``slug`` names the
Verilog module, build directory, report file and pytest id. Configs round-trip through JSON.

This module is the integration layer: it may import both ``hdl`` and ``golden`` (which never
import each other).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

from golden.numerics import IntFormat, check_policy, datatype_bound
from hdl._params import check_bool as _check_bool
from hdl._params import check_int as _check_int

__all__ = [
    "AccumulatorWidthWarning",
    "IntPEConfig",
    "IntArrayConfig",
    "AntDecoderConfig",
    "AntPEConfig",
    "AntArrayConfig",
    "OliveDecoderConfig",
    "OlivePEConfig",
    "OliveArrayConfig",
    "MsqPEConfig",
    "ReconConfig",
    "MsqArrayConfig",
    "COMPONENTS",
    "PRESETS",
    "AXE_SWEEP_PI",
    "synth_targets",
    "resolve",
    "config_from_json",
]


class AccumulatorWidthWarning(UserWarning):
    """An accumulator narrower than the data-type bound: overflow is possible."""


def _sgn(signed: bool) -> str:
    return "s" if signed else "u"


class _Config:
    """JSON round-trip and ``replace`` shared by every config dataclass."""

    component: ClassVar[str] = ""
    golden: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


def _check_accumulators(cfg) -> None:
    """The accumulator fields every array config has: P_I, P_O >= P_I, policy, acc_depth."""
    _check_int("acc_bits", cfg.acc_bits, 2, 62)
    _check_int("out_bits", cfg.out_bits, cfg.acc_bits, 62)
    check_policy(cfg.policy)
    _check_int("acc_depth", cfg.acc_depth, 2, 256)
    if cfg.acc_depth & (cfg.acc_depth - 1):
        raise ValueError(f"acc_depth must be a power of two, not {cfg.acc_depth}")


@dataclass(frozen=True)
class _IntOperands(_Config):
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
            f"int_pe_w{self.w_bits}{_sgn(self.w_signed)}_a{self.a_bits}{_sgn(self.a_signed)}"
            f"_p{self.acc_bits}_{self.policy}"
        )

    def build(self):
        from hdl.int_pe import IntPE

        return IntPE(**dataclasses.asdict(self))


@dataclass(frozen=True)
class IntArrayConfig(_IntOperands):
    """A weight-stationary R x C INT array (``hdl.array.IntArray``); tile T = rows.

    ``acc_bits`` (P_I) defaults to the exact data-type bound for K = rows; a narrower P_I warns
    with :class:`AccumulatorWidthWarning` when the design is built.
    """

    rows: int = 4
    cols: int = 4
    acc_bits: int = field(default=0)  # 0: the data-type bound for K = rows
    out_bits: int = 32
    acc_depth: int = 4

    component: ClassVar[str] = "int-array"
    golden: ClassVar[str] = "golden.accum.gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", self.bound_bits)
        super().__post_init__()
        _check_accumulators(self)

    @property
    def bound_bits(self) -> int:
        """The data-type bound for one tile (K = rows)."""
        return datatype_bound(
            self.rows, IntFormat(self.w_bits, self.w_signed), IntFormat(self.a_bits, self.a_signed)
        )

    @property
    def slug(self) -> str:
        return (
            f"int_array{self.rows}x{self.cols}_w{self.w_bits}{_sgn(self.w_signed)}"
            f"_a{self.a_bits}{_sgn(self.a_signed)}_pi{self.acc_bits}_po{self.out_bits}"
            f"_{self.policy}_d{self.acc_depth}"
        )

    def build(self):
        from hdl.array import IntArray

        _warn_narrow(self)
        return IntArray(**dataclasses.asdict(self))


def _ant_values(bits: int) -> list[int]:
    """Every value any runtime type select can produce at ``bits`` (for the bound)."""
    from golden.ant import AntType

    vals: set[int] = set()
    for kind in ("int", "pot", "flint"):
        for sgn in (True, False):
            vals |= set(AntType(kind, bits, sgn).grid().tolist())
    return sorted(vals)


@dataclass(frozen=True)
class AntDecoderConfig(_Config):
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
class AntPEConfig(_Config):
    """Unified ANT PE on decoded operands (``hdl.ant.AntPE``)."""

    bits: int = 4
    acc_bits: int = 32
    policy: str = "wrap"

    component: ClassVar[str] = "ant-pe"
    golden: ClassVar[str] = "golden.accum.accumulate"

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 3, 6)
        _check_int("acc_bits", self.acc_bits, 2, 62)
        check_policy(self.policy)

    @property
    def slug(self) -> str:
        return f"ant_pe_b{self.bits}_p{self.acc_bits}_{self.policy}"

    def build(self):
        from hdl.ant import AntPE

        return AntPE(**dataclasses.asdict(self))


@dataclass(frozen=True)
class AntArrayConfig(_Config):
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

    component: ClassVar[str] = "ant-array"
    golden: ClassVar[str] = "golden.accum.gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        _check_int("bits", self.bits, 3, 6)
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", min(self.bound_bits, 62))
        _check_accumulators(self)

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
            f"_po{self.out_bits}_{self.policy}_d{self.acc_depth}"
        )

    def build(self):
        from hdl.ant import AntArray

        _warn_narrow(self)
        return AntArray(**dataclasses.asdict(self))


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
class OliveDecoderConfig(_Config):
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
class OlivePEConfig(_Config):
    """OliVe PE on pair-decoded operands (``hdl.olive.OlivePE``)."""

    bits: int = 4
    e_bits: int = 2
    acc_bits: int = 32
    policy: str = "wrap"

    component: ClassVar[str] = "olive-pe"
    golden: ClassVar[str] = "golden.accum.accumulate"

    def __post_init__(self) -> None:
        _check_olive(self.bits, self.e_bits)
        _check_int("acc_bits", self.acc_bits, 2, 62)
        check_policy(self.policy)

    @property
    def slug(self) -> str:
        return f"olive_pe_b{self.bits}_e{self.e_bits}_p{self.acc_bits}_{self.policy}"

    def build(self):
        from hdl.olive import OlivePE

        return OlivePE(**dataclasses.asdict(self))


@dataclass(frozen=True)
class OliveArrayConfig(_Config):
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
        _check_accumulators(self)

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
            f"_po{self.out_bits}_{self.policy}_d{self.acc_depth}"
        )

    def build(self):
        from hdl.olive import OliveArray

        _warn_narrow(self)
        return OliveArray(**dataclasses.asdict(self))


@dataclass(frozen=True)
class MsqPEConfig(_Config):
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
class ReconConfig(_Config):
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
class MsqArrayConfig(_Config):
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
        _check_accumulators(self)
        _check_int("shift_bits", self.shift_bits, 1, 6)

    @property
    def slug(self) -> str:
        return (
            f"msq_array{self.rows}x{self.cols}_m{self.m}_a{self.a_bits}_d{self.d}"
            f"_pi{self.acc_bits}_po{self.out_bits}_{self.policy}_d{self.acc_depth}"
        )

    def build(self):
        from hdl.microscopiq import MsqArray

        return MsqArray(**dataclasses.asdict(self))


def _warn_narrow(cfg) -> None:
    if cfg.acc_bits < cfg.bound_bits:
        warnings.warn(
            f"{cfg.slug}: acc_bits={cfg.acc_bits} is below the data-type bound "
            f"{cfg.bound_bits} for K={cfg.rows}; the inner accumulator can overflow "
            f"({cfg.policy} policy applies)",
            AccumulatorWidthWarning,
            stacklevel=3,
        )


COMPONENTS: dict[str, type[_Config]] = {
    c.component: c
    for c in (
        IntPEConfig,
        IntArrayConfig,
        AntDecoderConfig,
        AntPEConfig,
        AntArrayConfig,
        OliveDecoderConfig,
        OlivePEConfig,
        OliveArrayConfig,
        MsqPEConfig,
        ReconConfig,
        MsqArrayConfig,
    )
}


AXE_SWEEP_PI = (8, 10, 12, 14, 16, 20, 24, 32)


def synth_targets(name: str) -> tuple[str, ...]:
    """Targets `make synth` runs for a preset. The 8x8 arrays that exist only for the AXE
    sweep skip iCE40: without DSPs no 8x8 array fits the HX8K (so there is no Fmax), and
    their area is what the sweep is about."""
    cfg = PRESETS[name]
    if isinstance(cfg, IntArrayConfig) and cfg.rows == 8 and cfg.acc_bits not in (16, 20, 32):
        return ("generic",)
    return ("generic", "ice40")


def _presets() -> dict[str, _Config]:
    p: dict[str, _Config] = {}
    # The AXE accumulator sweep: every P_I for the PEs and the 8x8 arrays (T = 8 rows).
    for wb in (4, 8):
        for acc in AXE_SWEEP_PI:
            p[f"int{wb}x8-pe-p{acc}"] = IntPEConfig(w_bits=wb, a_bits=8, acc_bits=acc)
    for wb in (4, 8):
        for n in (4, 8):
            for acc in AXE_SWEEP_PI if n == 8 else (16, 20, 32):
                p[f"int{wb}x8-array{n}x{n}-p{acc}"] = IntArrayConfig(
                    rows=n, cols=n, w_bits=wb, a_bits=8, acc_bits=acc, out_bits=32
                )
    # ANT (4-bit operands) next to an INT4 x INT4 PE of the same operand width.
    for acc in (16, 32):
        p[f"int4x4-pe-p{acc}"] = IntPEConfig(w_bits=4, a_bits=4, acc_bits=acc)
    # W4A4 array baseline of the same size as the ANT / OliVe 8x8 arrays.
    p["int4x4-array8x8-p32"] = IntArrayConfig(
        rows=8, cols=8, w_bits=4, a_bits=4, acc_bits=32, out_bits=32
    )
    p["ant4-decoder"] = AntDecoderConfig(bits=4)
    for acc in (16, 32):
        p[f"ant4-pe-p{acc}"] = AntPEConfig(bits=4, acc_bits=acc)
    for n in (4, 8):
        p[f"ant4-array{n}x{n}-p32"] = AntArrayConfig(rows=n, cols=n, bits=4, acc_bits=32)
    # OliVe, 4-bit (W4A4) and 8-bit (W8A8).
    for b in (4, 8):
        p[f"olive{b}-decoder"] = OliveDecoderConfig(bits=b)
        p[f"olive{b}-pe-p32"] = OlivePEConfig(bits=b, acc_bits=32)
    p["olive4-array4x4-p32"] = OliveArrayConfig(rows=4, cols=4, bits=4, acc_bits=32)
    for b in (4, 8):
        p[f"olive{b}-array8x8-p32"] = OliveArrayConfig(rows=8, cols=8, bits=b, acc_bits=32)
    # MicroScopiQ: PE, ReCoN (N = 8), 8x8 array.
    p["msq-pe"] = MsqPEConfig()
    p["msq-recon8"] = ReconConfig()
    p["msq-array8x8-p32"] = MsqArrayConfig(rows=8, cols=8, acc_bits=32, out_bits=32)
    return p


PRESETS: dict[str, _Config] = _presets()


def _parse_value(name: str, raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"parameter {name} needs a boolean (true/false), not {raw!r}")
    if isinstance(current, int):
        try:
            return int(raw, 0)
        except ValueError:
            raise ValueError(f"parameter {name} needs an integer, not {raw!r}") from None
    return raw


def resolve(name: str, params: dict[str, str] | None = None):
    """A preset or component name plus ``key=value`` overrides -> a validated config."""
    if name in PRESETS:
        base = PRESETS[name]
    elif name in COMPONENTS:
        base = COMPONENTS[name]()  # for field names and types; rebuilt below so derived
    else:  # defaults (acc_bits = bound) follow the overrides
        known = ", ".join(sorted(COMPONENTS) + sorted(PRESETS))
        raise KeyError(f"unknown design {name!r}; known: {known}")
    params = params or {}
    fields = {f.name: f for f in dataclasses.fields(base)}
    changes = {}
    for key, raw in params.items():
        if key not in fields:
            raise ValueError(
                f"{base.component} has no parameter {key!r}; parameters: {', '.join(fields)}"
            )
        changes[key] = _parse_value(key, raw, getattr(base, key))
    if name in COMPONENTS:
        return COMPONENTS[name](**changes)
    return dataclasses.replace(base, **changes) if changes else base


def config_from_json(text: str | dict):
    """Inverse of ``to_json()``."""
    d = dict(json.loads(text) if isinstance(text, str) else text)
    comp = d.pop("component", None)
    if comp not in COMPONENTS:
        raise ValueError(f"unknown component {comp!r} in config JSON")
    return COMPONENTS[comp](**d)
