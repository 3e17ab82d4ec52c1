# amaranth: UnusedElaboratable=no
"""ANT hardware in the Amaranth simulator against golden, configs and parameter errors."""

import pytest
import torch
from amaranth import Value

from golden.ant import ANT_KINDS, AntType
from golden.ant_quant import quantize_ant
from hdl.ant import AntArray, AntDecoder, AntPE
from qarch.configs import PRESETS, AntArrayConfig, config_from_json
from tb.schedule import gemm_schedule
from tests.amaranth_sim import run_array

STREAM = [{}, {"double_buffer": True}, {"pipeline": 2}, {"double_buffer": True, "pipeline": 1},
          {"double_buffer": True, "pipeline": 3}]  # fmt: skip


@pytest.mark.parametrize("stream", STREAM, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("w_mode,a_mode", [("flint", "pot"), ("int", "flint"), ("pot", "int")])
def test_ant_array_gemm_vs_golden(w_mode, a_mode, stream):
    cfg = AntArrayConfig(
        rows=3, cols=2, bits=4, acc_bits=14, out_bits=15, policy="wrap", **stream
    )
    torch.manual_seed(3)
    wq = quantize_ant(torch.randn(3, 7), 4, role="weight", mode=w_mode)
    aq = quantize_ant(torch.randn(7, 5), 4, role="activation", mode=a_mode)
    dut = cfg.build()
    s = gemm_schedule(cfg, wq.values, aq.values, w_codes=wq.codes, a_codes=aq.codes, idle=0.2)
    sel = {"w_type": wq.type, "a_type": aq.type}
    extra = {k: ANT_KINDS.index(t.kind) | (int(t.signed) << 2) for k, t in sel.items()}
    got = run_array(
        dut, s.cycles, constants=[(Value.cast(getattr(dut, k)), v) for k, v in extra.items()]
    )
    assert len(got) == len(s.expected)
    for (addr, y, oi, oo), e in zip(got, s.expected):
        n = len(e.y)
        assert (addr, y[:n], oi[:n], oo[:n]) == (e.addr, e.y, e.ovf_inner, e.ovf_outer), e.where


def test_ant_array_default_accumulator_covers_every_type_pair():
    vals = set()
    for kind in ANT_KINDS:
        for s in (True, False):
            vals |= set(AntType(kind, 4, s).grid().tolist())
    cfg = AntArrayConfig(rows=4, cols=4, bits=4)
    hi = 4 * max(vals) ** 2  # unsigned PoT4 x unsigned PoT4 dominates: 4 * 2^28
    assert cfg.acc_bits == (hi.bit_length() + 1) == 32
    assert config_from_json(PRESETS["ant4-array8x8-p32"].to_json()) == PRESETS["ant4-array8x8-p32"]


@pytest.mark.parametrize(
    "cls,kwargs,exc,msg",
    [
        (AntDecoder, dict(bits=2), ValueError, "bits must be at least 3, not 2"),
        (AntDecoder, dict(bits=7), ValueError, "bits must be at most 6, not 7"),
        (AntPE, dict(acc_bits=1), ValueError, "acc_bits must be at least 2, not 1"),
        (AntPE, dict(policy="clamp"), ValueError, "policy must be one of wrap, saturate"),
        (
            AntArray,
            dict(out_bits=8, acc_bits=16),
            ValueError,
            "out_bits must be at least 16, not 8",
        ),
        (AntArray, dict(bits="4"), TypeError, "bits must be an int, not str"),
        (AntArrayConfig, dict(acc_depth=6), ValueError, "acc_depth must be a power of two, not 6"),
    ],
)
def test_ant_parameter_errors(cls, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(**kwargs)
