"""What every hardware config shares: the JSON round trip, the accumulator checks, the warning
for a P_I below the data-type bound.

A config is the single description of a design that the RTL generator (``build()``), the golden
model (``golden``), the cocotb testbench and the synthesis sweep all read. ``slug`` names the
Verilog module, build directory, report file and pytest id. Configs round-trip through JSON.
This package is the integration layer: it may import both ``hdl`` and ``golden`` (which never
import each other).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any, ClassVar

from golden.numerics import check_policy
from hdl._params import check_bool as _check_bool
from hdl._params import check_int as _check_int
from hdl.array import check_acc_depth

__all__ = [
    "AccumulatorWidthWarning",
    "Config",
    "StreamingArray",
    "sgn",
    "check_accumulators",
    "warn_narrow",
    "batches",
    "OMIT_DEFAULT",
]


class AccumulatorWidthWarning(UserWarning):
    """An accumulator narrower than the data-type bound: overflow is possible."""


def sgn(signed: bool) -> str:
    return "s" if signed else "u"


OMIT_DEFAULT = {"omit_default": True}  # field metadata: see Config.to_dict


class Config:
    """JSON round-trip and ``replace`` shared by every config dataclass."""

    component: ClassVar[str] = ""
    golden: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        # fields marked OMIT_DEFAULT appear only when set: configs without them (and the
        # committed reports that carry their dicts) stay as they were
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.metadata.get("omit_default") and d[f.name] == f.default:
                del d[f.name]
        return {"component": self.component, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


def check_accumulators(cfg) -> None:
    """The accumulator fields every array config has: P_I, P_O >= P_I, policy, acc_depth."""
    _check_int("acc_bits", cfg.acc_bits, 2, 62)
    _check_int("out_bits", cfg.out_bits, cfg.acc_bits, 62)
    check_policy(cfg.policy)
    pipeline = getattr(cfg, "pipeline", 0)
    if hasattr(cfg, "double_buffer"):
        _check_int("pipeline", pipeline, 0, 3)
        _check_bool("double_buffer", cfg.double_buffer)
    check_acc_depth(cfg.acc_depth, pipeline)


def warn_narrow(cfg) -> None:
    if cfg.acc_bits < cfg.bound_bits:
        warnings.warn(
            f"{cfg.slug}: acc_bits={cfg.acc_bits} is below the data-type bound "
            f"{cfg.bound_bits} for K={getattr(cfg, 't', cfg.rows)}; the inner accumulator can "
            f"overflow ({cfg.policy} policy applies)",
            AccumulatorWidthWarning,
            stacklevel=3,
        )


def batches(m: int, depth: int) -> list[int]:
    """Vectors per pass through a K tile: ``m`` vectors in groups of the accumulator depth."""
    return [min(depth, m - m0) for m0 in range(0, m, depth)]


def _check_gemm(m: int, k: int, n: int) -> None:
    for name, v in (("M", m), ("K", k), ("N", n)):
        _check_int(name, v, 1)


class StreamingArray:
    """Timing of the systolic arrays (INT, ANT, OliVe; AXE runs on INT): the published cycle
    formula, a pure function of the config and the GEMM shape, which the cocotb benches assert
    against the cycles they count on the generated Verilog (docs/design.md "Array schedule").

    A GEMM ``Y = W @ A`` (W [N, K], A [K, M]) streams as: for each block of C output columns,
    for each batch of up to ``acc_depth`` vectors, for each K tile of R rows, one *pass*: the
    tile's weight rows load as a wavefront (row group j one cycle before the first vector needs
    it) and the batch's B vectors enter back to back. Consecutive passes start ``period(B)``
    cycles apart:

    - single-buffered: ``max(B + C + p - 2, R - p + 1)``: a row may reload only after the
      previous pass's last vector has crossed all C columns of it;
    - double-buffered: ``max(B, R - p + 1, C + p - 1)``: the next tile's rows load into the
      shadow registers while the current pass streams; no drain;
    - and at least 2 with ``pipeline`` = 2, whose output add takes two cycles (only a 1 x 1
      array would otherwise update an entry in consecutive cycles);
    - and at least R + 1 before a pass that continues a T tile (INT's ``tile`` = T > R): an
      entry's column sum must have left the bottom of the column (R cycles after its top)
      before the entry's next K tile enters the top.

    p is the rows one weight word covers (OliVe pairs: 2; otherwise 1). The first vector enters
    ``lead`` cycles after the first load (1, or 0 single-buffered with an edge register), and
    the last output leaves ``latency`` cycles after the last vector:
    ``cycles = lead + sum(period(B) for every pass but the last) + B_last + latency``, counted
    from the first input cycle to the last output cycle, inclusive.
    """

    rows: int
    cols: int
    acc_depth: int
    double_buffer: bool
    pipeline: int

    @property
    def stream_suffix(self) -> str:
        """Slug suffix for the non-default streaming options (today's slugs stay unchanged)."""
        db = "_db" if self.double_buffer else ""
        return db + (f"_pl{self.pipeline}" if self.pipeline else "")

    @property
    def out_cols(self) -> int:
        """Output channels per column block (MAC lanes per row): the columns."""
        return self.cols

    @property
    def rows_per_code(self) -> int:
        return 2 if getattr(self, "pair_codes", False) else 1

    @property
    def edge_stages(self) -> int:
        return int(self.pipeline >= 1 or self.double_buffer)

    @property
    def latency(self) -> int:
        """Cycles from a vector on ``a_data`` to its outputs (equal to the component's)."""
        # pipeline 2: the product register and the two-cycle output add; 3: also the split
        # multiplier (the memory's read register is issued a cycle earlier: no cycle; INT
        # adds one for its skewed partial-sum halves, IntArrayConfig.latency)
        return (self.rows + self.cols + self.edge_stages + 2 * int(self.pipeline >= 2)
                + int(self.pipeline >= 3))  # fmt: skip

    @property
    def lead(self) -> int:
        """Cycles from the first weight load to the first vector."""
        return 1 if self.double_buffer else 1 - self.edge_stages

    def period(self, b: int) -> int:
        """Cycles between the first vectors of two consecutive passes of ``b`` vectors."""
        R, C, p = self.rows, self.cols, self.rows_per_code
        # pipeline 2 splits the output add over two cycles: an entry every other cycle at most
        floor = 2 if self.pipeline >= 2 else 1
        if self.double_buffer:
            return max(b, R - p + 1, C + p - 1, floor)
        return max(b + C + p - 2, R - p + 1, floor)

    @property
    def chained(self) -> int:
        """K tiles per T tile of the inner accumulator (INT's ``tile`` / rows; otherwise 1)."""
        return (getattr(self, "tile", 0) or self.rows) // self.rows

    def passes(self, m: int, k: int, n: int) -> list[int]:
        """The vectors of every pass, in schedule order."""
        return [b for b, _ in self._passes(m, k, n)]

    def _passes(self, m: int, k: int, n: int) -> list[tuple[int, bool]]:
        """(vectors, whether the next pass continues this pass's T tile) of every pass."""
        _check_gemm(m, k, n)
        tiles, blocks, g = -(-k // self.rows), -(-n // self.cols), self.chained
        return [
            (b, (t + 1) % g != 0 and t + 1 < tiles)
            for _ in range(blocks)
            for b in batches(m, self.acc_depth)
            for t in range(tiles)
        ]

    def cycles(self, m: int, k: int, n: int) -> int:
        """Clock cycles of the GEMM [N, K] x [K, M], first input to last output inclusive."""
        seq = self._passes(m, k, n)
        gaps = sum(
            max(self.period(b), self.rows + 1) if chained else self.period(b)
            for b, chained in seq[:-1]
        )
        return self.lead + gaps + seq[-1][0] + self.latency

    def utilisation(self, m: int, k: int, n: int) -> float:
        """Useful MACs over the array's peak (R x C MACs per cycle) for that GEMM."""
        return m * k * n / (self.rows * self.cols * self.cycles(m, k, n))
