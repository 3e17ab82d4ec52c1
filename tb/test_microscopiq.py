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
        # a ReCoN shared by a group of rows (with the stall spacing), one register stage
        PRESETS["msq-array8x8-p32"].replace(recon_rows=8, recon_stages=1),
        MsqArrayConfig(
            rows=4, cols=8, acc_bits=16, out_bits=18, policy="saturate", recon_rows=2
        ),
        # pipeline 2 (routed addends, shifted sums registered, the P_O add split) and 512
        # accumulator entries: the -stream preset, with its 512-token prefill
        PRESETS["msq-array8x8-p32-stream"],
        # pipeline 1 (the accumulators in a memory) and pipeline 2, both on a small shared array
        MsqArrayConfig(
            rows=4, cols=8, acc_bits=16, out_bits=18, policy="saturate", recon_rows=2,
            pipeline=1, acc_depth=8,
        ),
        MsqArrayConfig(
            rows=4, cols=8, acc_bits=16, out_bits=18, policy="saturate", recon_rows=2,
            pipeline=2, acc_depth=8,
        ),  # fmt: skip
        # b = 2: the PEs in split mode, two 2-bit lanes each (8 PE columns, 16 lanes), with a
        # ReCoN per row and shared by two rows, narrow accumulators; and the -stream preset
        MsqArrayConfig(rows=4, cols=8, acc_bits=12, out_bits=14, policy="saturate", b=2),
        MsqArrayConfig(rows=4, cols=4, acc_bits=16, out_bits=18, recon_rows=2, b=2),
        PRESETS["msq-b2-array8x8-p32-stream"],
    ],
    ids=lambda c: c.slug,
)
def test_msq_array(cfg):
    run_cocotb(cfg, "cocotb_msq_array")
