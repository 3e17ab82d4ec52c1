# amaranth: UnusedElaboratable=no
"""OliVe hardware in the Amaranth simulator against golden, configs and parameter errors."""

import pytest
import torch
from amaranth import Value
from amaranth.sim import Simulator

from golden.olive import OliveFormat, decode_pair_operands, decode_pairs, quantize_olive
from hdl.olive import OliveArray, OlivePairDecoder, OlivePE, olive_widths
from qarch.configs import PRESETS, OliveArrayConfig, OliveDecoderConfig, config_from_json
from tb.schedule import gemm_schedule
from tests.amaranth_sim import run_array


@pytest.mark.parametrize("normal,sel", [("int4", 0), ("flint4", 1)])
def test_pair_decoder_every_byte(normal, sel):
    dut = OlivePairDecoder(bits=4)
    f = OliveFormat(normal)
    words = torch.arange(256)
    ref = decode_pair_operands(torch.stack([words & 15, words >> 4], -1).flatten(), f)
    bad = []

    async def bench(ctx):
        ctx.set(dut.normal_sel, sel)
        for byte in range(256):
            ctx.set(dut.pair, byte)
            for lane, port in enumerate((dut.even, dut.odd)):
                i = 2 * byte + lane
                got = (ctx.get(port.sign), ctx.get(port.mag), ctx.get(port.exp))
                if got != (int(ref.sign[i]), int(ref.mag[i]), int(ref.exp[i])):
                    bad.append((byte, lane, got))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert not bad


STREAM = [{}, {"double_buffer": True}, {"pipeline": 1}, {"double_buffer": True, "pipeline": 2},
          {"pipeline": 3}]  # fmt: skip


@pytest.mark.parametrize("stream", STREAM, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("idle", [0.0, 0.2])
@pytest.mark.parametrize("bits,normals", [(4, ("int4", "flint4")), (8, ("int8", "int8"))])
def test_olive_array_gemm_vs_golden(bits, normals, idle, stream):
    cfg = OliveArrayConfig(
        rows=4, cols=2, bits=bits, acc_bits=18, out_bits=20, policy="wrap", **stream
    )
    g = torch.Generator().manual_seed(5)
    w, a = torch.randn(3, 17, generator=g), torch.randn(5, 17, generator=g)
    w[0, 3], w[2, 10], w[1, 4], w[1, 5] = 25.0, -30.0, 20.0, -28.0  # incl. an outlier pair
    a[:, 6] *= 40  # an outlier channel, like SmolLM2's
    if bits == 8:
        w[0, 3], a[:, 6] = 400.0, a[:, 6] * 10
    wq = quantize_olive(w, bits, normal=normals[0])
    aq = quantize_olive(a, bits, role="activation", normal=normals[1])
    assert wq.stats.outlier_pairs and aq.stats.outlier_pairs
    wv, av = decode_pairs(wq.codes, wq.fmt), decode_pairs(aq.codes, aq.fmt).T
    s = gemm_schedule(cfg, wv, av, w_codes=wq.codes, a_codes=aq.codes.T, idle=idle)
    dut = cfg.build()
    consts = []
    if bits == 4:
        consts = [(Value.cast(dut.w_normal), 0), (Value.cast(dut.a_normal), 1)]
    timing = []
    got = run_array(dut, s.cycles, constants=consts, timing=timing)
    if not idle:  # the published cycle formula, pair rows included
        assert timing == [cfg.cycles(av.shape[1], av.shape[0], wv.shape[0])]
    assert len(got) == len(s.expected)
    for (addr, y, oi, oo), e in zip(got, s.expected):
        n = len(e.y)
        assert (addr, y[:n], oi[:n], oo[:n]) == (e.addr, e.y, e.ovf_inner, e.ovf_outer), e.where


def test_widths_and_default_accumulator():
    assert olive_widths(4) == (3, 3) and olive_widths(8) == (7, 3)
    # 4 x 192 x 192 (flint4's largest outlier, both operands) needs 19 bits
    assert OliveArrayConfig(rows=4, cols=4, bits=4).acc_bits == 19
    assert OliveArrayConfig(rows=8, cols=8, bits=8).acc_bits == 26  # 8 x 2016^2
    for name in ("olive4-array8x8-p32", "olive8-pe-p32", "olive4-decoder"):
        assert config_from_json(PRESETS[name].to_json()) == PRESETS[name]


@pytest.mark.parametrize(
    "cls,kwargs,exc,msg",
    [
        (OlivePairDecoder, dict(bits=6), ValueError, "bits must be 4 or 8, not 6"),
        (OlivePairDecoder, dict(bits=4, e_bits=4), ValueError, "e_bits must be at most 3, not 4"),
        (OlivePE, dict(acc_bits=1), ValueError, "acc_bits must be at least 2, not 1"),
        (OliveArray, dict(rows=3), ValueError, "rows must be a multiple of 2, not 3"),
        (OliveArrayConfig, dict(rows=5), ValueError, "rows must be even"),
        (OliveDecoderConfig, dict(bits=5), ValueError, "bits must be 4 or 8, not 5"),
    ],
)
def test_parameter_errors(cls, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(**kwargs)
