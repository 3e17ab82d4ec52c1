# amaranth: UnusedElaboratable=no
"""The power flow (synth/power.py, synth/liberty.py) against hand calculations from the liberty,
a counted waveform, and OpenSTA; the timing flow's parser (synth/sta.py)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from synth.flow import LIBERTY
from synth.liberty import read_liberty
from synth.power import (
    CELL_MODELS,
    count_toggles,
    energy,
    read_netlist,
    read_toggles,
    replay,
    replay_runs,
)
from synth.sta import parse_checks

needs_lib = pytest.mark.skipif(not LIBERTY.exists(), reason="liberty missing: run make setup")

V2 = 1.8**2  # the library's nominal 1.8 V


@needs_lib
def test_liberty_tables_read_as_written():
    lib = read_liberty(LIBERTY)
    assert lib.voltage == 1.8 and len(lib.cells) == 32
    buf = lib.cells["BUFX2"]
    assert (buf.area, buf.leakage_nw, buf.pins["A"].capacitance) == (24, 0.0660639, 0.00933171)
    rise, fall = buf.pins["Y"].energy["A"]
    # grid points: (load 0.01 pF, slew 0.06 ns) and (0.025, 0.18) of rise_power / fall_power
    assert rise(0.01, 0.06) == 0.03658 and fall(0.025, 0.18) == 0.072449
    # midway in both variables: the mean of the four corners (bilinear)
    mid = rise(0.0175, 0.12)
    assert mid == pytest.approx((0.03658 + 0.03891 + 0.038085 + 0.039057) / 4)
    clk = lib.cells["DFFPOSX1"].pins["CLK"]
    assert clk.clock and clk.passive[0](slew=0.24) == 0.006943


ONE_BUF = """\
module one_buf(a, clk, rst, y);
  input a;
  input clk;
  input rst;
  output y;
  BUFX2 _1_ (
    .A(a),
    .Y(y)
  );
endmodule
"""


@needs_lib
def test_energy_of_one_cell_by_hand(tmp_path):
    """One BUFX2 from an input to an output loaded with 0.01 pF, toggling 30 times in 100
    cycles of 5 ns: every term computed by hand from the liberty's numbers."""
    lib = read_liberty(LIBERTY)
    (tmp_path / "n.v").write_text(ONE_BUF)
    nl = read_netlist(tmp_path / "n.v", lib)
    assert nl.inputs == {"a": 1, "clk": 1, "rst": 1} and nl.outputs == {"y": 1}
    e = energy(nl, lib, {"a": 30, "y": 30}, cycles=100, period_ns=5.0, output_load_pf=0.01)
    # internal: input slew 0 (ideal input) extrapolates the slew axis from 0.06 / 0.18 ns at
    # the 0.01 pF row: rise 0.03658 - 0.5 * (0.03891 - 0.03658), fall likewise; per toggle the
    # mean of the two
    e_rise = 0.03658 - 0.5 * (0.03891 - 0.03658)
    e_fall = 0.065076 - 0.5 * (0.073013 - 0.065076)
    assert e["internal_pj"] == pytest.approx(30 * (e_rise + e_fall) / 2)
    assert e["switching_pj"] == pytest.approx(30 * 0.5 * 0.01 * V2)  # y: the output load
    assert e["input_switching_pj"] == pytest.approx(30 * 0.5 * 0.00933171 * V2)  # a: pin A
    assert e["leakage_pj"] == pytest.approx(0.0660639e-9 * 100 * 5e-9 * 1e12)
    assert e["clock_pj"] == 0.0  # no register
    parts = ("switching_pj", "input_switching_pj", "internal_pj", "leakage_pj")
    assert e["total_pj"] == pytest.approx(sum(e[k] for k in parts))


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog missing")
def test_toggles_match_a_counted_waveform(tmp_path):
    """A register stage driven by a known sequence: the VCD counts equal the transitions
    counted in the sequence itself (per bit, for the input and for the registered copy)."""
    (tmp_path / "reg4.v").write_text(
        "module reg4(input clk, input rst, input [3:0] d, output reg [3:0] q);\n"
        "  always @(posedge clk) q <= rst ? 4'd0 : d;\nendmodule\n"
    )
    seq = [0, 5, 5, 15, 0, 8, 9, 9, 1, 14, 7, 7, 0, 3]
    out = replay(tmp_path, "reg4", [tmp_path / "reg4.v"], {"clk": 1, "rst": 1, "d": 4},
                 {"q": 4}, [{"d": v} for v in seq], tag="t", vcd=True)  # fmt: skip
    assert [int(v, 16) for v in out] == seq  # q follows d one edge later, read at the fall
    toggles, _ = count_toggles(tmp_path / "t.vcd")
    for b in range(4):
        bits = [(v >> b) & 1 for v in [0, *seq]]  # d is 0 through reset
        want = sum(x != y for x, y in zip(bits, bits[1:]))
        assert toggles[f"d[{b}]"] == want and toggles[f"q[{b}]"] == want, b
    assert toggles["clk"] == 2 * len(seq)  # the clock too, a rise and a fall per cycle
    # the counter inside the simulator (toggles.c, what the power flow uses) counts the same
    out = replay(tmp_path, "reg4", [tmp_path / "reg4.v"], {"clk": 1, "rst": 1, "d": 4},
                 {"q": 4}, [{"d": v} for v in seq], tag="c", toggles=True)  # fmt: skip
    assert [int(v, 16) for v in out] == seq
    assert read_toggles(tmp_path / "c.tog") == toggles


