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
    ],
    ids=lambda c: c.slug,
)
def test_axe_array(cfg):
    run_cocotb(cfg, "cocotb_axe_array")
