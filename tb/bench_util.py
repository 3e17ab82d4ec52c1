"""Helpers shared by the cocotb modules (imported inside the simulator)."""

import os
import random
import time

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from golden.accum import accumulate
from tb.schedule import ARRAY_INPUTS, array_inputs, gemm_schedule, unpack_signed

__all__ = [
    "start",
    "record",
    "drive_pe",
    "run_gemm",
    "run_schedule",
    "array_inputs",
    "check_cycles",
    "ARRAY_INPUTS",
]

async def start(dut, inputs=()):
    """Start the 10 ns clock, zero ``inputs`` and pulse ``rst`` for two cycles.

    cocotb ends every task a test started when the test ends, so each test starts its own clock.
    """
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in inputs:
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def record(label: str, count: int, seconds: float) -> None:
    """Append a throughput sample to ``$QARCH_BENCH_OUT`` (set by make bench) if requested."""
    path = os.environ.get("QARCH_BENCH_OUT")
    if path:
        with open(path, "a") as f:
            f.write(f"{label}\t{count}\t{seconds:.6f}\n")


def expected_pe(vectors, bits: int, policy: str):
    """Golden (psum_out, ovf_out) for (w_value, a_value, psum_in, ovf_in) vectors.

    psum enters as the register value: accumulating [psum, w*a] from 0 never overflows on the
    first term (psum is in range), so the flag is exactly the second addition's.
    """
    w, a, ps, oi = (torch.tensor(list(x), dtype=torch.int64) for x in zip(*vectors))
    res = accumulate(torch.stack([ps, w * a], dim=-1), bits, policy)
    return res.value.tolist(), (res.overflow | oi.bool()).tolist()


async def drive_pe(dut, cfg, vectors, w_port, a_port, label: str, seed: int) -> None:
    """Apply vectors back to back to a PE and compare every output bit for bit.

    ``vectors``: (w_value, a_value, psum_in, ovf_in); ``w_port`` / ``a_port``: what to drive on
    the ``w`` / ``a`` ports for each vector (codes, or packed decoded operands). Inputs change on
    the falling edge. With ``cfg.pipeline`` = p registers inside the PE, vector j's operands
    enter at step j, its ``psum_in`` at step j + p and its ``ovf_in`` at j + p + lag (lag = 1
    at p = 2, whose sticky flag runs a cycle behind the sum, else 0); each result is read one
    falling edge after its input.
    """
    await start(dut, ("w", "a", "psum_in", "ovf_in"))
    P = cfg.acc_bits
    pipe = getattr(cfg, "pipeline", 0)
    lag = int(pipe >= 2)
    exp_v, exp_o = expected_pe(vectors, P, cfg.policy)
    mask = (1 << P) - 1
    n, steps = len(vectors), len(vectors) + pipe + lag
    await FallingEdge(dut.clk)
    t0 = time.monotonic()
    errors = []

    def where(j: int) -> str:
        w, a, ps, oi = vectors[j]
        return f"{cfg.slug} {label} seed={seed} #{j}: w={w} a={a} psum_in={ps} ovf_in={oi}"

    if pipe == 3:  # the partial sum in skewed halves (hdl.int_pe._skewed_accumulate)
        await _drive_skewed_pe(dut, cfg, vectors, w_port, a_port, where, exp_v, exp_o, errors)
        steps = -1  # done
    for i in range(steps + 1):
        jv, jo = i - 1 - pipe, i - 1 - pipe - lag  # the vectors whose sum / flag are out now
        if 0 <= jv < n:
            got_v = dut.psum_out.value.to_signed()
            if got_v != exp_v[jv]:
                errors.append(
                    f"{where(jv)}: psum_out {got_v & mask:0{P}b}, want "
                    f"{exp_v[jv] & mask:0{P}b} ({got_v} vs {exp_v[jv]})"
                )
        if 0 <= jo < n and int(dut.ovf_out.value) != int(exp_o[jo]):
            errors.append(f"{where(jo)}: ovf_out {int(dut.ovf_out.value)}, want {int(exp_o[jo])}")
        if i < n:
            dut.w.value = w_port[i]
            dut.a.value = a_port[i]
        if 0 <= i - pipe < n:
            dut.psum_in.value = vectors[i - pipe][2] & mask
        if 0 <= i - pipe - lag < n:
            dut.ovf_in.value = int(vectors[i - pipe - lag][3])
        await FallingEdge(dut.clk)
    dt = time.monotonic() - t0
    assert not errors, f"{len(errors)} mismatches of {len(vectors)}:\n" + "\n".join(errors[:10])
    dut._log.info(
        "%s: %d vectors bit-exact, %.0f vectors/s", label, len(vectors), len(vectors) / dt
    )
    record(label, len(vectors), dt)


async def _drive_skewed_pe(dut, cfg, vectors, w_port, a_port, where, exp_v, exp_o, errors):
    """:func:`drive_pe` for ``pipeline`` = 3: vector j's operands at step j, its ``psum_in``
    low half at j + 2 and high half at j + 3 (the two halves of the port belong to different
    vectors at any step), ``ovf_in`` at j + 4; each output half and the flag a step later."""
    P, h, n = cfg.acc_bits, cfg.acc_bits // 2, len(vectors)
    mask, lo_mask = (1 << P) - 1, (1 << h) - 1
    for i in range(n + 6):
        # outputs of step i - 1: the low half of vector i - 3, the high half of i - 4, the
        # flag of i - 5
        out = int(dut.psum_out.value) & mask
        for j, got, want, what in (
            (i - 3, out & lo_mask, lambda j: exp_v[j] & lo_mask, "low half"),
            (i - 4, out >> h, lambda j: (exp_v[j] & mask) >> h, "high half"),
            (i - 5, int(dut.ovf_out.value), lambda j: int(exp_o[j]), "ovf_out"),
        ):
            if 0 <= j < n and got != want(j):
                errors.append(f"{where(j)}: {what} {got}, want {want(j)}")
        if i < n:
            dut.w.value = w_port[i]
            dut.a.value = a_port[i]
        lo = vectors[i - 2][2] & lo_mask if 0 <= i - 2 < n else 0
        hi = (vectors[i - 3][2] & mask) >> h if 0 <= i - 3 < n else 0
        dut.psum_in.value = (hi << h) | lo
        dut.ovf_in.value = int(vectors[i - 4][3]) if 0 <= i - 4 < n else 0
        await FallingEdge(dut.clk)


