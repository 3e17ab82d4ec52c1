"""Energy from real activity: gate-level simulation of the mapped netlist, per-net toggle counts,
and the OSU 0.18 um liberty's tables.

The flow (``measure``): a stimulus (per-cycle input port values: qarch/stimulus.py for the
arrays, synth/stimulus.py for the PEs) is replayed
by a generated Verilog testbench on the RTL (the exported Verilog) and on the liberty-mapped
netlist (``gates.v``, with the library's own cell models, ``osu018_stdcells.v``) in Icarus; the
two output traces must be identical, cycle for cycle (a gate-level equivalence check on that
stimulus), and the mapped run counts every net's toggles as it runs (a VPI task, toggles.c: the
counts a VCD of every net would give, which ``count_toggles`` reads, at a fraction of the cost).

The energy of the window (``energy``), per net and cell, in pJ:

* switching: 1/2 C V^2 per toggle, C = the input capacitances of the net's loads (+ the output
  load on a design output; pre-layout, no wire capacitance, as OpenSTA without parasitics);
* internal: per output toggle, the mean of the rise and fall energy tables of the cell at the
  net's load and the input slew, averaged over the related input pins weighted by their toggles;
  per input toggle, the pin's own (passive) tables (a flip-flop's clock pin: twice a cycle);
* leakage: the cells' leakage power times the window's duration at the design's clock.

Slews are propagated through the netlist in topological order with the cells' transition tables
(ideal, zero-slew inputs and clock, as the timing run assumes). Simulation is zero-delay: the
toggles are functional ones, glitches are not counted (docs/power.md says what that leaves out).
Memories (the pipelined arrays' accumulators) are behavioural in both runs; their loads count,
their internal energy is not modelled (no SRAM compiler: the same cut as the area report).
"""

from __future__ import annotations

import graphlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.liberty import Library

__all__ = [
    "Netlist", "read_netlist", "count_toggles", "read_toggles", "energy", "replay", "replay_runs",
    "measure", "CELL_MODELS",
]  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent
CELL_MODELS = ROOT / "build" / "liberty" / "osu018_stdcells.v"
TOGGLES_C = Path(__file__).resolve().parent / "toggles.c"
VPI_DIR = ROOT / "build" / "vpi"

_INST = re.compile(r"^\s*(\w+)\s+(\\\S+|\w+)\s*\((.*?)\);", re.M | re.S)
_CONN = re.compile(r"\.(\w+)\(\s*(.*?)\s*\)\s*(?:,|$)", re.S)
_ASSIGN = re.compile(r"^\s*assign\s+(.+?)\s*=\s*(.+?)\s*;", re.M)
_DECL = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):(\d+)\]\s+)?(\\\S+|\w+)\s*;", re.M)
_CONST = re.compile(r"^\d+'[bh][0-9a-fA-FxXzZ]+$")


def _net(ref: str) -> str:
    """A net reference as the VCD names it: escapes dropped, ``name[3]`` for a bit."""
    ref = ref.strip()
    if ref.startswith("\\"):
        name, _, rest = ref[1:].partition(" ")
        return name + rest.strip()
    return ref.replace(" ", "")


@dataclass
class Netlist:
    top: str
    inputs: dict[str, int]  # port -> width
    outputs: dict[str, int]
    cells: list[tuple[str, str, dict[str, str]]]  # (instance, cell type, pin -> net)
    alias: dict[str, str] = field(default_factory=dict)  # net -> the net it is assigned from

    def root(self, net: str) -> str:
        seen = 0
        while net in self.alias and seen < 1000:
            net, seen = self.alias[net], seen + 1
        return net


def read_netlist(path: Path, lib: Library) -> Netlist:
    """Cells, ports and plain net aliases of a yosys ``write_verilog -noexpr`` netlist (one
    module); anything else in it (a behavioural memory) is left to the simulator."""
    text = Path(path).read_text()
    top = re.search(r"^module\s+(\\\S+|\w+)", text, re.M).group(1).lstrip("\\")
    ports: dict[str, dict[str, int]] = {"input": {}, "output": {}}
    for d, hi, lo, name in _DECL.findall(text):
        ports[d][name.lstrip("\\")] = (abs(int(hi) - int(lo)) + 1) if hi else 1
    cells = []
    for ctype, inst, body in _INST.findall(text):
        if ctype in lib.cells:
            pins = {p: _net(n) for p, n in _CONN.findall(body)}
            cells.append((inst.lstrip("\\"), ctype, pins))
    alias = {}
    for lhs, rhs in _ASSIGN.findall(text):
        if not (_CONST.match(rhs.strip()) or any(c in rhs for c in "{}?()&|^~+-")):
            alias[_net(lhs)] = _net(rhs)
    return Netlist(top, ports["input"], ports["output"], cells, alias)


