# amaranth: UnusedElaboratable=no
"""Every exported port's bit layout is in the JSON beside the Verilog (structs, arrays, enums,
from the hardware's own data.Layout / enum), and a simulated value decodes through the JSON alone
to what the golden model says."""

import json

import torch
from amaranth.hdl import Value
from amaranth.sim import Simulator

from golden.ant import AntType
from golden.microscopiq import LANE_MERGE, LANE_PASS, LANE_ZERO, compile_router
from golden.olive import OliveFormat, decode_pair_operands
from qarch.configs import COMPONENTS
from qarch.export import decode_port, encode_port, export


def _ports(cfg, tmp_path) -> dict[str, dict]:
    _, j = export(cfg, tmp_path)
    return {p["name"]: p for p in json.loads(j.read_text())["ports"]}


def _tiles(entry: dict) -> None:
    """Fields and elements cover the port's width exactly, without gaps or overlaps."""
    if "fields" in entry:
        pos = 0
        for f in entry["fields"]:
            assert f["lsb"] == pos, (entry, f)
            _tiles(f)
            pos += f["width"]
        assert pos == entry["width"]
    if "elem" in entry:
        assert entry["elements"] * entry["elem"]["width"] == entry["width"]
        _tiles(entry["elem"])


def test_every_component_describes_every_port(tmp_path):
    composite = set()
    for name, cls in COMPONENTS.items():
        ports = _ports(cls(), tmp_path / name)
        for p in ports.values():
            assert p["width"] >= 1 and p["dir"] in ("in", "out")
            _tiles(p)
            if "fields" in p or "fields" in p.get("elem", {}) or "enum" in p:
                composite.add((name, p["name"]))
    assert {("ant-decoder", "type_sel"), ("ant-decoder", "operand"), ("ant-array", "w_type"),
            ("olive-decoder", "even"), ("olive-pe", "w"), ("msq-pe", "mode"),
            ("recon", "config"), ("msq-array", "w_cfg")} <= composite  # fmt: skip


def _comb(dut, drive: dict, read: list[str]) -> dict[str, int]:
    """Drive raw integers on input ports, settle, read raw integers (no knowledge of layouts)."""
    got = {}

    async def bench(ctx):
        for k, v in drive.items():
            ctx.set(Value.cast(getattr(dut, k)), v)
        for k in read:
            got[k] = ctx.get(Value.cast(getattr(dut, k)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_ant_decoder_operands_decode_through_the_json(tmp_path):
    cfg = COMPONENTS["ant-decoder"]()
    ports = _ports(cfg, tmp_path)
    for kind in ("INT", "POT", "FLINT"):
        for signed in (0, 1):
            t = AntType(kind.lower(), cfg.bits, bool(signed))
            for code in range(2**cfg.bits):
                sel = encode_port(ports["type_sel"], {"kind": kind, "signed": signed})
                raw = _comb(cfg.build(), {"code": code, "type_sel": sel}, ["operand"])
                op = decode_port(ports["operand"], raw["operand"])
                want = t.decode(torch.tensor([code]))
                value = (-1) ** op["sign"] * op["mag"] * 2 ** op["exp"]
                assert value == int(t.values(torch.tensor([code]))[0]), (kind, signed, code)
                if int(want.mag[0]):
                    assert op["sign"] == int(want.sign[0])


def test_olive_decoder_lanes_decode_through_the_json(tmp_path):
    cfg = COMPONENTS["olive-decoder"]()
    ports = _ports(cfg, tmp_path)
    for normal, sel in (("int4", 0), ("flint4", 1)):
        fmt = OliveFormat(normal)
        for pair in range(0, 256, 7):
            raw = _comb(cfg.build(), {"pair": pair, "normal_sel": sel}, ["even", "odd"])
            want = decode_pair_operands(torch.tensor([pair & 15, pair >> 4]), fmt)
            for lane, name in enumerate(("even", "odd")):
                op = decode_port(ports[name], raw[name])
                got = (-1) ** op["sign"] * op["mag"] * 2 ** op["exp"]
                ref = (-1) ** int(want.sign[lane]) * int(want.mag[lane]) * 2 ** int(want.exp[lane])
                assert got == ref, (normal, pair, name)


def test_recon_config_words_read_through_the_json(tmp_path):
    cfg = COMPONENTS["recon"]()
    entry = _ports(cfg, tmp_path)["config"]
    names = {LANE_PASS: "PASS", LANE_MERGE: "MERGE", LANE_ZERO: "ZERO"}
    for pairs, de in (([], 0), ([(0, 1)], 3), ([(7, 0), (2, 5)], 1), ([(1, 6), (3, 4), (0, 2)], 2)):
        word = compile_router(pairs, de, n=8, d=2)
        fields = decode_port(entry, word)
        modes = [LANE_PASS] * 8
        for i, j in pairs:
            modes[i], modes[j] = LANE_MERGE, LANE_ZERO
        assert fields["mode"] == [names[m] for m in modes] and fields["de"] == de
        assert encode_port(entry, fields) == word


def test_msq_pe_mode_drives_through_the_json(tmp_path):
    cfg = COMPONENTS["msq-pe"]()
    ports = _ports(cfg, tmp_path)
    mode = encode_port(ports["mode"], {"split": 1, "signed_lo": 1, "signed_hi": 0})
    dut = cfg.build()
    got = {}

    async def bench(ctx):
        ctx.set(Value.cast(dut.a), 5)
        ctx.set(Value.cast(dut.w), 0b1011)  # lo = 0b11 signed = -1, hi = 0b10 unsigned = 2
        ctx.set(Value.cast(dut.mode), mode)
        await ctx.tick()
        got["p0"], got["p1"] = ctx.get(dut.p0), ctx.get(dut.p1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == {"p0": -5, "p1": 10}


def test_docs_list_the_port_layouts_from_the_same_source():
    from pathlib import Path

    from qarch.export import ports_markdown

    doc = Path(__file__).resolve().parent.parent / "docs" / "ports.md"
    assert doc.read_text() == ports_markdown(), (
        "docs/ports.md is stale: run `python -m qarch.export --ports-doc docs/ports.md`"
    )
