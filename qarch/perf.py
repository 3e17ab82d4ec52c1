"""Workload performance (``qarch perf``): a model's GEMMs tiled onto an array, with the array's
RTL-verified cycle formula, its synthesized area, Fmax and pJ per cycle, and the memory traffic
between DRAM, an on-chip buffer and the array (docs/perf.md).

Per GEMM ``Y = W @ A`` (W [N, K] weights, A [K, M]: M tokens or im2col patches):

- **cycles**: the config's ``cycles(M, K, N)``, the formula every array bench asserts against
  the cycles it counts on the generated Verilog (MicroScopiQ: with the stalls of its shared
  ReCoN, from where the layer's real weights put their outliers);
- **time**: ``max(cycles / Fmax, DRAM bytes / DRAM bandwidth)``: a roofline, DRAM transfers
  overlapping compute; a layer whose DRAM time is longer is *memory-bound*;
- **DRAM traffic**: compulsory only (the buffer holds one layer's operands): the weights at their
  effective bits (codes, scales, metadata: the EBW of the scheme's quantizer), the input
  activations and the outputs at the array's activation width plus an fp16 scale per token;
- **buffer traffic**: what the array reads and writes: a K tile of weights per pass, R
  activations per vector per pass, the outer accumulator's read and write per vector, column and
  pass, the outputs, and the DRAM fills;
- **energy**: array = cycles x the clock and leakage energy per cycle + useful MACs x the data
  energy per MAC, both from the synthesis report's gate-level power on the model-link stimulus
  (so idle cycles pay their clock); buffer and DRAM = bits x the energy per bit of
  :class:`MemoryModel`.

Not on the array (and so not counted): the attention score and value products (activation x
activation), softmax, norms, the tied LM head (float in every scheme), depthwise convolutions.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MemoryModel",
    "Gemm",
    "Hardware",
    "hardware_for",
    "gemm_cost",
    "model_gemms",
    "perf",
    "parse_array",
    "REPORTS",
    "render",
    "preset_hardware",
    "energy_split",
]

REPORTS = Path(__file__).resolve().parent.parent / "synth" / "reports"
BOUNDS = ("compute", "weight-load", "dram")
SCALE_BITS = 16  # an fp16 scale per output channel (weights) or per token (activations)


@dataclass(frozen=True)
class MemoryModel:
    """Energy and bandwidth of the memories around the array: named parameters whose defaults
    cite their source and node (docs/perf.md "Memory model").

    - ``sram_pj_per_bit`` 5.0: Horowitz, "Computing's energy problem", ISSCC 2014: a 64-bit read
      of a 32 KB SRAM costs 20 pJ at 45 nm, 0.9 V (0.31 pJ/bit); scaled to the array's 0.18 um,
      1.8 V by 16 (capacitance with feature size 4x, V^2 4x), first order.
    - ``dram_pj_per_bit`` 20.0: same source, DRAM 1.3-2.6 nJ per 64-bit access (20-41 pJ/bit),
      the lower end; off-chip I/O and DRAM arrays do not follow the logic node.
    - ``dram_gbytes_per_s`` 25.6: one 64-bit DDR4-3200 channel (JEDEC JESD79-4).
    """

    sram_pj_per_bit: float = 5.0
    dram_pj_per_bit: float = 20.0
    dram_gbytes_per_s: float = 25.6

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise ValueError(f"{f.name} must be a positive number, not {v!r}")


@dataclass(frozen=True)
class Gemm:
    """One GEMM of a model: ``name`` (the layer), ``kind`` (the name without the block index,
    for the grouped table), M, K, N, and ``count`` identical instances (a grouped conv)."""

    name: str
    m: int
    k: int
    n: int
    kind: str = ""
    count: int = 1

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.count


@dataclass
class Hardware:
    """An array config with what the synthesis report says about it (None where no report)."""

    name: str  # a preset name, or the base preset and the overrides it was derived with
    cfg: Any
    area_um2: float | None = None
    fmax_mhz: float | None = None
    fixed_pj_per_cycle: float | None = None  # clock + leakage
    data_pj_per_mac: float | None = None  # switching + input + internal, per useful MAC
    memory_bits: int | None = None
    missing: str = ""  # why a figure is absent, with the command that produces it

    @property
    def rows(self) -> int:
        return self.cfg.rows

    @property
    def cols(self) -> int:
        return self.cfg.cols

    @property
    def lanes(self) -> int:
        """MAC lanes per row: the columns, or two per column for MicroScopiQ b = 2 (a split-mode
        PE multiplies two 2-bit weights), so a column block covers this many outputs."""
        return self.cfg.out_cols

    @property
    def w_code_bits(self) -> float:
        """Bits per weight code moved into the array (MicroScopiQ: plus its ReCoN config words,
        one per micro-block of m columns and row)."""
        if hasattr(self.cfg, "recon_rows"):
            from golden.microscopiq import router_bits

            return self.cfg.b + router_bits(self.cfg.m, self.cfg.d) / self.cfg.m
        return getattr(self.cfg, "w_bits", None) or self.cfg.bits

    @property
    def a_bits(self) -> int:
        return getattr(self.cfg, "a_bits", None) or self.cfg.bits


def parse_array(text: str) -> tuple[int, int]:
    """``"16x16"`` -> (16, 16)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m or not all(2 <= int(v) <= 64 for v in m.groups()):
        raise ValueError(f"--array must be RxC with R and C in 2..64 (e.g. 16x16), not {text!r}")
    return int(m[1]), int(m[2])