def count_toggles(vcd: Path) -> tuple[dict[str, int], int]:
    """0 <-> 1 transitions per net bit (``name`` or ``name[i]``) after the first dump, and the
    last timestamp. Transitions from or to x / z are not toggles. Variables that share an
    identifier code (aliases of one net) all get its count."""
    ids: dict[str, list[list[str]]] = defaultdict(list)  # code -> per variable, bits LSB first
    last: dict[str, str] = {}
    counts: dict[str, list[int]] = {}  # code -> toggles per bit
    t_end = 0
    with open(vcd) as f:
        for line in f:
            if line.startswith("$enddefinitions"):
                break
            if line.startswith("$var"):
                parts = line.split()
                width, code, name = int(parts[2]), parts[3], parts[4]
                rng = parts[5] if len(parts) > 6 and parts[5].startswith("[") else ""
                if width == 1:
                    bit = re.match(r"\[(\d+)\]", rng)
                    ids[code].append([f"{name}[{bit.group(1)}]" if bit else name])
                else:
                    m = re.match(r"\[(\d+):(\d+)\]", rng)
                    hi, lo = (int(m.group(1)), int(m.group(2))) if m else (width - 1, 0)
                    step = 1 if hi >= lo else -1
                    ids[code].append([f"{name}[{i}]" for i in range(lo, hi + step, step)])
                counts[code] = [0] * width
        for line in f:
            c = line[0]
            if c == "#":
                t_end = int(line[1:])
            elif c in "01xzXZ":
                code = line[1:].strip()
                prev = last.get(code)
                if prev is not None and prev != c and prev in "01" and c in "01":
                    counts[code][0] += 1
                last[code] = c
            elif c == "b":
                val, code = line[1:].split()
                prev = last.get(code)
                if prev is not None:
                    n = len(counts[code])
                    a = prev.rjust(n, prev[0] if prev[0] in "xz" else "0")
                    b = val.rjust(n, val[0] if val[0] in "xz" else "0")
                    for i, (p, q) in enumerate(zip(reversed(a), reversed(b))):
                        if p != q and p in "01" and q in "01":
                            counts[code][i] += 1
                last[code] = val
    toggles: dict[str, int] = {}
    for code, variables in ids.items():
        for bits in variables:
            for i, name in enumerate(bits):
                toggles[name] = toggles.get(name, 0) + counts[code][i]
    return toggles, t_end


