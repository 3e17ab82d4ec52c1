"""cocotb tier: OliVe pair decoder, PE and array on generated Verilog (Icarus, or SIM=verilator)."""

import pytest

from qarch.configs import PRESETS, OliveArrayConfig, OliveDecoderConfig, OlivePEConfig
from tb.runner import run_cocotb


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [OliveDecoderConfig(bits=b) for b in (4, 8)]
    + [OliveDecoderConfig(bits=4, e_bits=e) for e in (1, 3)],  # the abfloat split parameter
    ids=lambda c: c.slug,
)
def test_olive_decoder(cfg):
    run_cocotb(cfg, "cocotb_olive_decoder")


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [
        PRESETS["olive4-pe-p32"],
        PRESETS["olive4-pe-p32-nooutliers"],
        OlivePEConfig(bits=4, acc_bits=16, policy="saturate"),
        PRESETS["olive8-pe-p32"],
        # the arrays' pipelined PEs (2: OliVe-8's magnitude product as two partial products)
        PRESETS["olive4-pe-p32"].replace(pipeline=1),
        OlivePEConfig(bits=4, acc_bits=16, policy="saturate", pipeline=2),
        PRESETS["olive8-pe-p32"].replace(pipeline=2),
    ],
    ids=lambda c: c.slug,
)
def test_olive_pe(cfg):
    run_cocotb(cfg, "cocotb_olive_pe")


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [
        PRESETS["olive4-array4x4-p32"],
        OliveArrayConfig(rows=4, cols=3, bits=4, acc_bits=14, out_bits=16, policy="saturate"),
        OliveArrayConfig(rows=2, cols=2, bits=8, acc_bits=20, out_bits=22, acc_depth=2),
        # streaming options: double-buffered weights, pipelined operands / products
        PRESETS["olive4-array4x4-p32"].replace(double_buffer=True, pipeline=2),
        OliveArrayConfig(
            rows=4, cols=3, bits=4, acc_bits=14, out_bits=16, policy="saturate", pipeline=2
        ),
        # pipeline 3 (the LUT-fabric option): the product before the shifter, the read register
        PRESETS["olive8-array4x4-p32-stream"].replace(pipeline=3, acc_depth=64),
        OliveArrayConfig(
            rows=2, cols=2, bits=8, acc_bits=20, out_bits=22, acc_depth=2, double_buffer=True
        ),
    ],
    ids=lambda c: c.slug,
)
def test_olive_array(cfg):
    run_cocotb(cfg, "cocotb_olive_array")