def energy_split(power: dict) -> tuple[float, float]:
    """(clock + leakage pJ per cycle, the rest in pJ per useful MAC) of one stimulus's power
    figures in a synthesis report: what every cycle pays, and what each MAC adds."""
    e = power["energy_pj"]
    fixed = e["clock"] + e["leakage"]
    return fixed / power["cycles"], (e["total"] - fixed) / power["useful_macs"]


def _with_report(name: str, cfg, reports: Path, override: str = "") -> Hardware:
    import json

    hw = Hardware(name, cfg)
    path = Path(reports) / f"{cfg.slug}.generic.json"
    if not path.exists():
        how = f"qarch synth {override or name}"
        hw.missing = f"no synthesis report for {cfg.slug} (area, Fmax, energy): run `{how}`"
        return hw
    rep = json.loads(path.read_text())
    hw.area_um2 = rep.get("area_um2")
    hw.fmax_mhz = (rep.get("timing") or {}).get("fmax_mhz")
    hw.memory_bits = (rep.get("memory") or {}).get("bits")
    real = (rep.get("power") or {}).get("real")
    if real:
        hw.fixed_pj_per_cycle, hw.data_pj_per_mac = energy_split(real)
    else:
        hw.missing = f"{cfg.slug}'s synthesis report has no power figures"
    return hw


def hardware_for(scheme_cfg, rows: int, cols: int, reports: Path = REPORTS) -> Hardware:
    """The streaming array (double-buffered where the family has it, pipeline 2, 512-deep
    accumulators) of ``rows`` x ``cols`` that executes ``scheme_cfg``, with its report."""
    from .configs import PRESETS, STREAM
    from .schemes import scheme_of

    scheme = scheme_of(scheme_cfg)
    hw = scheme.hardware(scheme_cfg)
    if hw is None:
        raise ValueError(
            f"--scheme {scheme.name} with these options has no array in qarch "
            f"({scheme.label(scheme_cfg)}); `qarch eval` measures its accuracy"
        )
    base = hw[1]
    name = base.replace("array8x8", f"array{rows}x{cols}") + "-stream"
    if name in PRESETS:
        return _with_report(name, PRESETS[name], reports)
    stream8 = base + "-stream"
    if stream8 in PRESETS:
        src, changes = stream8, {}
    else:
        src, changes = base, dict(STREAM["-stream"])
    changes.update(rows=rows, cols=cols)
    cfg = PRESETS[src].replace(**changes)
    override = src + " " + " ".join(f"{k}={int(v)}" for k, v in sorted(changes.items()))
    return _with_report(f"{src} ({override.split(' ', 1)[1]})", cfg, reports, override)


