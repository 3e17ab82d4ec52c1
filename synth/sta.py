"""Static timing of a liberty-mapped netlist with OpenSTA (Debian package ``opensta``).

The generic flow writes ``netlist.v`` (OSU 0.18 um cells, memories cut out: see
``flow._STA_NETLIST``); this module runs ``sta`` on it at a nominal clock and reads back the
worst register-to-register (or port-to-register) path. Every port is timed as a register
boundary of the same clock: inputs arrive at the clock edge, outputs are due at the next one
and drive ``LOAD_PF``. The critical-path delay is the arrival time plus the endpoint's setup
time (the clock period minus the slack), so Fmax does not depend on the nominal clock.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["PERIOD_NS", "LOAD_PF", "sta_version", "run_sta", "parse_checks", "register_nets"]

PERIOD_NS = 5.0  # the nominal clock: 200 MHz, the arrays issue's target at 0.18 um
LOAD_PF = 0.01  # every output port drives ~2 gate inputs (an INVX1 input is 0.0035 pF)

_TCL = """\
read_liberty {liberty}
read_verilog netlist.v
link_design {top}
create_clock -name clk -period {period} [get_ports clk]
set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]
set_output_delay 0 -clock clk [all_outputs]
set_load {load} [all_outputs]
report_checks -path_delay max -digits 3 -fields {{nets}}
"""


def _sta() -> str:
    exe = shutil.which("sta")
    if not exe:
        raise FileNotFoundError("OpenSTA (`sta`, Debian package opensta) missing: run `make setup`")
    return exe


def sta_version() -> str:
    out = subprocess.run([_sta(), "-version"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def parse_checks(text: str) -> dict[str, Any]:
    """The worst path of ``report_checks -fields {nets}``: start / end instance, the nets at
    the start's output and the end's input, arrival, setup and slack (ns)."""
    start = re.search(r"^Startpoint: (\S+) \((.*)\)$", text, re.M)
    end = re.search(r"^Endpoint: (\S+) \((.*)\)$", text, re.M)
    arrival = re.search(r"^\s+([-0-9.]+)\s+data arrival time$", text, re.M)
    slack = re.search(r"^\s+([-0-9.]+)\s+slack \((MET|VIOLATED)\)$", text, re.M)
    setup = re.search(r"^\s+([-0-9.]+)\s+[-0-9.]+\s+library setup time$", text, re.M)
    if not (start and end and arrival and slack):
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise RuntimeError(f"OpenSTA reported no constrained path:\n{tail}")
    return {
        "startpoint": start.group(1),
        "startpoint_kind": start.group(2),
        "endpoint": end.group(1),
        "endpoint_kind": end.group(2),
        "arrival_ns": float(arrival.group(1)),
        "setup_ns": -float(setup.group(1)) if setup else 0.0,
        "slack_ns": float(slack.group(1)),
    }


def register_nets(netlist: str) -> dict[str, str]:
    """Instance name -> the net on its Q pin, for every flip-flop of a yosys netlist: the
    register a path starts or ends at, by the name the design gave it."""
    out = {}
    for m in re.finditer(r"^\s*DFF\w+\s+(\S+)\s*\((.*?)\);", netlist, re.M | re.S):
        q = re.search(r"\.Q\((.*?)\)\s*(,|$)", m.group(2), re.S)
        if q:
            out[m.group(1).lstrip("\\")] = q.group(1).strip().lstrip("\\").replace(" ", "")
    return out


def run_sta(
    work: Path, top: str, liberty: str = "cells.lib", memory_ports: set[str] = frozenset()
) -> dict[str, Any]:
    """Run OpenSTA on ``work/netlist.v``; return the critical path, its delay and Fmax.
    ``memory_ports``: the ports that stand for a cut-out memory's pins (named as such)."""
    tcl = _TCL.format(liberty=liberty, top=top, period=PERIOD_NS, load=LOAD_PF)
    (work / "sta.tcl").write_text(tcl)
    proc = subprocess.run(
        [_sta(), "-no_splash", "-exit", "sta.tcl"], cwd=work, capture_output=True, text=True
    )
    text = proc.stdout + proc.stderr
    (work / "sta.log").write_text(text)
    if proc.returncode != 0 or re.search(r"^Error:", text, re.M):
        err = [ln for ln in text.splitlines() if ln.startswith("Error")][:5]
        raise RuntimeError(f"OpenSTA failed in {work.name}: " + "; ".join(err or [text[-400:]]))
    path = parse_checks(text)
    regs = register_nets((work / "netlist.v").read_text())
    delay = round(PERIOD_NS - path["slack_ns"], 3)
    return {
        "tool": "OpenSTA",
        "period_ns": PERIOD_NS,
        "output_load_pf": LOAD_PF,
        "critical_path_ns": delay,
        "fmax_mhz": round(1000.0 / delay, 1),
        "slack_at_200mhz_ns": path["slack_ns"],
        "startpoint": _point(path["startpoint"], path["startpoint_kind"], regs, memory_ports),
        "endpoint": _point(path["endpoint"], path["endpoint_kind"], regs, memory_ports),
        "setup_ns": path["setup_ns"],
    }


def _point(name: str, kind: str, regs: dict[str, str], memory_ports) -> str:
    # A flip-flop's instance name is yosys's (_1234_); the register it implements is named by
    # the net on its Q pin. Ports are named as they are, a memory's as the memory's.
    if "flip-flop" in kind:
        return f"register {regs.get(name, name)}"
    if name.split("[")[0] in memory_ports:
        return f"memory {'read data' if 'input' in kind else 'port'} {name}"
    return f"{'input' if 'input' in kind else 'output'} port {name}"
