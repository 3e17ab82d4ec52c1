"""A Liberty reader for what the power model needs: per cell its area, leakage, pin
capacitances, transition tables (to propagate slews) and internal energy tables.

Only the subset the OSU 0.18 um library uses: NLDM tables of one or two variables, no ``when``
conditions on the tables this model reads. Units are the library's: ns, pF, V, nW, and energy
in pF * V^2 = pJ (a Liberty library's internal energy unit is its capacitance unit times its
voltage unit squared).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["Table", "Pin", "Cell", "Library", "read_liberty"]

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}();:,]|[^\s{}();:,"]+')


@dataclass
class _Group:
    kind: str
    args: list[str]
    attrs: dict[str, str] = field(default_factory=dict)
    complex: dict[str, list[str]] = field(default_factory=dict)
    groups: list[_Group] = field(default_factory=list)

    def find(self, kind: str) -> list[_Group]:
        return [g for g in self.groups if g.kind == kind]


def _parse(text: str) -> _Group:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S).replace("\\\n", " ")
    toks = _TOKEN.findall(text)
    root = _Group("root", [])
    stack, i = [root], 0
    while i < len(toks):
        t = toks[i]
        if t == "}":
            stack.pop()
            i += 1
            continue
        name, nxt = t, toks[i + 1]
        if nxt == ":":  # simple attribute: name : value ;
            j = toks.index(";", i + 2)
            stack[-1].attrs[name] = " ".join(toks[i + 2 : j]).strip('"')
            i = j + 1
        elif nxt == "(":  # group or complex attribute: name ( args ) { ... } | ;
            j = toks.index(")", i + 2)
            args = [a.strip('"') for a in toks[i + 2 : j] if a != ","]
            if j + 1 < len(toks) and toks[j + 1] == "{":
                g = _Group(name, args)
                stack[-1].groups.append(g)
                stack.append(g)
                i = j + 2
            else:
                stack[-1].complex[name] = args
                i = j + 2 if j + 1 < len(toks) and toks[j + 1] == ";" else j + 1
        else:
            i += 1
    return root


def _floats(s: str) -> list[float]:
    return [float(v) for v in s.replace(",", " ").split()]


def _axis(xs: list[float], x: float) -> tuple[int, float]:
    """Segment index and fraction for linear inter- / extrapolation along ``xs``."""
    if len(xs) == 1:
        return 0, 0.0
    k = min(max(bisect.bisect_right(xs, x) - 1, 0), len(xs) - 2)
    return k, (x - xs[k]) / (xs[k + 1] - xs[k])


@dataclass(frozen=True)
class Table:
    """One NLDM table over up to two variables, read by variable name (``load`` for
    total_output_net_capacitance, ``slew`` for the input transition). Linear interpolation,
    and extrapolation beyond the table's edges, as OpenSTA reads these tables."""

    variables: tuple[str, ...]
    index: tuple[tuple[float, ...], ...]
    values: tuple[tuple[float, ...], ...]  # [index_1][index_2]

    def __call__(self, load: float = 0.0, slew: float = 0.0) -> float:
        x = [load if v == "load" else slew for v in self.variables]
        if len(self.variables) == 1:
            k, f = _axis(list(self.index[0]), x[0])
            row = self.values[0] if len(self.values) == 1 else [r[0] for r in self.values]
            if len(row) == 1:
                return row[0]
            return row[k] + f * (row[k + 1] - row[k])
        k1, f1 = _axis(list(self.index[0]), x[0])
        k2, f2 = _axis(list(self.index[1]), x[1])
        v = self.values

        def at(a: int, b: int) -> float:
            return v[min(a, len(v) - 1)][min(b, len(v[0]) - 1)]

        lo = at(k1, k2) + f2 * (at(k1, k2 + 1) - at(k1, k2))
        hi = at(k1 + 1, k2) + f2 * (at(k1 + 1, k2 + 1) - at(k1 + 1, k2))
        return lo + f1 * (hi - lo)


_VARIABLE = {
    "total_output_net_capacitance": "load",
    "input_net_transition": "slew",
    "input_transition_time": "slew",
}


@dataclass
class Pin:
    name: str
    direction: str
    capacitance: float = 0.0
    clock: bool = False
    # output pins: related input pin -> (rise, fall) transition tables / internal energy tables
    transition: dict[str, tuple[Table, Table]] = field(default_factory=dict)
    energy: dict[str, tuple[Table, Table]] = field(default_factory=dict)
    # input pins: energy per rising / falling input transition (no related pin)
    passive: tuple[Table, Table] | None = None


@dataclass
class Cell:
    name: str
    area: float
    leakage_nw: float
    pins: dict[str, Pin]
    sequential: bool

    @property
    def inputs(self) -> list[str]:
        return [p for p, v in self.pins.items() if v.direction == "input"]

    @property
    def outputs(self) -> list[str]:
        return [p for p, v in self.pins.items() if v.direction == "output"]


@dataclass
class Library:
    name: str
    voltage: float
    cells: dict[str, Cell]


def _table(g: _Group, templates: dict[str, tuple[str, ...]]) -> Table:
    variables = templates[g.args[0]] if g.args and g.args[0] in templates else ("load", "slew")
    index = tuple(tuple(_floats(g.complex[f"index_{i + 1}"][0])) for i in range(len(variables)))
    rows = tuple(tuple(_floats(r)) for r in g.complex["values"])
    if len(variables) == 1 and len(rows) == 1 and len(rows[0]) == len(index[0]):
        rows = tuple((v,) for v in rows[0])  # one row of values along the single variable
    return Table(variables, index, rows)


def _pair(g: _Group, rise: str, fall: str, templates) -> tuple[Table, Table] | None:
    r, f = g.find(rise), g.find(fall)
    if not (r and f):
        return None
    return _table(r[0], templates), _table(f[0], templates)


@lru_cache(maxsize=4)
def read_liberty(path: Path) -> Library:
    root = _parse(Path(path).read_text())
    lib = root.find("library")[0]
    templates = {}
    for kind in ("lu_table_template", "power_lut_template"):
        for t in lib.find(kind):
            names = [t.attrs.get(f"variable_{i}") for i in (1, 2) if f"variable_{i}" in t.attrs]
            templates[t.args[0]] = tuple(_VARIABLE.get(n, n) for n in names)
    voltage = float(lib.attrs.get("nom_voltage", "0"))
    cells = {}
    for c in lib.find("cell"):
        pins = {}
        for p in c.find("pin"):
            pin = Pin(
                p.args[0],
                p.attrs.get("direction", ""),
                float(p.attrs.get("capacitance", "0")),
                p.attrs.get("clock") == "true",
            )
            for t in p.find("timing"):
                rel = t.attrs.get("related_pin")
                pair = _pair(t, "rise_transition", "fall_transition", templates)
                if rel and pair:
                    pin.transition[rel] = pair
            for ip in p.find("internal_power"):
                pair = _pair(ip, "rise_power", "fall_power", templates)
                rel = ip.attrs.get("related_pin")
                if pair is None:
                    continue
                if rel:
                    pin.energy[rel] = pair
                else:
                    pin.passive = pair
            pins[pin.name] = pin
        cells[c.args[0]] = Cell(
            c.args[0],
            float(c.attrs.get("area", "0")),
            float(c.attrs.get("cell_leakage_power", "0")),
            pins,
            bool(c.find("ff") or c.find("latch")),
        )
    return Library(lib.args[0], voltage, cells)
