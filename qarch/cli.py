"""``qarch`` command line: list designs, export Verilog, run synthesis."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
import warnings
from pathlib import Path

from .configs import COMPONENTS, PRESETS, AccumulatorWidthWarning, resolve, synth_targets
from .schemes import REGISTRY, scheme_named
from .schemes.options import CALIB_WINDOWS, add_scheme_options, scheme_config

EVAL_TOKENS = 4096  # LM evaluation tokens by default (the report's first column)
DEVICE_HELP = (
    "where torch runs the model and the quantizers: cpu (default: the committed figures are "
    "CPU figures), cuda, cuda:N, or auto (a CUDA GPU where torch sees one, else the CPU); "
    "docs/gpu.md"
)

__all__ = ["main"]


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"-p takes key=value, not {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _families() -> dict[str, list[str]]:
    """Preset names by hardware family (``qarch.configs`` module), in preset order."""
    out: dict[str, list[str]] = {}
    for name, cfg in PRESETS.items():
        out.setdefault(type(cfg).__module__.rsplit(".", 1)[-1], []).append(name)
    return out


def _cmd_list(args) -> int:
    from .schemes import REGISTRY

    print("components (qarch verilog COMPONENT -p key=value ...):")
    for name, cls in COMPONENTS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        fields = ", ".join(f"{k}={v}" for k, v in cls().to_dict().items() if k != "component")
        print(f"  {name}\n      {doc}\n      defaults: {fields}")
    runs = {}  # family -> the schemes whose models it executes
    for s in REGISTRY.values():
        if s.family:
            runs.setdefault(s.family, []).append(s.name)
    width = max(len(n) for n in PRESETS)
    for family, names in _families().items():
        schemes = ", ".join(runs.get(family, [])) or "none"
        print(f"\npresets, {family} family (runs the schemes: {schemes}):")
        for name in names:
            print(f"  {name:<{width}}  {PRESETS[name].slug}")
    return 0


def _cmd_verilog(args) -> int:
    from .export import export

    cfg = resolve(args.name, _params(args.param))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccumulatorWidthWarning)
        v, j = export(cfg, args.out)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(v)
    print(j)
    return 0


def _formats_abfloat(args) -> int:
    import torch

    from golden.olive import NORMAL_TYPES, OliveFormat

    if args.normal is None and args.bits not in (4, 8):
        raise ValueError(
            f"--bits must be 4 or 8 for abfloat (OliVe's element widths), not {args.bits}"
        )
    normal = args.normal or ("int4" if args.bits == 4 else "int8")
    if NORMAL_TYPES.get(normal) != args.bits:
        raise ValueError(f"--normal {normal} is not a {args.bits}-bit OliVe normal type")
    if args.unsigned:
        raise ValueError("abfloat is signed (the identifier needs the sign code)")
    f = OliveFormat(normal, args.e_bits)
    codes = torch.arange(1 << f.bits)
    codes = codes[(codes & (f.identifier - 1)) != 0]  # (e, m) = (0, 0) is excluded
    dec = f.abfloat_decode(codes)
    rows = [{"code": int(c), "value": int(v)} for c, v in zip(codes, dec.value())]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"abfloat E{f.e_bits}M{f.m_bits} for {normal} (normal max {f.normal_max}): bias "
        f"{f.bias}, value = ±(2^{f.m_bits} + m) << (e + {f.bias}); outlier magnitudes "
        + ", ".join(str(int(v)) for v in f.outlier_mags())
    )
    for r, mag, exp in zip(rows, dec.mag.tolist(), dec.exp.tolist()):
        print(f"  {r['code']:0{f.bits}b} {r['code']:>3}  {r['value']:>6}  mag {mag} exp {exp}")
    return 0


def _cmd_formats(args) -> int:
    import torch

    from golden.ant import AntType

    if args.name == "abfloat":
        return _formats_abfloat(args)
    if args.normal:
        raise ValueError("--normal applies to abfloat only")
    t = AntType(args.name, args.bits, not args.unsigned)
    rows = [{"code": c, "value": v} for c, v in t.table()]
    if args.json:
        print(json.dumps(rows))
        return 0
    width = args.bits
    print(f"{t.name}: {len(rows)} codes, grid of {len(t.grid())} values (value = ±mag << exp)")
    dec = t.decode(torch.arange(2**args.bits))
    print(f"  {'code':<{width + 4}} {'value':>7}  sign mag exp")
    for (c, v), s_, m_, e_ in zip(t.table(), dec.sign.tolist(), dec.mag.tolist(), dec.exp.tolist()):
        print(f"  {c:0{width}b} {c:>3}  {v:>7}  {s_:>4} {m_:>3} {e_:>3}")
    return 0


def _synth_one(
    name: str, params: dict[str, str], target: str, work: str, place: bool, dsp: bool = True
):
    from synth.flow import synthesize

    from .stimulus import array_stimulus

    warnings.simplefilter("ignore", AccumulatorWidthWarning)
    t0 = time.monotonic()
    rep = synthesize(
        resolve(name, params), target, Path(work), place=place, dsp=dsp, stimulus=array_stimulus
    )
    return rep, time.monotonic() - t0


def _cmd_synth(args) -> int:
    if args.no_dsp and args.target != "ecp5":
        raise ValueError(f"--no-dsp applies to --target ecp5, not {args.target}")
    cfg = resolve(args.name, _params(args.param))
    # measured here (2 cores): say so before a long silent run
    took = {
        "generic": "3-13 minutes (synthesis, timing and the gate-level energy runs)",
        "ecp5": "7-46 minutes of place-and-route (--no-place skips it)",
    }.get(args.target if args.target == "generic" or not args.no_place else "")
    if took and getattr(cfg, "rows", 0) * getattr(cfg, "cols", 0) >= 256:
        print(f"qarch synth: a {cfg.rows}x{cfg.cols} array: this takes {took}", file=sys.stderr)
    try:
        rep, _ = _synth_one(
            args.name, _params(args.param), args.target, args.work, not args.no_place,
            dsp=not args.no_dsp,
        )  # fmt: skip
    except RuntimeError as e:  # a tool failed: its message (or its silence), not a traceback
        raise ValueError(str(e)) from None
    if args.json:
        print(json.dumps(rep, sort_keys=True, indent=1))
        return 0
    keys = {
        "generic": ("cells", "transistors", "area_um2", "area_delay_um2_ns", "latches"),
        "ice40": ("lut4", "ff", "carry", "dsp", "latches", "fmax_mhz", "fmax_note"),
        "ecp5": ("lut4", "ff", "carry", "dsp", "bram", "latches", "fmax_mhz", "fmax_note"),
    }[args.target]
    print(rep["design"], f"[{args.target}]")
    for k in (k for k in keys if k in rep):
        value = rep[k]
        if k == "transistors" and rep.get("transistors_lower_bound"):
            value = f"{value}+ (a lower bound: yosys's CMOS estimate has no count for some cells)"
        print(f"  {k:<12} {value}")
    mem = rep.get("memory")
    if mem:
        shape = ", ".join(f"{w} x {b}" for w, b in zip(mem["words"], mem["width"]))
        print(
            f"  {'memory':<12} {mem['bits']} bits ({shape}), not in area_um2; "
            f"{mem['area_um2']} um^2 as a {mem['model']} ({mem['model_note']})"
        )
    t = rep.get("timing")
    if t:
        print(f"  {'Fmax':<12} {t['fmax_mhz']} MHz (critical path {t['critical_path_ns']} ns, "
              f"OpenSTA, 0.18 um)")  # fmt: skip
        print(f"  {'path':<12} {t['startpoint']} -> {t['endpoint']}")
    for kind, p in (rep.get("power") or {}).items():
        if isinstance(p, dict):
            print(f"  {'pJ/MAC':<12} {p['pj_per_mac']} {kind} ({p['pj_per_useful_mac']} per useful "
                  f"MAC, {p['power_mw']} mW at Fmax; {p['stimulus']})")  # fmt: skip
    return 0


def _cmd_fpga(args) -> int:
    from synth.fpga import build_bitstream

    warnings.simplefilter("ignore", AccumulatorWidthWarning)
    cfg = resolve(args.name, _params(args.param))
    try:
        rep = build_bitstream(cfg, args.board, dsp=not args.no_dsp)
    except RuntimeError as e:  # yosys / nextpnr / icepack failed; their output is above
        raise ValueError(str(e)) from None
    if args.json:
        print(json.dumps(rep, sort_keys=True, indent=1))
        return 0
    print(f"{rep['design']} on {rep['board']} ({rep['device']}): {rep['bitstream']}")
    for k, (used, avail) in sorted(rep["utilisation"].items()):
        print(f"  {k:<16} {used:>6} / {avail} ({100 * used / avail:.0f}%)")
    print(f"  Fmax             {rep['fmax_mhz']} MHz (board clock {rep['clock_mhz']:g} MHz)")
    print(f"  SPI frames       {rep['frame_bits']['in']} bits in, {rep['frame_bits']['out']} out")
    return 0


def _write_tables(out: Path, names: dict[str, str]) -> None:
    from synth.report import area_table, load_reports, write_axe_plot

    if not out.is_dir():
        raise FileNotFoundError(f"report directory {out} does not exist")
    reports = load_reports(out)
    if not reports:
        raise ValueError(f"{out} holds no synthesis report (*.json): nothing to tabulate")
    (out / "README.md").write_text(area_table(reports, names))
    plot = write_axe_plot(reports, {n: s for s, n in names.items()}, out / "axe_area_vs_pi.png")
    print(f"wrote {out}/README.md" + (f" and {plot}" if plot else ""))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _cmd_synth_all(args) -> int:
    from synth.report import load_reports, write_report

    out = Path(args.out)
    names = {cfg.slug: name for name, cfg in PRESETS.items()}
    if args.table_only:
        _write_tables(out, names)
        return 0
    selected = [n for n in PRESETS if not args.only or any(f in n for f in args.only)]
    if not selected:
        raise ValueError(f"--only {args.only} matches no preset; see `qarch list`")
    if args.ecp5_big and args.target and args.target != ["ecp5"]:
        raise ValueError(f"--ecp5-big runs the ecp5 target only, not {args.target}")
    jobs = [
        (name, t)
        for name in selected
        for t in synth_targets(name, big=args.ecp5_big)
        if not args.target or t in args.target
    ]
    if not jobs:
        raise ValueError(
            f"no synthesis job: the presets {args.only} have no target {args.target}"
            + (" among make synth-ecp5's arrays (--ecp5-big)" if args.ecp5_big else "")
        )
    # Longest first (16x16 arrays), so two workers finish together: Dask runs the tasks by
    # priority (without one, it ran a PE fourth, before most of the 16x16 arrays)
    jobs.sort(key=lambda j: -(PRESETS[j[0]].__dict__.get("rows", 0) ** 2))
    t0 = time.monotonic()
    failed = done = 0
    from distributed import as_completed

    from .sweep import dask_client

    # The sweep engine (qarch.sweep): a Dask LocalCluster of --jobs workers, each leading its own
    # process group so that an interrupt ends it together with the yosys / nextpnr processes it
    # started; the tables are written only after every job.
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps that
    restore = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with dask_client(args.jobs) as client:
            futs = {
                client.submit(_synth_one, n, {}, t, args.work, True, pure=False,
                              key=f"synth-all-{n}-{t}", priority=len(jobs) - i): (n, t)
                for i, (n, t) in enumerate(jobs)
            }  # fmt: skip
            for i, fut in enumerate(as_completed(list(futs)), 1):
                n, t = futs[fut]
                if fut.status == "error":  # report every failure, then fail the run
                    failed += 1
                    print(f"[{i}/{len(jobs)}] {n} {t}: FAILED\n{fut.exception()}", file=sys.stderr)
                    continue
                rep, dt = fut.result()
                write_report(rep, out)
                done += 1
                latch = f", {rep['latches']} LATCHES" if rep["latches"] else ""
                print(f"[{i}/{len(jobs)}] {n:<24} {t:<8} {dt:6.1f} s{latch}", flush=True)
    except KeyboardInterrupt:
        print(
            f"synth-all: interrupted after {done} of {len(jobs)} jobs; the finished jobs' reports "
            "are written, no table was", file=sys.stderr,
        )  # fmt: skip
        return 130
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)
    _write_tables(out, names)
    print(f"synthesis took {time.monotonic() - t0:.0f} s")
    latches = [k for k, r in load_reports(out).items() if r["latches"]]
    if latches:
        print(f"error: latches inferred in {latches}", file=sys.stderr)
    return 1 if failed or latches else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qarch",
        description="Generator and verification suite for low-bit quantization accelerators.",
        epilog="Examples: qarch list | qarch formats flint --bits 4 --unsigned | "
        "qarch verilog int4x8-array8x8-p20 -o build/verilog | "
        "qarch verilog int-pe -p w_bits=4 -p acc_bits=20 -o out | "
        "qarch synth int8x8-pe-p32 --target ice40",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    s = sub.add_parser("list", help="list components and presets")
    s.set_defaults(func=_cmd_list)

    def design_args(s):
        s.add_argument("name", help="a preset (see `qarch list`) or a component name")
        keys = "; ".join(
            f"{c}: " + ", ".join(f.name for f in dataclasses.fields(cls))
            for c, cls in COMPONENTS.items()
        )
        s.add_argument(
            "-p",
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"override one configuration field (repeatable). Keys per component: {keys}",
        )

    s = sub.add_parser("formats", help="print every code of a number format with its value")
    s.add_argument("name", choices=("int", "pot", "flint", "abfloat"), help="format family")
    s.add_argument("--bits", type=int, required=True, help="code width (2..8; abfloat 4 or 8)")
    s.add_argument(
        "--normal",
        choices=("int4", "flint4", "int8"),
        help="abfloat: the OliVe normal type that sets the bias (default int4 / int8)",
    )
    s.add_argument("--e-bits", type=int, default=2, help="abfloat exponent bits (default 2)")
    s.add_argument("--unsigned", action="store_true", help="unsigned variant")
    s.add_argument("--json", action="store_true", help='[{"code": 0, "value": 0}, ...]')
    s.set_defaults(func=_cmd_formats)

    s = sub.add_parser("verilog", help="write DIR/<slug>.v and DIR/<slug>.json")
    design_args(s)
    s.add_argument("-o", "--out", required=True, help="output directory")
    s.set_defaults(func=_cmd_verilog)

    s = sub.add_parser("synth", help="synthesize one design and print its figures")
    design_args(s)
    s.add_argument(
        "--target",
        choices=("generic", "ice40", "ecp5"),
        default="generic",
        help="generic: yosys onto the OSU 0.18 um liberty (cells, transistors, um^2), OpenSTA "
        "timing (Fmax, critical path) and, for PEs and arrays, pJ/MAC from gate-level activity "
        "(docs/power.md); ice40: yosys synth_ice40 and nextpnr on the HX8K (LUT4, FF, carry, "
        "Fmax); ecp5: synth_ecp5 (multipliers in DSPs) and nextpnr-ecp5 on the LFE5U-85F; "
        "default generic",
    )
    s.add_argument("--json", action="store_true", help="print the full JSON report")
    s.add_argument("--no-place", action="store_true", help="FPGA targets: skip nextpnr (no Fmax)")
    s.add_argument(
        "--no-dsp", action="store_true", help="ecp5: multipliers in LUTs, no MULT18X18D DSP"
    )
    s.add_argument("--work", default="build/synth", help="work directory (default build/synth)")
    s.set_defaults(func=_cmd_synth)

    s = sub.add_parser(
        "fpga",
        help="build a bitstream of a design behind an SPI host interface (no board needed)",
        description="Place and route a design (a preset or KIND with --param) for a board with "
        "amaranth-boards and the pinned YoWASP tools, behind the SPI step host of hdl/host.py "
        "(sclk/copi/cipo/cs_n on the first PMOD; one SPI transaction = one core cycle), and "
        "report utilisation and Fmax. Nothing is programmed. A 4x4 INT array fits the "
        "iCEBreaker's UP5K, e.g. `qarch fpga int4x8-array4x4-p16`.",
    )
    design_args(s)
    s.add_argument(
        "--board",
        default="icebreaker",
        help="icebreaker (iCE40 UP5K) or ulx3s (ECP5 LFE5U-85F: the 8x8 arrays fit with their "
        "multipliers in DSPs, the 16x16 ones with --no-dsp); default icebreaker",
    )
    s.add_argument(
        "--no-dsp", action="store_true", help="ulx3s: multipliers in LUTs, no MULT18X18D DSP"
    )
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=_cmd_fpga)

    s = sub.add_parser("synth-all", help="synthesize every preset for every target (make synth)")
    s.add_argument("--out", default="synth/reports", help="report directory")
    s.add_argument("--work", default="build/synth", help="work directory")
    s.add_argument("-j", "--jobs", type=int, default=2, help="parallel synthesis jobs (default 2)")
    s.add_argument(
        "--table-only", action="store_true", help="only regenerate README.md from the JSON reports"
    )
    s.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="only presets whose name contains TEXT (repeatable); the table covers every report",
    )
    s.add_argument(
        "--target",
        action="append",
        choices=("generic", "ice40", "ecp5"),
        default=[],
        help="only this target (repeatable; default: each preset's targets)",
    )
    s.add_argument(
        "--ecp5-big",
        action="store_true",
        help="make synth-ecp5: only the ECP5 place-and-route of the 16x16 arrays (7-46 minutes "
        "each here) and of the 8x8 arrays make synth does not place",
    )
    s.set_defaults(func=_cmd_synth_all)

    s = sub.add_parser(
        "eval",
        help="accuracy of a model quantized by a scheme (perplexity, cosine, top-1)",
        description="Quantize a model by a scheme and measure it. smollm2-135m (or any causal "
        "LM path): perplexity (context 512, non-overlapping windows) on the first --tokens "
        "tokens of gensim's Wikipedia text; the first use converts its packaged GGUF to an fp32 "
        "cache (about a minute). minilm-l6 (or minilm:PATH): embedding cosine to fp32 on 512 "
        "Wikipedia sentences, Spearman rho on WordSim-353 / SimLex-999. fashion-cnn: test "
        "accuracy and agreement with fp32 (trained and cached on first use, about a minute). "
        "efficientnet-lite0: top-1 / top-5 agreement with fp32 on 64 crops of two photos. "
        "Calibration always reads held-out data.",
    )
    s.add_argument(
        "--model",
        default="smollm2-135m",
        help="smollm2-135m, minilm-l6, fashion-cnn, efficientnet-lite0, or a causal LM path",
    )
    s.add_argument(
        "--scheme",
        default="fp32",
        help="the quantization scheme: " + ", ".join(REGISTRY) + " (default fp32); each takes "
        "only its own options below, and an option it does not take is an error",
    )
    add_scheme_options(s)
    s.add_argument(
        "--calib",
        type=int,
        default=None,
        help=f"LM calibration: held-out 512-token windows ({CALIB_WINDOWS}), for the schemes "
        "and options that calibrate",
    )
    s.add_argument(
        "--tokens", type=int, default=None, help=f"LM evaluation tokens (default {EVAL_TOKENS})"
    )
    s.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
        help="causal LMs: the weights' dtype in memory (default float32); the quantizers "
        "compute in float32 or wider per layer, and the model is quantized in place, block by "
        "block with --capture block, so peak memory is the model once (docs/evaluation.md)",
    )  # fmt: skip
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(func=_cmd_eval)

    s = sub.add_parser(
        "perf",
        help="cycles, throughput per area and energy per token of a model on an array",
        description="A model's GEMMs tiled onto the array that executes a scheme: per layer and "
        "in total, cycles (the RTL-verified cycle formula), MAC utilisation, time at the "
        "array's Fmax with DRAM transfers as a roofline, tokens/s, tokens/s per mm^2 of the "
        "array, and energy per token split into array (gate-level pJ from the synthesis "
        "report), accumulator, buffer and DRAM (docs/perf.md). Or one GEMM: --gemm M,K,N "
        "--preset NAME. Figures need the array's synthesis report in synth/reports.",
    )
    s.add_argument(
        "--model",
        default="smollm2-135m",
        help="smollm2-135m (or a causal LM path), minilm-l6, fashion-cnn, efficientnet-lite0",
    )
    s.add_argument(
        "--scheme",
        default=None,
        help="the scheme whose array runs the model: " + ", ".join(REGISTRY) + "; takes its "
        "options below: those that pick the array (--bits, --acc-bits, ...) change the figures, "
        "calibration-only ones (--sink-weight, ...) do not and are recorded in --json",
    )
    add_scheme_options(s)
    s.add_argument("--array", default="16x16", help="array rows x columns (default 16x16)")
    s.add_argument(
        "--preset", default=None, help="an array preset instead of the scheme's array (--gemm)"
    )
    s.add_argument("--gemm", default=None, metavar="M,K,N", help="one GEMM [N,K] x [K,M]")
    s.add_argument(
        "--prefill", type=int, default=None,
        help="tokens of the prefill (causal LMs: default 512; MiniLM: sentence length, 128)",
    )  # fmt: skip
    s.add_argument("--decode", action="store_true", help="one decode step (causal LMs)")
    s.add_argument(
        "--batch", type=int, default=1, help="sequences (decode: tokens per step) or images"
    )
    mem = s.add_argument_group("memory model (defaults: docs/perf.md)")
    mem.add_argument("--sram-pj-per-bit", type=float, default=None, help="buffer energy, 5.0")
    mem.add_argument("--dram-pj-per-bit", type=float, default=None, help="DRAM energy, 20.0")
    mem.add_argument("--dram-gbps", type=float, default=None, help="DRAM GB/s, 25.6")
    s.add_argument("--reports", default=None, help="synthesis report directory")
    s.add_argument(
        "--device", default="cpu",
        help="where torch quantizes MicroScopiQ's weights for its outlier rows: " + DEVICE_HELP,
    )  # fmt: skip
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(func=_cmd_perf)

    s = sub.add_parser(
        "sweep",
        help="a design-space sweep on Dask (synthesis, perf, eval per point)",
        description="Run a sweep file (TOML: axes, a hardware preset with overrides, a scheme "
        "with options, what to measure) on Dask distributed: a LocalCluster here, or any "
        "scheduler. Each measurement is stored under a key of its full specification, so a "
        "re-run computes only what is missing and a killed worker loses only its current task. "
        "Writes OUT/README.md (table, Pareto plots) and OUT/results.jsonl (docs/sweep.md).",
    )
    s.add_argument("file", help="the sweep file (e.g. sweeps/axe_pi_tile.toml)")
    s.add_argument("--out", default=None, help="result folder (default build/sweep/NAME)")
    s.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    s.add_argument("--scheduler", default=None, help="an existing Dask scheduler's address")
    s.add_argument("--plan", action="store_true", help="list the points and tasks, run nothing")
    s.set_defaults(func=_cmd_sweep)
    return p


def _cmd_sweep(args) -> int:
    from .sweep import load_sweep, plan, run_sweep, stored, write_results

    sw = load_sweep(args.file)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if args.scheduler and args.workers != 2:
        raise ValueError("--workers sizes the LocalCluster; with --scheduler the cluster is yours")
    out = Path(args.out) if args.out else Path("build") / "sweep" / sw.name
    points, tasks = plan(sw)  # every config validated before any work
    if args.plan:
        store = out / "results"
        done = sum(stored(store, k) is not None for k in tasks)
        print(f"{sw.name}: {len(points)} points, {len(tasks)} distinct tasks, {done} stored")
        for p in points:
            print("  " + ", ".join(f"{k}={v}" for k, v in p["point"].items()) + "  ->  "
                  + " ".join(p["keys"].values()))  # fmt: skip
        return 0
    t0 = time.monotonic()
    rows = run_sweep(sw, out, workers=args.workers, scheduler=args.scheduler)
    path = write_results(sw, rows, out)
    print(f"{sw.name}: {len(points)} points, {len(tasks)} tasks in {time.monotonic() - t0:.0f} s; "
          f"wrote {path}")  # fmt: skip
    return 0


def _cmd_perf(args) -> int:
    from golden.device import resolve_device

    from .perf import (
        REPORTS,
        Gemm,
        MemoryModel,
        hardware_for,
        model_gemms,
        parse_array,
        perf,
        preset_hardware,
        render,
    )  # fmt: skip

    device = resolve_device(args.device)
    reports = Path(args.reports) if args.reports else REPORTS
    if args.reports and not reports.is_dir():
        raise ValueError(f"--reports: {args.reports} is not a directory")
    given = {"sram_pj_per_bit": args.sram_pj_per_bit, "dram_pj_per_bit": args.dram_pj_per_bit,
             "dram_gbytes_per_s": args.dram_gbps}  # fmt: skip
    mem = MemoryModel(**{k: v for k, v in given.items() if v is not None})
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, not {args.batch}")
    if args.prefill is not None and args.prefill < 1:
        raise ValueError(f"--prefill must be at least 1 token, not {args.prefill}")
    scheme_cfg = scheme_config(args) if args.scheme else None
    if args.scheme is None and any(
        getattr(args, k) is not None for k in vars(args) if k.startswith("scheme_opt_")
    ):
        raise ValueError("scheme options need --scheme")
    if args.gemm is not None:
        try:
            m, k, n = (int(v) for v in args.gemm.split(","))
        except ValueError:
            raise ValueError(f"--gemm must be M,K,N (three integers), not {args.gemm!r}") from None
        for label, v in (("M", m), ("K", k), ("N", n)):
            if v < 1:
                raise ValueError(f"--gemm: {label} must be at least 1, not {v}")
        if args.decode or args.prefill is not None:
            raise ValueError("--gemm gives M itself; --prefill and --decode are for --model")
        if args.preset:
            hw = preset_hardware(args.preset, reports)
        elif scheme_cfg is not None:
            hw = hardware_for(scheme_cfg, *parse_array(args.array), reports)
        else:
            raise ValueError("--gemm needs --preset NAME or --scheme S (with --array)")
        gemms, tokens, what = [Gemm("gemm", m, k, n, "gemm")], m, f"GEMM M={m} K={k} N={n}"
        weights, notes = None, []
    else:
        if args.preset:
            raise ValueError("--preset is for --gemm; a model runs on its --scheme's array")
        if scheme_cfg is None:
            raise ValueError("--scheme is required (the scheme whose array runs the model)")
        from .evaluate import TASK_MODELS

        lm = args.model not in TASK_MODELS
        if args.decode and args.prefill is not None:
            raise ValueError("--prefill and --decode are two runs; give one")
        if args.model in ("fashion-cnn", "efficientnet-lite0") and args.prefill is not None:
            raise ValueError(f"--prefill counts tokens; {args.model} takes --batch images")
        hw = hardware_for(scheme_cfg, *parse_array(args.array), reports)
        tokens_in = args.prefill or (512 if lm else 128)
        gemms, weights, notes = model_gemms(
            args.model, tokens=tokens_in, batch=args.batch, decode=args.decode,
            weights=hasattr(hw.cfg, "recon_rows"),
        )  # fmt: skip
        if args.decode:
            tokens, what = args.batch, f"decode, batch {args.batch}"
        elif args.model in ("fashion-cnn", "efficientnet-lite0"):
            tokens, what = args.batch, f"{args.batch} image(s)"
        else:
            tokens = tokens_in * args.batch
            what = f"prefill {tokens_in} tokens, batch {args.batch}"
    from tqdm import tqdm

    slow = hasattr(hw.cfg, "recon_rows") and weights

    def bar(it):
        return tqdm(it, desc="outlier rows", unit="layer", disable=not slow)

    unit = (
        "image"
        if args.gemm is None and args.model in ("fashion-cnn", "efficientnet-lite0")
        else "token"
    )
    res = perf(gemms, hw, scheme_cfg=scheme_cfg, weights=weights, mem=mem, tokens=tokens,
               unit=unit, progress=bar, device=device)  # fmt: skip
    res["request"] = {
        "model": None if args.gemm else args.model, "gemm": args.gemm, "what": what,
        "scheme": args.scheme, "options": scheme_cfg.options() if scheme_cfg else None,
        "array": args.array if not args.preset else None, "preset": args.preset,
    }  # fmt: skip
    res["notes"] = notes
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        label = None
        if scheme_cfg is not None:
            label = REGISTRY[args.scheme].label(scheme_cfg)
        print(render(res, label))
    return 0


def _cmd_eval(args) -> int:
    from tqdm import tqdm

    config = scheme_config(args)
    scheme = scheme_named(args.scheme)
    tokens = EVAL_TOKENS if args.tokens is None else args.tokens
    if tokens < 512 or tokens % 512:  # the evaluation context
        raise ValueError(f"--tokens must be a positive multiple of 512, not {tokens}")
    needs = scheme.needs_calib(config)
    if args.calib is not None and not needs:
        raise ValueError(f"--calib: {args.scheme} with these options does not calibrate")
    calib_windows = CALIB_WINDOWS if args.calib is None else args.calib
    if needs and not 1 <= calib_windows <= 1024:
        raise ValueError(f"--calib must be in 1..1024 windows, not {calib_windows}")

    from golden.device import resolve_device

    from . import quantize
    from .evaluate import TASK_MODELS, perplexity, task_for
    from .models import ModelUnavailable, calibration_ids, load_causal_lm, wiki_tokens

    device = resolve_device(args.device)  # before any model loads

    task_model = args.model in TASK_MODELS or args.model.startswith("minilm:")
    if task_model and args.dtype != "float32":
        raise ValueError(f"--dtype applies to causal LMs; {args.model} evaluates in float32")
    if task_model and args.tokens is not None:
        raise ValueError(f"--tokens counts LM evaluation tokens; {args.model} has its own data")
    if task_model and args.calib is not None:
        raise ValueError(
            f"--calib counts LM windows; {args.model} calibrates on its own held-out data"
        )
    try:
        if task_model:
            task = task_for(
                args.model,
                progress=lambda it: tqdm(it, desc="training the CNN", unit="step"),
                device=device,
            )
        else:
            model, tok = load_causal_lm(args.model, args.dtype)
            model.to(device)  # quantized in place where it lives
            ids = wiki_tokens(tok, args.model)
    except ModelUnavailable as e:
        raise ValueError(str(e)) from None
    if task_model:
        model, calib = task.model, task.calibrate if needs else None
    else:
        if tokens > ids.numel():  # before any quantization work
            raise ValueError(f"--tokens: the text has {ids.numel()} tokens, fewer than {tokens}")
        calib = calibration_ids(ids, calib_windows) if needs else None
    q, info = quantize(
        model, config, calib=calib,
        progress=lambda it, total=None: tqdm(it, total=total, desc=args.scheme, unit="layer"),
        inplace=not task_model,  # an LM's float model is not needed again: no second copy
    )  # fmt: skip
    res = {"model": args.model, "scheme": args.scheme, **config.options()}
    if args.dtype != "float32":
        res["dtype"] = args.dtype
    if device.type != "cpu":  # CPU runs keep the established JSON (and its figures)
        res["device"] = str(device)
    if needs and not task_model:
        res["calib"] = calib_windows
    res["ebw"] = round(info.ebw, 4)
    if task_model:
        metrics = {k: round(v, 4) for k, v in task.metrics(q).items()}
        res.update(metrics)
        text = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    else:
        ppl = perplexity(
            q, ids, tokens, progress=lambda it: tqdm(it, desc="perplexity", unit="window")
        )
        res.update({"tokens": tokens, "perplexity": round(ppl, 4)})
        text = f"perplexity {ppl:.3f}"
    print(json.dumps(res) if args.json else f"{args.model} {args.scheme}: {text}")
    return 0


def interruptible(prog: str, main):
    """``main`` with SIGTERM handled like Ctrl-C, and either ending in one line and exit 130
    instead of a traceback (caches and reports are written atomically, so nothing is left
    half-written)."""

    def run(argv: list[str] | None = None) -> int:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return main(argv)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)

    return run


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `qarch formats ... | head`
        return 0
    except (KeyError, ValueError, TypeError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"qarch: error: {msg}", file=sys.stderr)
        if getattr(args, "json", False):  # scripts reading stdout get the reason too
            print(json.dumps({"error": str(msg)}))
        return 2


main = interruptible("qarch", _main)

if __name__ == "__main__":
    sys.exit(main())
