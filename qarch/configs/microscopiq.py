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
    stages: int = 2  # pipeline registers: after the network and the lane units (2) or only after

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
        _check_int("stages", self.stages, 1, 2)

    @property
    def slug(self) -> str:
        st = "" if self.stages == 2 else f"_s{self.stages}"
        return f"recon_n{self.lanes}_p{self.prod_bits}_b{self.b}_d{self.d}{st}"

    def build(self):
        from hdl.microscopiq import ReCoN

        return ReCoN(**dataclasses.asdict(self))


@dataclass(frozen=True)
class MsqArrayConfig(Config):
    """The MicroScopiQ array (``hdl.microscopiq.MsqArray``): ReCoN per row (or group of rows)
    and micro-block of ``m`` lanes, the MaB tile is the array's K tile (T = rows). ``b`` = 4:
    one 4-bit slot per PE; ``b`` = 2: two 2-bit slots per PE in its split mode, so a column
    block covers ``lanes`` = 2 ``cols`` output channels."""

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
    recon_rows: int = 1  # rows per ReCoN set: 1 = per row; G > 1 = shared, time-multiplexed
    recon_stages: int = 2
    # 1: accumulators in a memory read a cycle ahead (acc_depth up to 4096); 2: and the shifted
    # tile sums registered before a P_O add split over two cycles
    pipeline: int = 0
    b: int = 4  # inlier bits: 4 (PE single mode) or 2 (split mode, two lanes per PE)

    component: ClassVar[str] = "msq-array"
    golden: ClassVar[str] = "golden.microscopiq.msq_gemm"

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 64)
        _check_int("m", self.m, 2, 64)
        _check_int("cols", self.cols, 1, 64)
        if self.b not in (2, 4):
            raise ValueError(f"b must be 2 or 4, not {self.b}")
        if self.lanes % self.m:  # b = 2: two lanes per PE column
            raise ValueError(
                f"cols must give a multiple of m = {self.m} lanes ({4 // self.b} per column), "
                f"not {self.cols}"
            )
        _check_int("a_bits", self.a_bits, 2, 16)
        _check_int("d", self.d, 1, 4)
        _check_int("pipeline", self.pipeline, 0, 2)
        check_accumulators(self)
        _check_int("shift_bits", self.shift_bits, 1, 6)
        _check_int("recon_rows", self.recon_rows, 1, self.rows)
        if self.rows % self.recon_rows:
            raise ValueError(f"recon_rows must divide rows = {self.rows}, not {self.recon_rows}")
        _check_int("recon_stages", self.recon_stages, 1, 2)

    @property
    def lanes(self) -> int:
        """Output channels per column block: ``cols`` (b = 4) or 2 ``cols`` (b = 2)."""
        return self.cols * (4 // self.b)

    @property
    def out_cols(self) -> int:
        """As the systolic arrays': output channels per column block."""
        return self.lanes

    @property
    def latency(self) -> int:
        """Vector in to outputs out: skew, PE register, the ReCoN stages, the P_I add, the
        routed-addend register, the shift register and the split P_O add's first stage
        (pipeline 2), the output register (equal to ``hdl.microscopiq.MsqArray.latency``)."""
        return self.rows + 2 + self.recon_stages + 3 * (self.pipeline == 2)

    def spacing(self, outlier_rows) -> int:
        """Cycles between the vectors of a K tile whose rows ``outlier_rows`` (R booleans: the
        row's config routes something) need ReCoN: 1 with a ReCoN per row; with one shared by
        G rows, the least s such that no two outlier rows of a group are congruent mod s (so
        no two of them hold a vector in the same cycle). s - 1 are the stall cycles."""
        G = self.recon_rows
        if G == 1:
            return 1
        groups = [
            [i for i in range(G) if outlier_rows[r0 + i]] for r0 in range(0, self.rows, G)
        ]
        s = max(1, *(len(g) for g in groups))
        while any(len({i % s for i in g}) < len(g) for g in groups):
            s += 1
        return s

    def passes(self, m: int, k: int, n: int) -> list[tuple[int, int, int]]:
        """(column block, K tile, vectors) of every pass, in schedule order."""
        tiles, blocks = -(-k // self.rows), -(-n // self.lanes)
        return [
            (blk, t, b)
            for blk in range(blocks)
            for b in batches(m, self.acc_depth)
            for t in range(tiles)
        ]

    def period(self, b: int, s: int) -> int:
        """Cycles between the first vectors of consecutive passes of ``b`` vectors spaced
        ``s``: a row reloads (wavefront, one cycle before its first use) only after its last
        ReCoN use, one cycle after its last product (so + 2), and a group's shared ReCoN
        serves one pass at a time (so + G); one load port loads R rows per pass."""
        return max((b - 1) * s + max(2, self.recon_rows), self.rows)

    def cycles(self, m: int, k: int, n: int, outliers=None) -> int:
        """Cycles of the GEMM [N, K] x [K, M] (first input to last output, inclusive).
        ``outliers[block][tile][r]``: row r of that K tile of that column block routes
        something (from the quantized weights; None: no outliers, no stalls)."""
        seq = self.passes(m, k, n)

        def sp(blk: int, t: int) -> int:
            return 1 if outliers is None else self.spacing(outliers[blk][t])

        head = sum(self.period(b, sp(blk, t)) for blk, t, b in seq[:-1])
        blk, t, b = seq[-1]
        return 1 + head + (b - 1) * sp(blk, t) + 1 + self.latency

    def utilisation(self, m: int, k: int, n: int, outliers=None) -> float:
        """MACs over MAC lanes x cycles (a b = 2 PE is two lanes)."""
        return m * k * n / (self.rows * self.lanes * self.cycles(m, k, n, outliers))

    @property
    def slug(self) -> str:
        return (
            f"msq_array{self.rows}x{self.cols}_m{self.m}_a{self.a_bits}_d{self.d}"
            f"_s{self.shift_bits}_pi{self.acc_bits}_po{self.out_bits}_{self.policy}"
            f"_d{self.acc_depth}{self.stream_suffix}{'_b2' if self.b == 2 else ''}"
        )

    @property
    def stream_suffix(self) -> str:
        g = f"_g{self.recon_rows}" if self.recon_rows > 1 else ""
        rs = f"_rs{self.recon_stages}" if self.recon_stages != 2 else ""
        return g + rs + (f"_pl{self.pipeline}" if self.pipeline else "")

    def build(self):
        from hdl.microscopiq import MsqArray

        return MsqArray(**dataclasses.asdict(self))
