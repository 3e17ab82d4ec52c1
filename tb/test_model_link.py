"""cocotb tier: one real SmolLM2 tile per scheme through its array (tb/cocotb_model_link.py)."""

import pytest

from qarch.configs import AntArrayConfig, IntArrayConfig, MsqArrayConfig, OliveArrayConfig
from qarch.schemes import REGISTRY
from tb.runner import run_cocotb

# Accumulators wide enough for real data (AXE: a tight P_I that its guarantee makes exact).
LINKS = {
    "int": IntArrayConfig(rows=8, cols=4, w_bits=4, a_bits=8, acc_bits=16, out_bits=24),
    "axe-gptq": IntArrayConfig(
        rows=8, cols=4, w_bits=4, a_bits=8, acc_bits=12, out_bits=20, policy="wrap"
    ),
    "ant": AntArrayConfig(rows=4, cols=3, bits=4, acc_bits=20, out_bits=28),
    "olive": OliveArrayConfig(rows=4, cols=3, bits=4, acc_bits=24, out_bits=30),
    "microscopiq": MsqArrayConfig(rows=4, cols=8, acc_bits=22, out_bits=30),
}


# MicroScopiQ b = 2: the split-mode array (two 2-bit lanes per PE) on the same real tile
CASES = [*LINKS.items(), ("microscopiq", MsqArrayConfig(rows=4, cols=4, acc_bits=20, out_bits=28,
                                                        b=2))]  # fmt: skip


def test_links_are_registered_schemes_on_their_family():
    for name, cfg in CASES:
        family = REGISTRY[name].family
        assert type(cfg).__module__ == f"qarch.configs.{family}", (name, cfg)


@pytest.mark.cocotb
@pytest.mark.parametrize("scheme, cfg", CASES, ids=lambda v: v if isinstance(v, str) else v.slug)
def test_model_link(scheme, cfg):
    run_cocotb(cfg, "cocotb_model_link", env={"QARCH_SCHEME": scheme})
