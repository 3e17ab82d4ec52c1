"""Stimulus for the power flow: what a design's inputs do, cycle by cycle.

An array's stimulus comes from a function the caller passes in (``qarch.stimulus.
array_stimulus``: the model-link tile of the array's scheme and uniformly random codes, placed
by the benches' schedule; synth/ and tb/ are sibling layers, so the flow does not import the
schedule itself). A PE's is what one PE inside an array sees: the source array (``pe_source``)
runs its stimulus in RTL and the ports of its PE at (R/2, C/2) are recorded every cycle (the
weight held per pass, activations skewed in, real partial sums from the rows above); a PE with
narrower partial sums takes the low bits (its own wrap-around).

Everything is seeded: the same design gives the same stimulus, so the energy reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qarch.configs import (
    AntArrayConfig,
    AntPEConfig,
    IntArrayConfig,
    IntPEConfig,
    MsqArrayConfig,
    MsqPEConfig,
    OliveArrayConfig,
    OlivePEConfig,
)

__all__ = ["Stimulus", "pe_source", "VECTORS", "K_TILES", "SEED"]

VECTORS = 64  # tokens streamed per pass: the steady state dominates the fill and drain
K_TILES = 2  # two K tiles: a weight swap and accumulation across tiles in the window
SEED = 1


@dataclass
class Stimulus:
    cycles: list[dict[str, int]]
    macs: int  # useful multiply-accumulates in the window
    label: str
    static: dict[str, int] = field(default_factory=dict)

    def with_static(self) -> list[dict[str, int]]:
        return [{**self.static, **c} for c in self.cycles]


# PE config -> the array config whose interior PE it is (same family and operand widths)
def pe_source(cfg):
    """The 4x4 array (P_I = the PE's P, at least 16 so the real sums fit) whose PE at (2, 2)
    gives a PE's stimulus."""
    size = dict(rows=4, cols=4)
    if isinstance(cfg, IntPEConfig):
        return IntArrayConfig(
            **size, w_bits=cfg.w_bits, a_bits=cfg.a_bits, w_signed=cfg.w_signed,
            a_signed=cfg.a_signed, acc_bits=max(cfg.acc_bits, 16), policy=cfg.policy,
        )  # fmt: skip
    if isinstance(cfg, AntPEConfig):
        return AntArrayConfig(**size, bits=cfg.bits, acc_bits=max(cfg.acc_bits, 16))
    if isinstance(cfg, OlivePEConfig):
        return OliveArrayConfig(
            **size, bits=cfg.bits, e_bits=cfg.e_bits, acc_bits=max(cfg.acc_bits, 16)
        )
    if isinstance(cfg, MsqPEConfig):
        return MsqArrayConfig(a_bits=cfg.a_bits)
    raise TypeError(f"no PE stimulus for {type(cfg).__name__}")