def psum_mix(rng: random.Random, n: int, bits: int) -> list[int]:
    """Partial sums for PE vectors: 0, the range limits, +-1 and random values."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    fixed = [0, hi, lo, 1, -1]
    return [fixed[i % 5] if i % 3 else rng.randint(lo, hi) for i in range(n)]


async def run_gemm(
    dut, cfg, w, a, *, w_codes=None, a_codes=None, idle: float, seed: int, label: str
) -> torch.Tensor:
    """Stream a full GEMM through an array and compare every output with golden.accum.gemm;
    returns the array's outputs ``[N, M]``."""
    sched = gemm_schedule(cfg, w, a, w_codes=w_codes, a_codes=a_codes, idle=idle, seed=seed)
    out = await run_schedule(dut, cfg, sched, label=label, seed=seed)
    if not idle:  # the published cycle formula, exactly
        check_cycles(dut, cfg, sched, a.shape[1], a.shape[0], w.shape[0], label)
    return out


def check_cycles(dut, cfg, sched, m: int, k: int, n: int, label: str) -> None:
    """Assert the cycles a bench counted equal the config's ``cycles(M, K, N)``."""
    want = cfg.cycles(m, k, n, **sched.model_args)
    assert sched.measured == want, (
        f"{label}: {sched.measured} cycles measured, the formula gives {want} (M={m} K={k} N={n})"
    )
    dut._log.info(
        "%s: %d cycles = cycles(M=%d, K=%d, N=%d), MAC utilisation %.1f %%",
        label, want, m, k, n, 100 * cfg.utilisation(m, k, n, **sched.model_args),
    )  # fmt: skip
    record(f"{label} [cycles]", sched.measured, 0.0)


async def run_schedule(
    dut, cfg, sched, *, label: str, seed: int, inputs=None, latency: int | None = None
) -> torch.Tensor:
    """Drive a schedule's cycles on ``inputs``, compare every output word and flag, and return
    the outputs the array produced as ``[N, M]`` (int64). ``sched.measured`` receives the
    cycles counted from the first schedule cycle to the last valid output, inclusive."""
    C, P = cfg.out_cols, cfg.out_bits  # MicroScopiQ b = 2: two lanes per PE column
    inputs = inputs or array_inputs(cfg)
    latency = cfg.latency if latency is None else latency
    await start(dut, inputs)
    got = []
    t0 = time.monotonic()
    ports = [getattr(dut, n) for n in inputs]
    drain = [None] * (latency + 2)
    last_out = None
    for i, cyc in enumerate(sched.cycles + drain):
        # Iteration i sees the registers of cycle i: the state after the edge that sampled
        # cycle i - 1's inputs.
        if int(dut.y_valid.value):
            last_out = i
            oi, oo = int(dut.y_ovf_inner.value), int(dut.y_ovf_outer.value)
            got.append(
                (
                    int(dut.y_addr.value),
                    unpack_signed(dut.y_data.value.to_unsigned(), P, C),
                    [(oi >> c) & 1 for c in range(C)],
                    [(oo >> c) & 1 for c in range(C)],
                )
            )
        for port, name in zip(ports, inputs):
            port.value = getattr(cyc, name) if cyc else 0
        await FallingEdge(dut.clk)
    dt = time.monotonic() - t0
    errors = []
    if len(got) != len(sched.expected):
        errors.append(f"{len(got)} output vectors, expected {len(sched.expected)}")
    for (addr, y, oi, oo), e in zip(got, sched.expected):
        for c in range(len(e.y)):
            if (y[c], oi[c], oo[c]) != (e.y[c], e.ovf_inner[c], e.ovf_outer[c]):
                errors.append(
                    f"{e.where} col {c} seed={seed}: got {y[c] & (2**P - 1):0{P}b} "
                    f"ovf {oi[c]}{oo[c]}, want {e.y[c] & (2**P - 1):0{P}b} "
                    f"ovf {e.ovf_inner[c]}{e.ovf_outer[c]} ({y[c]} vs {e.y[c]})"
                )
        if addr != e.addr:
            errors.append(f"{e.where}: y_addr {addr}, expected {e.addr}")
    assert not errors, f"{label}: {len(errors)} mismatches:\n" + "\n".join(errors[:10])
    sched.measured = last_out + 1
    n_ovf = sum(sum(e.ovf_inner) + sum(e.ovf_outer) for e in sched.expected)
    dut._log.info(
        "%s: %d outputs x %d columns bit-exact (%d overflow flags set), %d cycles first input "
        "to last output, %.0f cycles/s",
        label,
        len(got),
        C,
        n_ovf,
        sched.measured,
        len(sched.cycles) / dt,
    )
    record(label, len(sched.cycles), dt)
    n = max(e.n0 + len(e.y) for e in sched.expected)
    out = torch.zeros(n, max(e.m for e in sched.expected) + 1, dtype=torch.int64)
    for (_addr, y, _oi, _oo), e in zip(got, sched.expected):
        out[e.n0 : e.n0 + len(e.y), e.m] = torch.tensor(y[: len(e.y)])
    return out
