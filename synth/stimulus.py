"""Stimulus for the power flow: per-cycle input port values, real and random, per design.

* Arrays: the model-link tile of the array's scheme (tb/links.py: SmolLM2 ``down_proj`` codes
  and calibrated activations, quantized as ``qarch eval`` does), one block of C output channels
  (2C for MicroScopiQ's macro-blocks) x ``k_tiles`` K tiles x ``vectors`` tokens, streamed back
  to back by the same schedule the benches check (tb/schedule.py), then drained. ``random``:
  the same formats with uniformly random codes (``random_operands``).
* PEs: what one PE inside an array sees: the array's RTL runs the array stimulus of the PE's
  family and bit widths, and the ports of its PE at (R/2, C/2) are recorded every cycle
  (weight held per pass, activations skewed in, real partial sums from the rows above). A PE
  with narrower partial sums takes the low bits (its own wrap-around).

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

__all__ = ["Stimulus", "array_stimulus", "pe_source", "VECTORS", "K_TILES", "SEED"]

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


def array_stimulus(cfg, kind: str, *, vectors: int = VECTORS, k_tiles: int = K_TILES):
    """``kind``: "real" (the model-link tile) or "random" (uniform codes, same formats)."""
    from tb.links import link_operands, random_operands, scheme_of
    from tb.schedule import array_inputs, gemm_schedule, msq_schedule

    if kind not in ("real", "random"):
        raise ValueError(f"kind must be real or random, not {kind!r}")
    msq = isinstance(cfg, MsqArrayConfig)
    n, k = (2 if msq else 1) * cfg.cols, k_tiles * cfg.rows
    real = link_operands(cfg, scheme_of(cfg), n, k, vectors)
    ops = real if kind == "real" else random_operands(real, cfg, SEED)
    if msq:
        sched = msq_schedule(cfg, ops.msq, ops.a, idle=0.0, seed=SEED)
    else:
        sched = gemm_schedule(cfg, ops.w, ops.a, **ops.gemm_kwargs(), idle=0.0, seed=SEED)
    names = array_inputs(cfg)
    cycles = [{p: getattr(c, p) for p in names} for c in sched.cycles]
    cycles += [{} for _ in range(cfg.latency + 2)]  # drain: the last outputs leave the array
    return Stimulus(cycles, n * k * vectors, f"{ops.label} N={n} K={k} M={vectors}", ops.ports)


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
