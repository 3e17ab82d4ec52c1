"""cocotb tier: AXE weights through the INT array's P_I / P_O accumulators."""

import pytest

from qarch.configs import IntArrayConfig
from tb.runner import run_cocotb


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [
        IntArrayConfig(rows=8, cols=4, w_bits=4, a_bits=8, acc_bits=12, out_bits=18, policy="wrap"),
        IntArrayConfig(
            rows=8,
            cols=3,
            w_bits=4,
            a_bits=8,
            a_signed=False,
            acc_bits=12,
            out_bits=16,
            policy="wrap",
        ),
        # T = 64 on an 8-row array: the column chain runs on over 8 K tiles (plain GPTQ on
        # this slice reaches 18,243 over 64 rows: P_I = 14 needs AXE, 16 would not)
        IntArrayConfig(rows=8, cols=4, acc_bits=14, out_bits=20, tile=64, double_buffer=True),
    ],
    ids=lambda c: c.slug,
)
def test_axe_array(cfg):
    run_cocotb(cfg, "cocotb_axe_array")
