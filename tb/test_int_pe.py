"""cocotb tier: INT PEs on generated Verilog (Icarus, or SIM=verilator)."""

import pytest

from qarch.configs import PRESETS, IntPEConfig
from tb.runner import run_cocotb

CONFIGS = [
    # widths <= 4: exhaustive over every operand pair, accumulators narrow enough to overflow
    IntPEConfig(w_bits=4, a_bits=4, acc_bits=8, policy="wrap"),
    IntPEConfig(w_bits=4, a_bits=4, acc_bits=8, policy="saturate"),
    IntPEConfig(w_bits=3, a_bits=4, w_signed=False, a_signed=True, acc_bits=6, policy="saturate"),
    IntPEConfig(w_bits=4, a_bits=2, w_signed=True, a_signed=False, acc_bits=5, policy="wrap"),
    # presets: INT4 x INT8 exhaustive, INT8 x INT8 random
    PRESETS["int4x8-pe-p16"],
    PRESETS["int4x8-pe-p16"].replace(policy="saturate"),
    PRESETS["int8x8-pe-p16"],
    PRESETS["int8x8-pe-p16"].replace(policy="saturate", a_signed=False),
    PRESETS["int8x8-pe-p32"],
    # the arrays' pipelined PEs (pipeline 1: the product registered; 2: also the 2-bit weight
    # slices' partial products, the sticky flag a cycle behind the sum), every operand pair
    IntPEConfig(w_bits=4, a_bits=4, acc_bits=8, policy="wrap", pipeline=1),
    IntPEConfig(w_bits=4, a_bits=4, acc_bits=8, policy="saturate", pipeline=2),
    IntPEConfig(w_bits=3, a_bits=4, w_signed=False, acc_bits=6, policy="wrap", pipeline=2),
    PRESETS["int4x8-pe-p16"].replace(pipeline=2),
    PRESETS["int4x8-pe-p32"].replace(pipeline=2),  # a product narrower than the sum
    # pipeline 3, the -fpga arrays' PE: the partial sum in skewed halves
    PRESETS["int4x8-pe-p32"].replace(pipeline=3),
    IntPEConfig(w_bits=3, a_bits=2, w_signed=False, acc_bits=12, pipeline=3),
    IntPEConfig(w_bits=4, a_bits=4, acc_bits=16, pipeline=3),
    PRESETS["int8x8-pe-p32"].replace(pipeline=2, policy="saturate"),
]


@pytest.mark.cocotb
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.slug)
def test_int_pe(cfg):
    run_cocotb(cfg, "cocotb_int_pe")
