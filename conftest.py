"""Shared pytest setup and the per-tier summary printed at the end of `make test`."""

import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

TIERS = {
    "tests/test_golden_": "golden",
    "tests/test_hdl_sim": "amaranth-sim",
    "tests/test_ant_hw": "amaranth-sim",
    "tests/test_olive_hw": "amaranth-sim",
    "tests/test_msq_hw": "amaranth-sim",
    "tests/test_config_export": "export",
    "tests/test_cli": "cli",
    "tests/test_layout": "layout",
    "tests/test_schemes": "schemes",
    "tests/test_synth_smoke": "synth-smoke",
    "tests/test_models_": "real-model",
    "tb/": "cocotb (" + os.environ.get("SIM", "icarus") + ")",
}


def _tier(nodeid: str) -> str:
    return next((t for prefix, t in TIERS.items() if nodeid.startswith(prefix)), "other")


def pytest_terminal_summary(terminalreporter):
    counts: dict[str, Counter] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for rep in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(rep, "nodeid", "")
            if nodeid:
                counts.setdefault(_tier(nodeid), Counter())[outcome] += 1
    if not counts:
        return
    terminalreporter.section("qarch tiers")
    for tier in [*dict.fromkeys(TIERS.values()), "other"]:
        if tier in counts:
            c = counts[tier]
            terminalreporter.write_line(
                f"{tier:<18} {c['passed']:4d} passed  {c['failed'] + c['error']:3d} failed  "
                f"{c['skipped']:3d} skipped"
            )
