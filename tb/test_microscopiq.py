"""cocotb tier: MicroScopiQ PE, ReCoN and array on generated Verilog (Icarus, or SIM=verilator)."""

import pytest

from qarch.configs import PRESETS, MsqArrayConfig
from tb.runner import run_cocotb


@pytest.mark.cocotb
def test_msq_pe():
    run_cocotb(PRESETS["msq-pe"], "cocotb_msq_pe")


@pytest.mark.cocotb
def test_recon_every_configuration():
    run_cocotb(PRESETS["msq-recon8"], "cocotb_recon")


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "cfg",
    [
        PRESETS["msq-array8x8-p32"],
        MsqArrayConfig(rows=4, cols=8, acc_bits=16, out_bits=18, policy="saturate"),
        MsqArrayConfig(rows=4, cols=8, acc_bits=14, out_bits=16, policy="wrap", acc_depth=2),
    ],
    ids=lambda c: c.slug,
)
def test_msq_array(cfg):
    run_cocotb(cfg, "cocotb_msq_array")
