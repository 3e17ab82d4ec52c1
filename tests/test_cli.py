# amaranth: UnusedElaboratable=no
"""The `qarch` console script: help, list, verilog, errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qarch.cli import main

QARCH = str(Path(sys.executable).parent / "qarch")


def test_help_lists_commands():
    r = subprocess.run([QARCH, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("list", "verilog", "synth", "synth-all"):
        assert cmd in r.stdout


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "int-array" in out and "int4x8-array8x8-p20" in out


def test_verilog_writes_v_and_json(tmp_path):
    r = subprocess.run(
        [QARCH, "verilog", "int-pe", "-p", "w_bits=3", "-p", "acc_bits=12", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    slug = "int_pe_w3s_a8s_p12_wrap"
    assert (tmp_path / f"{slug}.v").read_text().count(f"module {slug}(") == 1
    meta = json.loads((tmp_path / f"{slug}.json").read_text())
    assert meta["config"]["w_bits"] == 3 and meta["latency"] == 1


def test_verilog_warns_on_narrow_accumulator(tmp_path, capsys):
    assert main(["verilog", "int8x8-array8x8-p16", "-o", str(tmp_path)]) == 0
    assert "below the data-type bound 19" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["verilog", "nope", "-o", "x"], "unknown design 'nope'"),
        (
            ["verilog", "int-pe", "-p", "acc_bits=1", "-o", "x"],
            "acc_bits must be at least 2, not 1",
        ),
        (["verilog", "int-pe", "-p", "acc_bits", "-o", "x"], "-p takes key=value"),
        (["synth", "int-pe", "-p", "policy=clamp"], "policy must be one of wrap, saturate"),
        (["formats", "pot", "--bits", "8"], "pot bits must be in 3..7 (signed), not 8"),
        (["formats", "flint", "--bits", "9", "--unsigned"], "flint bits must be in 2..8, not 9"),
        (["synth-all", "--only", "nothing-like-this"], "matches no preset"),
        (["formats", "abfloat", "--bits", "4", "--normal", "int8"], "not a 4-bit OliVe normal"),
        (["formats", "int", "--bits", "4", "--normal", "int4"], "--normal applies to abfloat"),
    ],
)
def test_errors_are_one_line(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("qarch: error: ") and msg in err and "Traceback" not in err


def test_formats_text_table(capsys):
    assert main(["formats", "pot", "--bits", "4"]) == 0
    out = capsys.readouterr().out
    assert "pot4: 16 codes, grid of 15 values" in out
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()[2:]}
    assert rows["1111"] == ["15", "-64", "1", "1", "6"]  # code, value, sign, mag, exp
    assert rows["1000"] == ["8", "0", "1", "0", "0"]  # negative zero


@pytest.mark.parametrize(
    "normal,mags",
    [
        ("int4", [12, 16, 24, 32, 48, 64, 96]),
        ("flint4", [24, 32, 48, 64, 96, 128, 192]),
    ],
)
def test_formats_abfloat_lists_the_outlier_magnitudes(normal, mags, capsys):
    assert main(["formats", "abfloat", "--bits", "4", "--normal", normal, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["value"] for r in rows if r["value"] > 0] == mags
    assert [r["value"] for r in rows if r["value"] < 0] == [-m for m in mags]
    assert all(r["code"] & 7 for r in rows)  # (e, m) = (0, 0) excluded: never the identifier
    assert main(["formats", "abfloat", "--bits", "8"]) == 0
    assert "bias 2" in capsys.readouterr().out


def test_eval_options_come_from_the_scheme_configs():
    # every config field is one `qarch eval` option (default None: applied only when given)
    import dataclasses

    from qarch.cli import build_parser
    from qarch.schemes import REGISTRY
    from qarch.schemes.options import option_flags

    parser = build_parser()
    flags = option_flags()
    fields = {f.name for s in REGISTRY.values() for f in dataclasses.fields(s.config)}
    assert {name for name, _ in flags.values()} == fields
    eval_parser = parser._subparsers._group_actions[0].choices["eval"]
    known = {o for a in eval_parser._actions for o in a.option_strings}
    assert set(flags) <= known
    assert {"--ant-clip-min", "--msq-exponent", "--sink-weight", "--acc-bits"} <= set(flags)
    args = parser.parse_args(["eval", "--scheme", "ant", "--ant-clip-min", "0.9"])
    from qarch.schemes.options import scheme_config

    assert scheme_config(args) == REGISTRY["ant"].config(clip_min=0.9)


@pytest.mark.parametrize(
    "given, want",
    [([], None), (["--act-order"], True), (["--act-order", "on"], True),
     (["--act-order", "off"], False), (["--no-act-order"], False), (["--act-order", "NO"], False)],
)  # fmt: skip
def test_bool_options_take_on_and_off(given, want):
    from qarch.cli import build_parser
    from qarch.schemes.options import scheme_config

    argv = ["eval", "--scheme", "gptq", "--weight-only", "--capture", "float", *given]
    args = build_parser().parse_args(argv)
    cfg = scheme_config(args)
    assert cfg.weight_only is True and cfg.capture == "float"
    assert cfg.act_order is (type(cfg)().act_order if want is None else want)


def test_bool_option_with_a_bad_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:  # argparse's own usage error
        main(["eval", "--scheme", "gptq", "--act-order", "maybe"])
    assert e.value.code == 2
    assert "--act-order takes on or off, not 'maybe'" in capsys.readouterr().err
    assert main(["eval", "--scheme", "gptq", "--weight-only", "--input-bits", "4"]) == 2
    assert "input_bits and input_scale do not apply with weight_only" in capsys.readouterr().err


def test_list_groups_presets_by_family_and_names_their_schemes(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "presets, integer family (runs the schemes: int, gptq, axe-gptq, axe-gpfq):" in out
    assert "presets, microscopiq family (runs the schemes: microscopiq):" in out
    rows = [x for x in out.splitlines() if x.startswith("  int4x8-")]
    assert len({x.index(" int_") for x in rows}) == 1  # one aligned slug column
    assert main(["verilog", "int-arry", "-o", "x"]) == 2
    assert "did you mean int-array" in capsys.readouterr().err


def test_design_help_lists_the_parameter_keys_and_targets(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "msq-array: rows, cols, m, a_bits, d, acc_bits" in out and "shift_bits" in out
    assert "ice40: yosys synth_ice40 and nextpnr on the HX8K" in out


def test_an_unreachable_hub_fails_in_seconds(monkeypatch, capsys):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    t0 = time.monotonic()
    assert main(["eval", "--model", "nobody/no-such-model", "--scheme", "fp32"]) == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "'nobody/no-such-model' is neither a local path nor in the Hugging Face cache" in err
    assert "127.0.0.1:9" in err


def test_synth_prints_the_transistor_lower_bound_mark(monkeypatch, capsys):
    import qarch.cli as cli

    rep = {"design": "d", "cells": 10, "transistors": 120, "transistors_lower_bound": True,
           "area_um2": 1.5, "latches": 0}  # fmt: skip
    monkeypatch.setattr(cli, "_synth_one", lambda *a, **k: (rep, 0.0))
    assert main(["synth", "int4x8-pe-p16"]) == 0
    assert "transistors  120+ (a lower bound" in capsys.readouterr().out


def test_synth_says_how_long_a_16x16_array_takes(monkeypatch, capsys):
    import qarch.cli as cli

    rep = {"design": "d", "lut4": 1, "latches": 0, "cells": 1, "area_um2": 1.0}
    monkeypatch.setattr(cli, "_synth_one", lambda *a, **k: (rep, 0.0))
    big = "int4x8-array16x16-p32-stream"
    assert main(["synth", big, "--target", "ecp5"]) == 0
    assert "a 16x16 array: this takes 7-46 minutes of place-and-route" in capsys.readouterr().err
    assert main(["synth", big]) == 0
    assert "this takes 3-13 minutes" in capsys.readouterr().err
    for argv in (["synth", big, "--target", "ecp5", "--no-place"], ["synth", "int4x8-pe-p16"]):
        assert main(argv) == 0
        assert "this takes" not in capsys.readouterr().err


def test_synth_reports_a_silent_tool_failure_without_a_traceback(monkeypatch, tmp_path, capsys):
    """A synthesis tool that exits non-zero without a word (YoWASP's ABC on one design,
    docs/toolchain.md): one line naming the tool, the status and the work directory, exit 2."""
    import synth.flow as flow

    monkeypatch.setattr(flow, "_tool", lambda name: "/bin/false")  # a real failing program
    argv = ["synth", "int4x8-pe-p16", "--target", "ice40", "--no-place", "--work", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("qarch: error: false failed in int_pe_w4s_a8s_p16_wrap.ice40")
    assert "exit status 1 without a message; work directory" in err
    assert "Traceback" not in err


def test_synth_tool_failure_quotes_the_error_from_its_log(tmp_path):
    """yosys under -q prints nothing when it stops on an internal assertion (YoWASP): the
    error comes from the log it writes (-l), so the message names the assertion."""
    from synth.flow import REINTEGRATE_ASSERT, _run

    script = 'printf "%s\\n" "pass output" "ERROR: $0 failed" > y.log; exit 1'
    with pytest.raises(RuntimeError) as err:
        _run(["/bin/sh", "-c", script, REINTEGRATE_ASSERT], tmp_path, "y.log")
    assert f"sh failed in {tmp_path.name}:" in str(err.value)
    assert REINTEGRATE_ASSERT in str(err.value)
    assert "pass output" not in str(err.value)  # the ERROR lines, not the whole tail
