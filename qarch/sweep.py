"""``qarch sweep SWEEP.toml``: design-space sweeps on Dask distributed (docs/sweep.md).

A sweep file names axes (their product is the set of points), a hardware preset with
overrides, a scheme with options, and what to measure at each point:

- ``synth``: export and synthesize the point's array (generic flow: area, Fmax, pJ/MAC);
- ``perf``: ``qarch perf`` of a model on that array (tokens/s/mm^2 and pJ/token, from the
  point's own synthesis when ``synth`` is measured too, else cycles and traffic only);
- ``eval``: the model's perplexity (or metrics) under the point's scheme config, computed once
  per distinct scheme config and shared by every hardware point that has it.

Every measurement is a *task* keyed by the SHA-256 of its full specification (config, options,
model, flow version), stored as one JSON file under that key, written atomically by the worker
that computed it. A re-run computes only the missing keys; a worker killed mid-sweep loses only
the task it was running (Dask reschedules it). The runner is a Dask ``LocalCluster`` on this
machine by default, or any scheduler (``--scheduler tcp://...``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Sweep",
    "Task",
    "load_sweep",
    "parse_sweep",
    "plan",
    "run_task",
    "run_sweep",
    "results_table",
    "MEASURES",
    "dask_client",
]

MEASURES = ("synth", "perf", "eval")
FORMAT = 1  # bump when a task's result changes meaning: every key changes with it
_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")
_TOP = {"name", "measure", "axes", "hardware", "scheme", "perf", "eval"}


@dataclass(frozen=True)
class Sweep:
    name: str
    measure: tuple[str, ...]
    axes: dict[str, list]
    hardware: dict[str, Any] = field(default_factory=dict)
    scheme: dict[str, Any] = field(default_factory=dict)
    perf: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)

    @property
    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [dict(zip(names, vals)) for vals in itertools.product(*self.axes.values())]


@dataclass(frozen=True)
class Task:
    kind: str
    spec: dict[str, Any]
    needs: str | None = None  # the key of the synth task whose figures a perf task uses

    @property
    def key(self) -> str:
        text = json.dumps({"format": FORMAT, "kind": self.kind, "spec": self.spec},
                          sort_keys=True)  # fmt: skip
        return f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def load_sweep(path: str | Path) -> Sweep:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None
    return parse_sweep(data, str(path))


def parse_sweep(data: dict, where: str = "sweep") -> Sweep:
    """Validate a sweep's structure (each problem named with its key) and build it."""
    unknown = set(data) - _TOP
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; a sweep has {sorted(_TOP)}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        raise ValueError(f"{where}: name must be letters, digits, '_', '.' or '-', not {name!r}")
    measure = data.get("measure")
    if not isinstance(measure, list) or not measure or set(measure) - set(MEASURES):
        raise ValueError(f"{where}: measure must be a non-empty list of {MEASURES}, not {measure}")
    axes = data.get("axes")
    if not isinstance(axes, dict) or not axes:
        raise ValueError(f"{where}: [axes] must name at least one axis with a list of values")
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise ValueError(f"{where}: axis {k} must be a non-empty list, not {v!r}")
        if len({json.dumps(x) for x in v}) != len(v):
            raise ValueError(f"{where}: axis {k} repeats a value: {v}")
    sw = Sweep(
        name, tuple(dict.fromkeys(measure)), dict(axes), dict(data.get("hardware", {})),
        dict(data.get("scheme", {})), dict(data.get("perf", {})), dict(data.get("eval", {})),
    )  # fmt: skip
    if {"synth", "perf"} & set(sw.measure) and "preset" not in sw.hardware:
        raise ValueError(f"{where}: synth and perf need [hardware] preset = NAME")
    if {"perf", "eval"} & set(sw.measure) and "name" not in sw.scheme:
        raise ValueError(f"{where}: perf and eval need [scheme] name = SCHEME")
    used = set()
    for table in (sw.hardware, sw.scheme, sw.perf, sw.eval):
        for k, v in table.items():
            m = _PLACEHOLDER.match(v) if isinstance(v, str) else None
            if m:
                if m[1] not in sw.axes:
                    raise ValueError(f"{where}: {k} = {v!r} names no axis; axes: {list(sw.axes)}")
                used.add(m[1])
    unused = set(sw.axes) - used
    if unused:
        raise ValueError(f"{where}: axis {sorted(unused)} is used by no table (a '{{name}}' value)")
    return sw