GLITCH = """\
module glitch(input clk, input rst, input [1:0] d, output y, output [3:0] q);
  reg [1:0] r;
  wire \\a.b  = d[0] ^ r[0];
  always @(posedge clk) r <= rst ? 2'd0 : d;
  assign y = \\a.b  & ~d[1];
  wire [3:0] \\q.r  = {r, d};
  assign q = \\q.r ;
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog missing")
def test_toggle_counter_equals_the_vcd(tmp_path):
    """toggles.c against the VCD of the same run, on escaped names (``\\a.b``: a flattened
    netlist's named wires) and on combinational nets that change twice in a time step (the
    inputs at the falling edge, a register at the rising one): the same names and counts,
    names as ``read_netlist`` spells the nets (a VCD keeps the backslash; the counter does
    not, so every named net's toggles reach the energy), in one compiled testbench for two
    stimuli."""
    (tmp_path / "g.v").write_text(GLITCH)
    ins, outs = {"clk": 1, "rst": 1, "d": 2}, {"y": 1, "q": 4}
    runs = {"s0": [{"d": v} for v in [0, 1, 3, 2, 2, 0, 1, 1, 3, 0]], "s1": [{"d": 3}] * 4}
    vcd = replay_runs(tmp_path, "glitch", [tmp_path / "g.v"], ins, outs, runs, vcd=True,
                      name="v")  # fmt: skip
    tog = replay_runs(tmp_path, "glitch", [tmp_path / "g.v"], ins, outs, runs, toggles=True,
                      name="t")  # fmt: skip
    assert vcd == tog and len(tog["s0"]) == 10 and len(tog["s1"]) == 4
    for tag in runs:
        counted = read_toggles(tmp_path / f"{tag}.tog")
        from_vcd = {k.lstrip("\\"): n for k, n in count_toggles(tmp_path / f"{tag}.vcd")[0].items()}
        assert counted == from_vcd, tag
    # s1 by hand: counting starts where stim[0] is applied, so d is 3 from the start and
    # never toggles; r goes 0 -> 3 at the first edge, so a.b = d[0] ^ r[0] goes 1 -> 0 once
    # and y = a.b & ~d[1] stays 0
    assert counted["d[0]"] == counted["d[1]"] == counted["y"] == 0
    assert counted["r[0]"] == counted["r[1]"] == counted["a.b"] == 1
    assert [counted[f"q.r[{i}]"] for i in range(4)] == [0, 0, 1, 1]
    assert counted["clk"] == 2 * len(runs["s1"])


@needs_lib
@pytest.mark.synth
def test_switching_and_leakage_agree_with_opensta(tmp_path):
    """On a synthesized PE at a uniform activity, this model's switching energy of the cells'
    nets and its leakage equal OpenSTA's ``report_power`` (same loads, same formula); the
    internal energy differs by OpenSTA 2019's convention (docs/power.md), so it is bounded."""
    from qarch.configs import PRESETS
    from synth.flow import synthesize

    cfg = PRESETS["int4x8-pe-p16"]
    synthesize(cfg, "generic", tmp_path)
    work = tmp_path / f"{cfg.slug}.generic"
    lib = read_liberty(LIBERTY)
    nl = read_netlist(work / "netlist.v", lib)
    nets = {nl.root(n) for _, _, pins in nl.cells for n in pins.values()}
    alpha, cycles, period = 0.2, 1000, 5.0
    e = energy(nl, lib, {n: alpha * cycles for n in nets}, cycles=cycles, period_ns=period,
               output_load_pf=0.01)  # fmt: skip
    tcl = (work / "sta.tcl").read_text().split("report_checks")[0]
    tcl += f"set_power_activity -global -activity {alpha} -duty 0.5\nreport_power -digits 8\n"
    (work / "power.tcl").write_text(tcl)
    rep = subprocess.run(["sta", "-no_splash", "-exit", "power.tcl"], cwd=work,
                         capture_output=True, text=True).stdout  # fmt: skip
    internal, switching, leakage, _ = map(float, re.search(r"^Total\s+(.*?)\s+100", rep, re.M)
                                          .group(1).split())  # fmt: skip
    to_w = 1e-12 / (cycles * period * 1e-9)  # pJ over the window -> W
    assert e["switching_pj"] * to_w == pytest.approx(switching, rel=5e-3)  # float32 in OpenSTA
    assert e["leakage_pj"] * to_w == pytest.approx(leakage, rel=1e-3)
    ratio = e["internal_pj"] * to_w / internal
    print(f"internal energy: this model / OpenSTA 2019 = {ratio:.3f}")
    assert 0.3 < ratio < 1.0


def test_sta_report_is_parsed():
    text = """Startpoint: _12_ (rising edge-triggered flip-flop clocked by clk)
Endpoint: _34_ (rising edge-triggered flip-flop clocked by clk)
Path Group: clk
Path Type: max

   Delay     Time   Description
-----------------------------------------------------------
            3.109   data arrival time

   5.000    5.000   clock clk (rise edge)
  -0.187    4.813   library setup time
            4.813   data required time
-----------------------------------------------------------
            1.703   slack (MET)
"""
    p = parse_checks(text)
    assert (p["startpoint"], p["endpoint"], p["arrival_ns"]) == ("_12_", "_34_", 3.109)
    assert (p["setup_ns"], p["slack_ns"]) == (0.187, 1.703)
    with pytest.raises(RuntimeError, match="no constrained path"):
        parse_checks("Error: nothing linked\n")


def test_committed_reports_carry_timing_and_energy():
    reports = Path(__file__).resolve().parent.parent / "synth" / "reports"
    rep = json.loads((reports / "int_pe_w4s_a8s_p16_wrap.generic.json").read_text())
    t = rep["timing"]
    assert t["fmax_mhz"] == pytest.approx(1000 / t["critical_path_ns"], abs=0.1)
    assert rep["area_delay_um2_ns"] == pytest.approx(rep["area_um2"] * t["critical_path_ns"], 0.01)
    for kind in ("real", "random"):
        assert rep["power"][kind]["pj_per_mac"] > 0
    assert CELL_MODELS.name == "osu018_stdcells.v"