def preset_hardware(name: str, reports: Path = REPORTS) -> Hardware:
    """A named array preset with its report."""
    from .configs import PRESETS

    if name not in PRESETS:
        raise ValueError(f"--preset: unknown preset {name!r}; `qarch list` shows them")
    cfg = PRESETS[name]
    if not hasattr(cfg, "cycles"):
        raise ValueError(f"--preset {name} is not an array (no cycle formula); choose an array")
    return _with_report(name, cfg, reports)


def _outlier_rows(hw: Hardware, weight, bits: int = 4, device=None):
    """MicroScopiQ: which rows of every K tile and column block route an outlier, from the
    layer's real weights quantized (RTN, searched exponents) with T = R and macro-blocks of 2C
    rows (the model-link bench's parameters); rows padded with zeros to a multiple of 2C."""
    import hashlib

    import torch

    from golden.microscopiq import KIND_HI, MsqParams, quantize_msq

    from .models import _load_cached, _save_atomic, cache_dir

    cfg = hw.cfg
    n, k = weight.shape
    M = 2 * hw.lanes
    w = weight.detach().float().contiguous()
    params = MsqParams(b=bits, m=cfg.m, M=M, T=cfg.rows, e_search=True)
    # Cached on the weights' bytes and the quantizer's parameters (written atomically).
    h = hashlib.sha256(w.numpy().tobytes())
    h.update(repr((tuple(w.shape), params)).encode())
    if device is not None and device.type != "cpu":  # another device's float reductions
        h.update(device.type.encode())
    path = cache_dir() / "perf" / f"msq-outliers-{h.hexdigest()[:32]}.pt"
    if path.exists():
        hi, ebw = _load_cached(path)
    else:
        if n % M:
            w = torch.cat([w, w.new_zeros(M - n % M, k)])
        q = quantize_msq(w if device is None else w.to(device), params)
        hi, ebw = (q.kind == KIND_HI)[:n].cpu().clone(), q.ebw
        _save_atomic((hi, ebw), path)
    R, C = cfg.rows, hw.lanes
    tiles = -(-k // R)
    pad = torch.zeros(n, tiles * R, dtype=torch.bool)
    pad[:, :k] = hi
    blocks = -(-n // C)
    per = torch.zeros(blocks * C, tiles * R, dtype=torch.bool)
    per[:n] = pad
    rows = per.reshape(blocks, C, tiles, R).any(dim=1)  # [block, tile, row]
    return rows.tolist(), ebw


def gemm_cost(
    g: Gemm, hw: Hardware, mem: MemoryModel, *, w_ebw: float, outliers=None
) -> dict[str, Any]:
    """Cycles, time, traffic and energy of one GEMM on ``hw`` (module docstring)."""
    cfg, R, C = hw.cfg, hw.rows, hw.lanes
    m, k, n = g.m, g.k, g.n
    kw = {"outliers": outliers} if outliers is not None else {}
    cycles = cfg.cycles(m, k, n, **kw) * g.count
    tiles, blocks = -(-k // R), -(-n // C)
    passes = blocks * tiles * -(-m // cfg.acc_depth)
    a = hw.a_bits
    dram = {
        "weights": n * k * w_ebw * g.count,
        "inputs": (m * k * a + m * SCALE_BITS) * g.count,
        "outputs": (m * n * a + m * SCALE_BITS) * g.count,
    }
    buffer = {
        "weights": passes * R * C * hw.w_code_bits * g.count,
        "activations": blocks * tiles * R * m * a * g.count,
        "accumulator": 2 * blocks * C * tiles * m * cfg.out_bits * g.count,
        "outputs": m * n * a * g.count,
        "dram_fills": sum(dram.values()),
    }
    dram_bits = sum(dram.values())
    res: dict[str, Any] = {
        "name": g.name, "kind": g.kind, "m": m, "k": k, "n": n, "count": g.count,
        "macs": g.macs, "cycles": cycles, "utilisation": g.macs / (R * C * cycles),
        "dram_bits": dram, "buffer_bits": buffer,
        "intensity_macs_per_byte": g.macs / (dram_bits / 8),
    }  # fmt: skip
    t_dram = dram_bits / 8 / (mem.dram_gbytes_per_s * 1e9)
    res["dram_s"] = t_dram
    # What sets the pace: DRAM when its transfers take longer than the array; else the weight
    # port when a pass streams fewer vectors than it has weight rows to load (one a cycle);
    # else the array's MACs.
    b = min(m, cfg.acc_depth)
    res["bound"] = "weight-load" if b < R - getattr(cfg, "rows_per_code", 1) + 1 else "compute"
    if hw.fmax_mhz:
        t_comp = cycles / (hw.fmax_mhz * 1e6)
        res["compute_s"] = t_comp
        res["time_s"] = max(t_comp, t_dram)
        if t_dram > t_comp:
            res["bound"] = "dram"
    energy = {
        "accumulator": buffer["accumulator"] * mem.sram_pj_per_bit,
        "buffer": (sum(buffer.values()) - buffer["accumulator"]) * mem.sram_pj_per_bit,
        "dram": dram_bits * mem.dram_pj_per_bit,
    }
    if hw.fixed_pj_per_cycle is not None:
        energy["array"] = cycles * hw.fixed_pj_per_cycle + g.macs * hw.data_pj_per_mac
    res["energy_pj"] = energy
    return res


_BLOCK = re.compile(r"\.\d+\.")


def _kind(name: str) -> str:
    return _BLOCK.sub(".*.", name)


def model_gemms(model: str, *, tokens: int, batch: int, decode: bool, weights: bool = False):
    """The GEMMs of one forward pass of ``model``: a causal LM's Linear layers for a prefill of
    ``tokens`` tokens (M = tokens x batch) or one decode step (M = batch); MiniLM's for
    ``batch`` sentences of ``tokens`` tokens; a CNN's im2col GEMMs for ``batch`` images.
    Returns (gemms, {name: weight} when ``weights``, notes)."""
    import torch

    from .evaluate import TASK_MODELS

    notes: list[str] = []
    ws: dict[str, Any] = {}
    if model not in TASK_MODELS:
        from .models import ModelUnavailable, load_causal_lm

        try:
            lm, _ = load_causal_lm(model)
        except ModelUnavailable as e:
            raise ValueError(str(e)) from None
        m = batch if decode else tokens * batch
        gemms = []
        for name, mod in lm.named_modules():
            if isinstance(mod, torch.nn.Linear) and not name.endswith("lm_head"):
                n, k = mod.weight.shape
                gemms.append(Gemm(name, m, k, n, _kind(name)))
                if weights:
                    ws[name] = mod.weight
        notes.append(
            "not on the array: attention scores and values (activation x activation), the tied "
            "LM head (float in every scheme), norms and softmax"
        )
        return gemms, ws, notes
    if decode:
        raise ValueError(f"--decode applies to causal LMs; {model} runs one forward pass")
    if model == "minilm-l6":
        from .models import load_minilm

        st = load_minilm()
        net = st[0].auto_model
        ids = torch.zeros(batch, tokens, dtype=torch.long)
        run = lambda: net(input_ids=ids, attention_mask=torch.ones_like(ids))  # noqa: E731
    elif model == "fashion-cnn":
        from .models import load_fashion_cnn

        net = load_fashion_cnn()
        run = lambda: net(torch.zeros(batch, 1, 28, 28))  # noqa: E731
    else:
        from .models import load_efficientnet

        net = load_efficientnet()
        run = lambda: net(torch.zeros(batch, 3, 224, 224))  # noqa: E731
    gemms, hooks, skipped = [], [], 0
    names = {mod: name for name, mod in net.named_modules()}

    def on_linear(mod, inputs, _out):
        name = names[mod]
        n, k = mod.weight.shape
        gemms.append(Gemm(name, inputs[0].numel() // k, k, n, _kind(name)))
        if weights:
            ws[name] = mod.weight

    def on_conv(mod, inputs, out):
        nonlocal skipped
        skipped += out.numel() * mod.weight[0].numel()

    for mod in net.modules():
        if isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_hook(on_linear))
        elif isinstance(mod, torch.nn.Conv2d):  # the grouped convs convs_as_linear left
            hooks.append(mod.register_forward_hook(on_conv))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    if skipped:
        macs = sum(g.macs for g in gemms)
        notes.append(
            f"not on the array: depthwise convolutions, {skipped:,} MACs "
            f"({100 * skipped / (skipped + macs):.1f} % of the model's)"
        )
    return gemms, ws, notes


def _layer_ebw(scheme_cfg, n: int, k: int) -> float:
    group = getattr(scheme_cfg, "group", None)
    return scheme_cfg.weight_bits + SCALE_BITS * (1 / group if group else 1 / k)


def perf(
    gemms: list[Gemm],
    hw: Hardware,
    *,
    scheme_cfg=None,
    weights: dict | None = None,
    mem: MemoryModel | None = None,
    tokens: int = 1,
    unit: str = "token",
    progress=None,
    device=None,
) -> dict[str, Any]:
    """Per-GEMM costs and totals of ``gemms`` on ``hw`` for a pass producing ``tokens`` tokens
    (or images). MicroScopiQ arrays take their stalls from ``weights`` (real outlier rows),
    quantized on ``device`` (a torch device; default the CPU)."""
    mem = mem or MemoryModel()
    msq = hasattr(hw.cfg, "recon_rows")
    rows = []
    it = progress(gemms) if progress else gemms
    for g in it:
        outliers, ebw = None, None
        if msq and weights is not None and g.name in weights:
            bits = getattr(scheme_cfg, "bits", 4)
            outliers, ebw = _outlier_rows(hw, weights[g.name], bits, device)
        if ebw is None:
            ebw = _layer_ebw(scheme_cfg, g.n, g.k) if scheme_cfg is not None else hw.w_code_bits
        rows.append(gemm_cost(g, hw, mem, w_ebw=ebw, outliers=outliers))
    return {"hardware": _hw_dict(hw), "memory_model": dataclasses.asdict(mem),
            "tokens": tokens, "unit": unit, "layers": rows,
            "total": _total(rows, hw, tokens)}  # fmt: skip


def _hw_dict(hw: Hardware) -> dict[str, Any]:
    return {
        "name": hw.name, "design": hw.cfg.slug, "rows": hw.rows, "cols": hw.cols,
        "lanes": hw.lanes,
        "area_um2": hw.area_um2, "fmax_mhz": hw.fmax_mhz,
        "fixed_pj_per_cycle": hw.fixed_pj_per_cycle, "data_pj_per_mac": hw.data_pj_per_mac,
        "accumulator_bits": hw.memory_bits, "missing": hw.missing or None,
    }  # fmt: skip


def _total(rows: list[dict], hw: Hardware, tokens: int) -> dict[str, Any]:
    macs = sum(r["macs"] for r in rows)
    cycles = sum(r["cycles"] for r in rows)
    t: dict[str, Any] = {
        "macs": macs, "cycles": cycles,
        "utilisation": macs / (hw.rows * hw.lanes * cycles) if cycles else 0.0,
        "dram_bits": sum(sum(r["dram_bits"].values()) for r in rows),
        "bound": {b: sum(r["bound"] == b for r in rows) for b in BOUNDS},
    }  # fmt: skip
    if hw.fmax_mhz:
        t["time_s"] = sum(r["time_s"] for r in rows)
        t["compute_s"] = sum(r["compute_s"] for r in rows)
        t["tokens_per_s"] = tokens / t["time_s"]
        if hw.area_um2:
            t["tokens_per_s_per_mm2"] = t["tokens_per_s"] / (hw.area_um2 / 1e6)
    parts = {}
    for key in ("array", "accumulator", "buffer", "dram"):
        if rows and all(key in r["energy_pj"] for r in rows):
            parts[key] = sum(r["energy_pj"][key] for r in rows) / tokens
    t["pj_per_token"] = parts
    if len(parts) == 4:
        t["pj_per_token_total"] = sum(parts.values())
    return t


def grouped(rows: list[dict]) -> list[dict]:
    """Layers summed by kind (``model.layers.*.mlp.up_proj``), in first-seen order."""
    out: dict[str, dict] = {}
    for r in rows:
        kind = r["kind"] or r["name"]
        g = out.setdefault(kind, {"kind": kind, "layers": 0, "macs": 0, "cycles": 0,
                                  "time_s": 0.0, "compute_s": 0.0, "bound": {},
                                  "dram_bits": 0.0, "energy_pj": {}, "shape": set()})  # fmt: skip
        g["layers"] += 1
        g["macs"] += r["macs"]
        g["cycles"] += r["cycles"]
        g["time_s"] += r.get("time_s", 0.0)
        g["compute_s"] += r.get("compute_s", 0.0)
        g["dram_bits"] += sum(r["dram_bits"].values())
        g["bound"][r["bound"]] = g["bound"].get(r["bound"], 0) + 1
        g["shape"].add((r["m"], r["k"], r["n"]))
        for k, v in r["energy_pj"].items():
            g["energy_pj"][k] = g["energy_pj"].get(k, 0.0) + v
    return list(out.values())


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def render(res: dict[str, Any], label: str | None = None) -> str:
    """The text table of ``qarch perf``: layers grouped by kind, then the totals."""
    hw, tot, req = res["hardware"], res["total"], res.get("request", {})
    area = hw["area_um2"] / 1e6 if hw["area_um2"] else None
    head = f"{req.get('model') or 'GEMM'}"
    if label:
        head += f", {label}"
    head += (
        f" on {hw['name']} ({hw['rows']}x{hw['cols']}, {_num(hw['fmax_mhz'], '.1f')} MHz, "
        f"{_num(area, '.2f')} mm^2 without the accumulator memory): {req.get('what', '')}"
    )
    lines = [head, ""]
    cols = ("layer", "n", "M x K x N", "cycles", "util %", "time ms", "bound",
            "uJ array", "uJ acc+buffer", "uJ DRAM")  # fmt: skip
    rows = []
    for g in grouped(res["layers"]):
        shapes = sorted(g["shape"])
        shape = "x".join(map(str, shapes[0])) + (" ..." if len(shapes) > 1 else "")
        e = g["energy_pj"]
        mesh = hw["rows"] * hw.get("lanes", hw["cols"])
        rows.append((
            g["kind"], str(g["layers"]), shape, f"{g['cycles']:,}",
            f"{100 * g['macs'] / (mesh * g['cycles']):.1f}",
            _num(g["time_s"] * 1e3 if hw["fmax_mhz"] else None, ".3f"),
            ", ".join(f"{k} {v}" if len(g["bound"]) > 1 else k for k, v in g["bound"].items()),
            _num(e.get("array", None) and e["array"] / 1e6, ".1f"),
            _num((e["accumulator"] + e["buffer"]) / 1e6, ".1f"), _num(e["dram"] / 1e6, ".1f"),
        ))  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines += [fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    pj, unit = tot["pj_per_token"], res.get("unit", "token")
    lines += [
        "",
        f"total: {tot['macs']:,} MACs in {tot['cycles']:,} cycles, MAC utilisation "
        f"{100 * tot['utilisation']:.1f} %; layers bound by "
        + ", ".join(f"{k}: {v}" for k, v in tot["bound"].items() if v),
    ]
    if "tokens_per_s" in tot:
        per_area = tot.get("tokens_per_s_per_mm2")
        lines.append(
            f"time {tot['time_s'] * 1e3:.3f} ms ({tot['compute_s'] * 1e3:.3f} ms compute), "
            f"{tot['tokens_per_s']:,.1f} {unit}s/s, {_num(per_area, ',.1f')} {unit}s/s/mm^2"
        )
    parts = ", ".join(f"{k} {v / 1e6:,.2f}" for k, v in pj.items())
    total = tot.get("pj_per_token_total")
    lines.append(
        f"energy per {unit} (uJ): {parts}" + (f"; total {total / 1e6:,.2f}" if total else "")
    )
    if hw.get("missing"):
        lines.append(f"note: {hw['missing']}")
    for n in res.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)