def _fill(table: dict, point: dict) -> dict:
    out = {}
    for k, v in table.items():
        m = _PLACEHOLDER.match(v) if isinstance(v, str) else None
        out[k] = point[m[1]] if m else v
    return out


def _scheme_config(opts: dict):
    from .schemes import scheme_named

    opts = dict(opts)
    scheme = scheme_named(opts.pop("name"))
    own = {f.name for f in dataclasses.fields(scheme.config)}
    bad = set(opts) - own
    if bad:
        raise ValueError(
            f"[scheme] {sorted(bad)}: not an option of scheme {scheme.name} "
            f"(its options: {sorted(own)})"
        )
    return scheme.config(**opts)


def _hardware_config(table: dict):
    from .configs import PRESETS

    table = dict(table)
    preset = table.pop("preset")
    if preset not in PRESETS:
        raise ValueError(f"[hardware] preset {preset!r} is not a preset; `qarch list` shows them")
    base = PRESETS[preset]
    fields = {f.name for f in dataclasses.fields(base)}
    bad = set(table) - fields
    if bad:
        raise ValueError(f"[hardware] {sorted(bad)}: not a field of {preset} ({sorted(fields)})")
    try:
        return base.replace(**table)
    except (TypeError, ValueError) as e:
        raise ValueError(f"[hardware] {preset} with {table}: {e}") from None


def plan(sw: Sweep) -> tuple[list[dict], dict[str, Task]]:
    """Every point with its task keys, and the distinct tasks. Every config is built (and so
    validated) here, before any work starts."""
    import warnings

    from .configs import AccumulatorWidthWarning

    points, tasks = [], {}
    for point in sw.points:
        keys: dict[str, str] = {}
        hw_cfg = scheme_cfg = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AccumulatorWidthWarning)
            if sw.hardware:
                hw_cfg = _hardware_config(_fill(sw.hardware, point))
        if sw.scheme:
            scheme_cfg = _scheme_config(_fill(sw.scheme, point))
        scheme_spec = None
        if scheme_cfg is not None:
            scheme_spec = {"name": scheme_cfg.scheme, **scheme_cfg.options()}
        if "synth" in sw.measure:
            t = Task("synth", {"config": hw_cfg.to_dict(), "target": "generic"})
            tasks[t.key] = t
            keys["synth"] = t.key
        if "perf" in sw.measure:
            if not hasattr(hw_cfg, "cycles"):
                raise ValueError(f"[hardware] {sw.hardware['preset']} is not an array: no perf")
            perf = {"model": "smollm2-135m", "prefill": 512, "decode": False, "batch": 1,
                    **_fill(sw.perf, point)}  # fmt: skip
            t = Task("perf", {"config": hw_cfg.to_dict(), "scheme": scheme_spec, **perf},
                     needs=keys.get("synth"))  # fmt: skip
            tasks[t.key] = t
            keys["perf"] = t.key
        if "eval" in sw.measure:
            ev = {"model": "smollm2-135m", "tokens": 4096, **_fill(sw.eval, point)}
            t = Task("eval", {"scheme": scheme_spec, **ev})
            tasks[t.key] = t
            keys["eval"] = t.key
        points.append({"point": point, "keys": keys})
    return points, tasks


# -- running one task (on a worker) --------------------------------------------------------------


