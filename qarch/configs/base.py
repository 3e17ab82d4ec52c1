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
from hdl._params import check_int as _check_int

__all__ = ["AccumulatorWidthWarning", "Config", "sgn", "check_accumulators", "warn_narrow"]


class AccumulatorWidthWarning(UserWarning):
    """An accumulator narrower than the data-type bound: overflow is possible."""


def sgn(signed: bool) -> str:
    return "s" if signed else "u"


class Config:
    """JSON round-trip and ``replace`` shared by every config dataclass."""

    component: ClassVar[str] = ""
    golden: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


def check_accumulators(cfg) -> None:
    """The accumulator fields every array config has: P_I, P_O >= P_I, policy, acc_depth."""
    _check_int("acc_bits", cfg.acc_bits, 2, 62)
    _check_int("out_bits", cfg.out_bits, cfg.acc_bits, 62)
    check_policy(cfg.policy)
    _check_int("acc_depth", cfg.acc_depth, 2, 256)
    if cfg.acc_depth & (cfg.acc_depth - 1):
        raise ValueError(f"acc_depth must be a power of two, not {cfg.acc_depth}")


def warn_narrow(cfg) -> None:
    if cfg.acc_bits < cfg.bound_bits:
        warnings.warn(
            f"{cfg.slug}: acc_bits={cfg.acc_bits} is below the data-type bound "
            f"{cfg.bound_bits} for K={cfg.rows}; the inner accumulator can overflow "
            f"({cfg.policy} policy applies)",
            AccumulatorWidthWarning,
            stacklevel=3,
        )
