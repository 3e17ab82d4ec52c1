"""make bench's utilisation table, smoke-sized: every 4x4 streaming array on generated Verilog
(one block of a real SmolLM2 layer, K = 16, 8 tokens), counted cycles equal to the formula."""

import re

import pytest

from qarch.bench import utilisation_lines
from qarch.configs import STREAM_BASES


@pytest.mark.cocotb
def test_utilisation_table_smoke():
    lines = utilisation_lines("icarus", sizes=(4,), k=16, m=8, msq_sizes=())
    rows = [ln for ln in lines if ln.startswith("| ") and "-stream" in ln]
    assert len(rows) == 2 * len(STREAM_BASES)  # double and single buffered, 4x4 only
    measured = [r.split("|")[3].strip() for r in rows]
    # every double-buffered array and the INT W4A8 single-buffered one ran on the RTL
    assert sum(bool(re.fullmatch(r"\d+\.\d%", c)) for c in measured) == len(STREAM_BASES) + 1
    drain = next(ln for ln in lines if "drain (round 1)" in ln)
    assert "—" in drain and "%" in drain
