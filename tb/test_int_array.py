"""cocotb tier: INT systolic arrays on generated Verilog against the golden multi-stage GEMM."""

import pytest

from qarch.configs import PRESETS, IntArrayConfig
from tb.runner import run_cocotb

CONFIGS = [
    PRESETS["int4x8-array4x4-p16"],
    PRESETS["int8x8-array4x4-p20"].replace(policy="saturate"),
    PRESETS["int8x8-array8x8-p32"],
    # narrow accumulators: inner and outer overflow on both policies, non-square, unsigned acts
    IntArrayConfig(
        rows=3,
        cols=5,
        w_bits=4,
        a_bits=8,
        a_signed=False,
        acc_bits=10,
        out_bits=11,
        policy="wrap",
        acc_depth=2,
    ),
    IntArrayConfig(
        rows=4, cols=2, w_bits=4, a_bits=4, acc_bits=6, out_bits=7, policy="saturate", acc_depth=4
    ),
    # streaming options: double-buffered weights, every pipeline depth, deep accumulators
    PRESETS["int4x8-array4x4-p16"].replace(double_buffer=True, pipeline=2),
    IntArrayConfig(
        rows=3,
        cols=5,
        w_bits=4,
        a_bits=8,
        acc_bits=10,
        out_bits=11,
        policy="saturate",
        acc_depth=2,
        double_buffer=True,
        pipeline=1,
    ),
    IntArrayConfig(rows=4, cols=2, w_bits=4, a_bits=4, acc_bits=6, out_bits=7, pipeline=2),
    PRESETS["int8x8-array8x8-p32"].replace(acc_depth=512, double_buffer=True, pipeline=1),
    # pipeline 3 (the LUT-fabric option): the split multiplier, the memory's read register
    PRESETS["int8x8-array4x4-p32-stream"].replace(pipeline=3),
    IntArrayConfig(rows=3, cols=2, w_bits=4, a_bits=4, a_signed=False, acc_bits=6, out_bits=7,
                   policy="saturate", acc_depth=2, pipeline=3),  # fmt: skip
    # pipeline 3 with the partial sum in skewed halves, a 16-row column that wraps P_I = 8
    IntArrayConfig(rows=16, cols=2, w_bits=2, a_bits=2, w_signed=False, a_signed=False,
                   acc_bits=8, out_bits=9, acc_depth=4, double_buffer=True,
                   pipeline=3),  # fmt: skip
    # tile T > R (AXE's T): each column chain runs on over T / R K tiles, narrow P_I
    IntArrayConfig(rows=3, cols=4, w_bits=4, a_bits=8, acc_bits=12, out_bits=13, tile=6),
    IntArrayConfig(rows=4, cols=3, w_bits=4, a_bits=8, acc_bits=11, out_bits=12,
                   policy="saturate", acc_depth=2, tile=8, double_buffer=True,
                   pipeline=2),  # fmt: skip
]


@pytest.mark.cocotb
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.slug)
def test_int_array(cfg):
    run_cocotb(cfg, "cocotb_int_array")
