"""cocotb tier: ANT decoder, PE and array on generated Verilog (Icarus, or SIM=verilator)."""

import pytest

from qarch.configs import PRESETS, AntArrayConfig, AntDecoderConfig, AntPEConfig
from tb.runner import run_cocotb


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg", [AntDecoderConfig(bits=b) for b in (3, 4, 5, 6)], ids=lambda c: c.slug
)
def test_ant_decoder(cfg):
    run_cocotb(cfg, "cocotb_ant_decoder")


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [
        PRESETS["ant4-pe-p32"],
        PRESETS["ant4-pe-p32-nopot"],
        PRESETS["ant4-pe-p32-intonly"],
        AntPEConfig(bits=4, acc_bits=16, policy="saturate"),
        AntPEConfig(bits=3, acc_bits=10, policy="wrap"),
        # the arrays' pipelined PEs (1: the shifted product registered; 2: the magnitude
        # product, then shift and invert, the negate's + 1 the add's carry in)
        PRESETS["ant4-pe-p32"].replace(pipeline=1),
        PRESETS["ant4-pe-p32"].replace(pipeline=2),
        AntPEConfig(bits=3, acc_bits=10, policy="saturate", pipeline=2),
    ],
    ids=lambda c: c.slug,
)
def test_ant_pe(cfg):
    run_cocotb(cfg, "cocotb_ant_pe")


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [
        PRESETS["ant4-array4x4-p32"],
        AntArrayConfig(rows=4, cols=3, bits=4, acc_bits=12, out_bits=14, policy="saturate"),
        AntArrayConfig(
            rows=3, cols=2, bits=4, acc_bits=10, out_bits=11, policy="wrap", acc_depth=2
        ),
        # streaming options: double-buffered weights, pipelined operands / products
        PRESETS["ant4-array4x4-p32"].replace(double_buffer=True, pipeline=2),
        AntArrayConfig(
            rows=4, cols=3, bits=4, acc_bits=12, out_bits=14, policy="saturate", pipeline=2
        ),
        # pipeline 3 (the LUT-fabric option): the product before the shifter, the read register
        PRESETS["ant4-array4x4-p32-stream"].replace(pipeline=3),
    ],
    ids=lambda c: c.slug,
)
def test_ant_array(cfg):
    run_cocotb(cfg, "cocotb_ant_array")