def toggle_module() -> Path:
    """The ``$qarch_toggles`` VPI module (toggles.c), built with ``iverilog-vpi`` on first use
    into build/vpi/, named by its source's hash and moved into place whole (two synthesis
    workers may build it at once)."""
    src = TOGGLES_C.read_bytes()
    path = VPI_DIR / f"toggles-{hashlib.sha256(src).hexdigest()[:12]}.vpi"
    if path.exists():
        return path
    if shutil.which("iverilog-vpi") is None:
        raise FileNotFoundError("iverilog-vpi missing (Debian package iverilog): run `make setup`")
    VPI_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=VPI_DIR) as tmp:
        (Path(tmp) / "toggles.c").write_bytes(src)
        proc = subprocess.run(["iverilog-vpi", "toggles.c"], cwd=tmp, capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode != 0 or not (Path(tmp) / "toggles.vpi").exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
            raise RuntimeError(
                "iverilog-vpi could not build synth/toggles.c (it needs a C compiler, "
                f"Debian package gcc):\n{tail}"
            )
        os.replace(Path(tmp) / "toggles.vpi", path)
    return path


def read_toggles(path: Path) -> dict[str, int]:
    """The counts ``$qarch_toggles`` wrote (toggles.c), named as ``count_toggles`` names a
    VCD's: ``name`` for a scalar, ``name[i]`` for bit i of a vector."""
    toggles: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        name, vector, lsb, width, *counts = line.split()
        if vector == "0":
            toggles[name] = int(counts[0])
        else:
            for i, n in enumerate(counts, start=int(lsb)):
                toggles[f"{name}[{i}]"] = int(n)
    return toggles


def _slews(nl: Netlist, lib: Library, loads: dict[str, float], clock: str) -> dict[str, float]:
    """Transition time per net: inputs, the clock and memory outputs ideal (0 ns); each cell
    output the worst of its arcs' mean rise / fall transition at its load."""
    driver: dict[str, int] = {}
    for i, (_, ctype, pins) in enumerate(nl.cells):
        for p in lib.cells[ctype].outputs:
            if p in pins:
                driver[nl.root(pins[p])] = i
    order = graphlib.TopologicalSorter()
    for i, (_, ctype, pins) in enumerate(nl.cells):
        cell = lib.cells[ctype]
        deps = set()
        if not cell.sequential:  # a register's output does not wait for its input
            for p in cell.inputs:
                j = driver.get(nl.root(pins.get(p, "")))
                if j is not None and j != i:
                    deps.add(j)
        order.add(i, *deps)
    slew: dict[str, float] = defaultdict(float)
    for i in order.static_order():
        _, ctype, pins = nl.cells[i]
        cell = lib.cells[ctype]
        for p in cell.outputs:
            if p not in pins:
                continue
            net = nl.root(pins[p])
            worst = 0.0
            for rel, (rise, fall) in cell.pins[p].transition.items():
                s_in = 0.0 if rel not in pins else slew[nl.root(pins[rel])]
                if cell.pins[rel].clock or nl.root(pins.get(rel, "")) == clock:
                    s_in = 0.0
                worst = max(worst, (rise(loads[net], s_in) + fall(loads[net], s_in)) / 2)
            slew[net] = worst
    return slew


def loads_and_slews(
    nl: Netlist, lib: Library, output_load_pf: float, clk: str = "clk"
) -> tuple[dict[str, float], set[str], dict[str, float]]:
    """Per net: its load capacitance (pF), whether a cell drives it, its transition (ns)."""
    loads: dict[str, float] = defaultdict(float)
    driven = set()
    for _, ctype, pins in nl.cells:
        cell = lib.cells[ctype]
        for p in cell.inputs:
            if p in pins:
                loads[nl.root(pins[p])] += cell.pins[p].capacitance
        driven.update(nl.root(pins[p]) for p in cell.outputs if p in pins)
    for port, width in nl.outputs.items():
        for b in range(width):
            loads[nl.root(f"{port}[{b}]" if width > 1 else port)] += output_load_pf
    slew = _slews(nl, lib, loads, clk)  # (adds the unloaded nets it meets, at 0 pF)
    return dict(loads), driven, slew


def energy(
    nl: Netlist,
    lib: Library,
    toggles: dict[str, int],
    *,
    cycles: int,
    period_ns: float,
    output_load_pf: float,
    clk: str = "clk",
    prepared: tuple | None = None,
) -> dict[str, Any]:
    """Energy (pJ) of a window of ``cycles`` clock cycles with these net ``toggles`` (named as
    ``read_netlist`` names nets, ``read_toggles``' names; any alias of a net will do). The
    clock ``clk`` is ideal: two toggles a cycle.
    ``prepared``: ``loads_and_slews(nl, lib, output_load_pf, clk)``, which does not depend on
    the toggles, computed once for several windows."""
    v2 = lib.voltage**2
    loads, driven, slew = prepared or loads_and_slews(nl, lib, output_load_pf, clk)
    # every alias carries the same waveform: the count of whichever alias the VCD kept
    tog: dict[str, float] = defaultdict(float)
    for name, n in toggles.items():
        r = nl.root(name)
        tog[r] = max(tog[r], float(n))
    tog[clk] = 2.0 * cycles

    half_cv2 = {net: 0.5 * c * v2 * tog[net] for net, c in loads.items()}
    switching = sum(e for net, e in half_cv2.items() if net in driven)
    # nets driven from outside (inputs, memory read data) and the clock: the energy their
    # drivers spend on this design's pin capacitance; counted, and reported apart
    outside = sum(e for net, e in half_cv2.items() if net not in driven)
    clock = half_cv2.get(clk, 0.0)
    internal = leakage_nw = 0.0
    for _, ctype, pins in nl.cells:
        cell = lib.cells[ctype]
        leakage_nw += cell.leakage_nw
        for p in cell.inputs:
            pin = cell.pins[p]
            if pin.passive and p in pins:
                net = nl.root(pins[p])
                rise, fall = pin.passive
                s = 0.0 if net == clk else slew[net]
                e = tog[net] * (rise(slew=s) + fall(slew=s)) / 2
                internal += e
                clock += e if net == clk else 0.0
        for p in cell.outputs:
            if p in pins and cell.pins[p].energy:
                out = nl.root(pins[p])
                if tog[out]:
                    load = loads.get(out, 0.0)
                    internal += tog[out] * _output_energy(nl, cell, p, pins, tog, slew, load)
    leakage = leakage_nw * cycles * period_ns * 1e-6  # nW x ns = 1e-18 J = 1e-6 pJ
    return {
        "cycles": cycles,
        "switching_pj": switching,
        "input_switching_pj": outside,
        "internal_pj": internal,
        "leakage_pj": leakage,
        "total_pj": switching + outside + internal + leakage,
        "clock_pj": clock,  # part of the above: the clock net and the clock pins' own energy
        "leakage_nw": leakage_nw,
    }


def _output_energy(nl, cell, pin: str, pins, tog, slew, load: float) -> float:
    """Internal energy per toggle of an output pin: the mean of its rise and fall tables,
    averaged over its related input pins weighted by their toggles (an output transition is
    caused by one input's), at the net's load and each input's slew."""
    arcs = {r: t for r, t in cell.pins[pin].energy.items() if r in pins}
    weights = {r: tog.get(nl.root(pins[r]), 0.0) for r in arcs}
    total_w = sum(weights.values())
    e = 0.0
    for rel, (rise, fall) in arcs.items():
        w = weights[rel] / total_w if total_w else 1.0 / len(arcs)
        net = nl.root(pins[rel])
        s = 0.0 if cell.pins[rel].clock else slew[net]
        e += w * (rise(load, s) + fall(load, s)) / 2
    return e


_TB = """\
`timescale 1ns/1ps
module qarch_replay;
  reg clk = 1'b0;
  reg rst = 1'b1;
  reg [{iw}:0] stim [0:{n}];
  reg [{iw}:0] cur = 0;
  wire [{ow}:0] outs;
  reg [8*256-1:0] tag;
  integer i, n, f, g;
  {top} dut ({conns});
  always #5 clk = ~clk;
  initial begin
    // one compiled testbench, one run per stimulus: +tag=T reads T.hex (+n=N cycles), writes
    // T.out (and T.probe, T.vcd)
    if (!$value$plusargs("tag=%s", tag) || !$value$plusargs("n=%d", n)) $fatal(1, "+tag, +n");
    $readmemh({{tag, ".hex"}}, stim, 0, n - 1);
    f = $fopen({{tag, ".out"}}, "w");
    g = $fopen({{tag, ".probe"}}, "w");
    @(negedge clk); @(negedge clk); rst = 1'b0;
    {dump}
    for (i = 0; i < n; i = i + 1) begin
      cur = stim[i];
      @(negedge clk);
      $fwrite(f, "%h\\n", outs);
      {probe}
    end
    $fclose(f);
    $fclose(g);
    $finish;
  end
endmodule
"""


def replay(
    work: Path,
    top: str,
    sources: list[Path],
    inputs: dict[str, int],
    outputs: dict[str, int],
    cycles: list[dict[str, int]],
    *,
    tag: str,
    vcd: bool = False,
    toggles: bool = False,
    probe: list[str] = (),
) -> list[str]:
    """Drive ``cycles`` (input port -> value, per cycle; missing ports 0) into ``top`` after a
    two-cycle reset, in Icarus; return the outputs' hex per cycle. With ``vcd``, dump every
    net of the design's top level from the end of reset to the end (``{tag}.vcd``); with
    ``toggles``, count those nets' toggles in the simulator instead (``{tag}.tog``,
    ``read_toggles``: the same counts as ``count_toggles`` of that VCD, without it). ``probe``:
    hierarchical signals (``pe_2_2.w``) written as hex, one line per cycle, to
    ``{tag}.probe``, read where the cycle's inputs are applied (the falling edge)."""
    return replay_runs(
        work, top, sources, inputs, outputs, {tag: cycles}, vcd=vcd, toggles=toggles,
        probe=probe, name=tag,
    )[tag]  # fmt: skip


def replay_runs(
    work: Path,
    top: str,
    sources: list[Path],
    inputs: dict[str, int],
    outputs: dict[str, int],
    runs: dict[str, list[dict[str, int]]],
    *,
    vcd: bool = False,
    toggles: bool = False,
    probe: list[str] = (),
    name: str = "replay",
) -> dict[str, list[str]]:
    """``replay`` of several stimuli (tag -> cycles) through one compiled testbench
    (``{name}.vvp``): the design is compiled once, which is a tenth of a gate-level run."""
    names = [p for p in inputs if p not in ("clk", "rst")]
    lsb, pos = {}, 0
    for p in names:
        lsb[p], pos = pos, pos + inputs[p]
    iw = max(pos, 1)
    work = Path(work).resolve()
    for tag, cycles in runs.items():
        lines = []
        for cyc in cycles:
            word = 0
            for p, v in cyc.items():
                if p in lsb:
                    word |= (int(v) & ((1 << inputs[p]) - 1)) << lsb[p]
            lines.append(f"{word:x}")
        (work / f"{tag}.hex").write_text("\n".join(lines) + "\n")
    conns, opos = [".clk(clk)", ".rst(rst)"], 0
    for p in names:
        conns.append(f".{p}(cur[{lsb[p] + inputs[p] - 1}:{lsb[p]}])")
    for p, w in outputs.items():
        conns.append(f".{p}(outs[{opos + w - 1}:{opos}])")
        opos += w
    tb = _TB.format(
        iw=iw - 1, ow=max(opos, 1) - 1, n=max(max(len(c) for c in runs.values()), 1) - 1,
        top=top, conns=", ".join(conns),
        dump=("$dumpfile({tag, \".vcd\"}); $dumpvars(1, dut);" if vcd else "")
        + ("$qarch_toggles(dut, {tag, \".tog\"});" if toggles else ""),
        probe=(
            f'$fwrite(g, "{" ".join(["%h"] * len(probe))}\\n", '
            + ", ".join(f"dut.{x}" for x in probe) + ");"
        ) if probe else "",
    )  # fmt: skip
    (work / f"{name}_tb.v").write_text(tb)
    vvp = work / f"{name}.vvp"
    cmd = ["iverilog", "-g2012", "-o", vvp.name, "-s", "qarch_replay", f"{name}_tb.v"]
    cmd += [str(Path(s).resolve()) for s in sources]  # iverilog runs in ``work``
    run = ["vvp", "-n"]
    if toggles:
        vpi = toggle_module()
        run += ["-M", str(vpi.parent), "-m", vpi.stem]
    argvs = [cmd] + [[*run, vvp.name, f"+tag={t}", f"+n={len(c)}"] for t, c in runs.items()]
    for argv in argvs:
        proc = subprocess.run(argv, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0 or "FATAL" in proc.stdout:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
            raise RuntimeError(f"{argv[0]} failed in {work.name} ({name}):\n{tail}")
    return {t: (work / f"{t}.out").read_text().split() for t in runs}


def _pe_cycles(
    cfg, work: Path, kind: str, ports: dict[str, int], array_stimulus
) -> tuple[list, str, float]:
    """A PE's stimulus: its ports' values inside the source array's RTL run (stimulus.py)."""
    from qarch.export import to_verilog
    from synth.stimulus import pe_source

    src = pe_source(cfg)
    stim = array_stimulus(src, kind)
    d = work / f"src_{kind}"
    d.mkdir(exist_ok=True)
    (d / "design.v").write_text(to_verilog(src.build(), src.slug))
    src_nl_ports = _ports((d / "design.v").read_text())
    r, c = src.rows // 2, src.cols // 2
    names = [p for p in ports if p not in ("clk", "rst")]
    replay(
        d, src.slug, [d / "design.v"], *src_nl_ports, stim.with_static(), tag="src", vcd=False,
        probe=[f"pe_{r}_{c}.{p}" for p in names],
    )  # fmt: skip
    cycles = []
    for line in (d / "src.probe").read_text().splitlines():
        vals = [
            int(v, 16) if all(ch in "0123456789abcdef" for ch in v) else 0 for v in line.split()
        ]
        cycles.append(dict(zip(names, vals)))
    # the PE's share of the array's useful work: the same utilisation as the array's
    share = stim.macs / (src.rows * src.cols)
    return cycles, f"PE ({r}, {c}) of {src.slug}: {stim.label}", share


def _same(rtl: str, gates: str) -> bool:
    # an unknown RTL digit (a register without reset, not yet written) matches anything;
    # an unknown in the netlist where the RTL knows the value does not
    return len(rtl) == len(gates) and all(
        a == b or a in "xXzZ" for a, b in zip(rtl.lower(), gates.lower())
    )


def _ports(text: str) -> tuple[dict[str, int], dict[str, int]]:
    ports: dict[str, dict[str, int]] = {"input": {}, "output": {}}
    head = text[: text.index("endmodule")]
    for d, hi, lo, name in _DECL.findall(head):
        ports[d][name.lstrip("\\")] = (abs(int(hi) - int(lo)) + 1) if hi else 1
    return ports["input"], ports["output"]


_PARTS = ("switching_pj", "input_switching_pj", "internal_pj", "leakage_pj", "clock_pj", "total_pj")


def measure(
    cfg, work: Path, *, stimulus, period_ns: float, output_load_pf: float, liberty: Path
) -> dict:
    """Energy per cycle and per MAC of a mapped design (``work/gates.v``, ``work/design.v``)
    on its real and random stimulus, at the clock period ``period_ns``. ``stimulus(cfg,
    kind)``: an array config's ``synth.stimulus.Stimulus`` ("real" or "random")."""
    from qarch.configs import MsqArrayConfig
    from qarch.configs.base import StreamingArray
    from synth.liberty import read_liberty

    if not CELL_MODELS.exists():
        raise FileNotFoundError(f"cell models missing ({CELL_MODELS.name}): run `make setup`")
    lib = read_liberty(liberty)
    nl = read_netlist(work / "gates.v", lib)
    array = isinstance(cfg, (StreamingArray, MsqArrayConfig))
    # MAC lanes: MicroScopiQ b = 2 has two per PE column
    slots = cfg.rows * cfg.out_cols if array else 1
    stims = {}
    for kind in ("real", "random"):
        if array:
            stim = stimulus(cfg, kind)
            stims[kind] = (stim.with_static(), stim.label, stim.macs)
        else:
            stims[kind] = _pe_cycles(cfg, work, kind, nl.inputs, stimulus)
    # each netlist compiled once and run on both stimuli; the mapped runs count every net's
    # toggles inside the simulator (toggles.c)
    rtl = replay_runs(work, nl.top, [work / "design.v"], nl.inputs, nl.outputs,
                      {f"rtl_{k}": s[0] for k, s in stims.items()}, name="rtl")  # fmt: skip
    gl = replay_runs(work, nl.top, [CELL_MODELS, work / "gates.v"], nl.inputs, nl.outputs,
                     {f"gates_{k}": s[0] for k, s in stims.items()}, toggles=True,
                     name="gates")  # fmt: skip
    prepared = loads_and_slews(nl, lib, output_load_pf)
    out: dict[str, Any] = {}
    for kind, (cycles, label, macs) in stims.items():
        a, b = rtl[f"rtl_{kind}"], gl[f"gates_{kind}"]
        bad = next((i for i, (x, y) in enumerate(zip(a, b)) if not _same(x, y)), None)
        if bad is not None or len(a) != len(b):
            at = f"cycle {bad}: {b[bad]} vs {a[bad]}" if bad is not None else "its length"
            raise RuntimeError(
                f"{cfg.slug}: the mapped netlist differs from the RTL on the {kind} stimulus at "
                + at
            )
        toggles = read_toggles(work / f"gates_{kind}.tog")
        e = energy(nl, lib, toggles, cycles=len(cycles), period_ns=period_ns,
                   output_load_pf=output_load_pf, prepared=prepared)  # fmt: skip
        n = len(cycles)
        out[kind] = {
            "stimulus": label,
            "cycles": n,
            "useful_macs": macs,
            "energy_pj": {k[:-3]: round(e[k], 3) for k in _PARTS},
            "pj_per_cycle": round(e["total_pj"] / n, 4),
            "pj_per_mac": round(e["total_pj"] / (n * slots), 4),
            "pj_per_useful_mac": round(e["total_pj"] / macs, 4),
            "power_mw": round(e["total_pj"] / n / period_ns, 3),
        }
    return {
        "model": "zero-delay gate-level simulation (Icarus, osu018 cell models) -> per-net "
        "toggles -> liberty tables (synth/power.py)",
        "period_ns": period_ns,
        "mac_slots_per_cycle": slots,
        **out,
    }