def _write_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _synth(spec: dict, work: Path) -> dict:
    import warnings

    from synth.flow import synthesize

    from .configs import AccumulatorWidthWarning, config_from_json
    from .perf import energy_split
    from .stimulus import array_stimulus

    cfg = config_from_json(spec["config"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccumulatorWidthWarning)
        rep = synthesize(cfg, spec["target"], work, stimulus=array_stimulus)
    t = rep.get("timing") or {}
    power = rep.get("power") or {}
    out = {"design": rep["design"], "area_um2": rep["area_um2"], "cells": rep["cells"],
           "fmax_mhz": t.get("fmax_mhz"), "critical_path_ns": t.get("critical_path_ns"),
           "memory_bits": (rep.get("memory") or {}).get("bits")}  # fmt: skip
    for kind in ("real", "random"):
        if isinstance(power.get(kind), dict):
            out[f"pj_per_mac_{kind}"] = power[kind]["pj_per_mac"]
            fixed, data = energy_split(power[kind])
            out[f"fixed_pj_per_cycle_{kind}"], out[f"data_pj_per_mac_{kind}"] = fixed, data
    return out


def _perf(spec: dict, synth: dict | None) -> dict:
    from .configs import config_from_json
    from .perf import Hardware, model_gemms, perf

    cfg = config_from_json(spec["config"])
    hw = Hardware(cfg.slug, cfg)
    if synth:
        hw.area_um2, hw.fmax_mhz = synth["area_um2"], synth["fmax_mhz"]
        hw.fixed_pj_per_cycle = synth.get("fixed_pj_per_cycle_real")
        hw.data_pj_per_mac = synth.get("data_pj_per_mac_real")
    scheme_cfg = _scheme_config(spec["scheme"])
    msq = hasattr(cfg, "recon_rows")
    gemms, ws, _ = model_gemms(spec["model"], tokens=spec["prefill"], batch=spec["batch"],
                               decode=spec["decode"], weights=msq)  # fmt: skip
    tokens = spec["batch"] if spec["decode"] else spec["prefill"] * spec["batch"]
    t = perf(gemms, hw, scheme_cfg=scheme_cfg, weights=ws, tokens=tokens)["total"]
    keep = ("cycles", "utilisation", "tokens_per_s", "tokens_per_s_per_mm2", "pj_per_token_total")
    return {k: t[k] for k in keep if k in t}


def _eval(spec: dict) -> dict:
    from . import quantize
    from .evaluate import perplexity
    from .models import calibration_ids, load_causal_lm, wiki_tokens
    from .schemes import scheme_of
    from .schemes.options import CALIB_WINDOWS

    cfg = _scheme_config(spec["scheme"])
    model, tok = load_causal_lm(spec["model"])
    ids = wiki_tokens(tok, spec["model"])
    needs = scheme_of(cfg).needs_calib(cfg)
    calib = calibration_ids(ids, spec.get("calib", CALIB_WINDOWS)) if needs else None
    q, info = quantize(model, cfg, calib=calib)
    return {"perplexity": perplexity(q, ids, spec["tokens"]), "ebw": info.ebw}


def run_task(task: Task, store: str, work: str, synth: dict | None = None) -> dict:
    """Compute ``task`` unless its result is already stored; store it (atomically) and return
    it. Runs on a Dask worker; ``synth``: the result of the task it ``needs``."""
    path = Path(store) / f"{task.key}.json"
    if path.exists():
        return json.loads(path.read_text())["result"]
    if task.kind == "synth":
        # a directory per attempt: the tools of a killed attempt may still be writing theirs
        scratch = Path(work) / task.key / f"{os.getpid()}-{time.monotonic_ns()}"
        result = _synth(task.spec, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    elif task.kind == "perf":
        result = _perf(task.spec, synth)
    else:
        result = _eval(task.spec)
    _write_atomic(path, {"key": task.key, "kind": task.kind, "spec": task.spec,
                         "result": result})  # fmt: skip
    return result


# -- the sweep -----------------------------------------------------------------------------------


def stored(store: Path, key: str) -> dict | None:
    path = Path(store) / f"{key}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["result"]
    except (ValueError, KeyError):
        raise ValueError(
            f"result file {path} is not a sweep result; delete it to recompute"
        ) from None


def run_sweep(
    sw: Sweep,
    out: Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run every missing task of ``sw`` on Dask and return one row per point (its axis values
    and every measured figure). Results live in ``out/results/<key>.json``."""
    points, tasks = plan(sw)
    store = Path(out) / "results"
    store.mkdir(parents=True, exist_ok=True)
    work = Path(out) / "work"
    missing = {k: t for k, t in tasks.items() if stored(store, k) is None}
    if missing:
        _dispatch(missing, store, work, workers=workers, scheduler=scheduler, progress=progress)
    rows = []
    for p in points:
        row = dict(p["point"])
        for kind, key in p["keys"].items():
            for k, v in (stored(store, key) or {}).items():
                row[f"{kind}.{k}"] = v
        rows.append(row)
    return rows


@contextlib.contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None):
    """A Dask client: on an existing ``scheduler``, or on a LocalCluster of ``workers``
    single-threaded processes, each leading its own process group so that an interrupt ends it
    together with the tools (yosys, nextpnr, simulators) it started."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    # ":0": the scheduler's HTTP server on a free port (None still takes 8787, and a second
    # cluster, e.g. make synth beside a sweep, then warns)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0")  # fmt: skip
    client = Client(cluster)
    client.run(os.setpgrp)  # each worker its own group (off the terminal's Ctrl-C too)
    try:
        yield client
    except BaseException:
        # Dask logs every comm the killed workers drop, with tracebacks: the user has been told
        # why the run stops, so its logs go quiet first.
        logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)
        for pid in client.run(os.getpid).values():  # the workers and their tools, now
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        raise
    finally:
        with contextlib.suppress(Exception):
            client.close()
        with contextlib.suppress(Exception):
            cluster.close()


def _dispatch(tasks: dict[str, Task], store: Path, work: Path, *, workers, scheduler, progress):
    from distributed import as_completed
    from tqdm import tqdm

    with dask_client(workers, scheduler) as client:
        futs = {}
        # synth first: perf tasks take their synth task's future as an argument
        for key, t in sorted(tasks.items(), key=lambda kv: kv[1].kind != "synth"):
            dep = futs.get(t.needs) if t.needs else None
            if t.needs and dep is None:  # already stored: read it here
                dep = stored(store, t.needs)
            futs[key] = client.submit(run_task, t, str(store), str(work), dep, key=key,
                                      pure=False)  # fmt: skip
        bar = tqdm(total=len(futs), desc="sweep", unit="task", disable=not progress)
        failed = []
        for fut in as_completed(list(futs.values())):
            if fut.status == "error":
                failed.append((fut.key, fut.exception()))
            bar.update()
        bar.close()
        if failed:
            key, err = failed[0]
            raise RuntimeError(
                f"{len(failed)} sweep task(s) failed (results of the others are stored); "
                f"first: {key}: {err}"
            )


def results_table(rows: list[dict], axes: list[str]) -> list[str]:
    cols = axes + sorted({k for r in rows for k in r} - set(axes))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if v is None:
                cells.append("—")
            elif isinstance(v, float):
                cells.append(f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


_PLOTS = (  # (x, y) pairs plotted when a sweep measured both
    ("synth.area_um2", "eval.perplexity"),
    ("perf.pj_per_token_total", "eval.perplexity"),
    ("synth.area_um2", "synth.pj_per_mac_real"),
    ("perf.tokens_per_s_per_mm2", "perf.pj_per_token_total"),
)


def write_results(sw: Sweep, rows: list[dict], out: Path) -> Path:
    """out/README.md (the table) and out/results.jsonl (one point per line, sorted), and a plot
    per pair of measured figures in _PLOTS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    measured = ", ".join(sw.measure)
    lines = [f"# Sweep {sw.name}", "", f"{len(rows)} points; measured: {measured}.", ""]
    lines += results_table(rows, list(sw.axes))
    for x, y in _PLOTS:
        pts = [(r[x], r[y], r) for r in rows if r.get(x) is not None and r.get(y) is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14)
        # the Pareto front (lower is better on both axes)
        front, best = [], float("inf")
        for px, py, _ in sorted(pts, key=lambda p: (p[0], p[1])):
            if py < best:
                front.append((px, py))
                best = py
        ax.plot(*zip(*front), "r-", lw=0.8, label="Pareto front")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.legend(fontsize=7)
        ax.set_title(f"{sw.name}: {y} vs {x}")
        name = f"{x}_vs_{y}".replace(".", "_") + ".png"
        fig.tight_layout()
        fig.savefig(out / name, dpi=110, metadata={"Software": None})
        plt.close(fig)
        lines += ["", f"![{y} vs {x}]({name})"]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    with open(out / "results.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    return out / "README.md"
