"""The power flow's array stimulus (synth/power.py): real and random codes through the
benches' schedule.

The model-link tile of the array's scheme (tb/links.py: SmolLM2 ``down_proj`` codes and
calibrated activations, quantized as ``qarch eval`` does), one block of C output channels (2C
for MicroScopiQ's macro-blocks) x ``k_tiles`` K tiles x ``vectors`` tokens, streamed back to
back by the schedule the cocotb benches check (tb/schedule.py), then drained; ``random``: the
same formats with uniformly random codes (``random_operands``). It lives above synth/ and tb/
(both of which it uses), and ``synth.flow.synthesize`` takes it as its ``stimulus``.
"""

from __future__ import annotations

from synth.stimulus import K_TILES, SEED, VECTORS, Stimulus

__all__ = ["array_stimulus"]


def array_stimulus(cfg, kind: str, *, vectors: int = VECTORS, k_tiles: int = K_TILES):
    """``kind``: "real" (the model-link tile) or "random" (uniform codes, same formats)."""
    from qarch.configs import MsqArrayConfig
    from tb.links import link_operands, random_operands, scheme_of
    from tb.schedule import array_inputs, gemm_schedule, msq_schedule

    if kind not in ("real", "random"):
        raise ValueError(f"kind must be real or random, not {kind!r}")
    msq = isinstance(cfg, MsqArrayConfig)
    n, k = (2 * cfg.lanes if msq else cfg.cols), k_tiles * cfg.rows
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
