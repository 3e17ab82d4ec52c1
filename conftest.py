"""Shared pytest setup and the per-tier summary printed at the end of `make test`."""

import os
import sys
import threading
import time
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


# -- progress: a line when a tier starts, and a heartbeat while one test runs long, so that a
# slow tier on a loaded machine never looks hung (at least one line a minute) ------------------

HEARTBEAT_S = float(os.environ.get("QARCH_HEARTBEAT_S", 45))
_now: dict = {"nodeid": None, "start": 0.0, "said": 0.0, "tier": None}
_lock = threading.Lock()


def _reporter(config):
    return config.pluginmanager.get_plugin("terminalreporter")


def pytest_runtest_logstart(nodeid, location):
    with _lock:
        _now.update(nodeid=nodeid, start=time.monotonic(), said=time.monotonic())
        tier = _tier(nodeid)
        if tier != _now["tier"] and _CONFIG is not None and (tr := _reporter(_CONFIG)):
            _now["tier"] = tier
            tr.write("\n")
            tr.write_line(f"[{time.strftime('%H:%M:%S')}] {tier} tier")


def pytest_runtest_logfinish(nodeid, location):
    with _lock:
        _now["nodeid"] = None


def _heartbeat(fd: int, stop: threading.Event) -> None:
    # A test runs with stdout captured at the file-descriptor level, so the line goes to a
    # duplicate of the real stdout taken before any test started.
    while not stop.wait(5):
        with _lock:
            nodeid, start, said = _now["nodeid"], _now["start"], _now["said"]
            if nodeid and time.monotonic() - said >= HEARTBEAT_S:
                line = f"\n  ... {nodeid} running for {time.monotonic() - start:.0f} s\n"
                os.write(fd, line.encode())
                _now["said"] = time.monotonic()


_CONFIG = None
_STOP = threading.Event()


def pytest_configure(config):
    global _CONFIG
    if config.option.collectonly or os.environ.get("QARCH_NO_HEARTBEAT"):
        return
    _CONFIG = config
    fd = os.dup(sys.stdout.fileno())  # the terminal (or CI log) itself: capture is off here
    threading.Thread(target=_heartbeat, args=(fd, _STOP), daemon=True).start()


def pytest_unconfigure(config):
    _STOP.set()


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
