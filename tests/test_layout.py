"""The design card's boundary: hdl/ never imports golden/, golden/ never imports hdl/; the layers
of qarch; and a repository that refers to nothing outside itself."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package,forbidden", [("hdl", "golden"), ("golden", "hdl")])
def test_import_boundary(package, forbidden):
    files = sorted((ROOT / package).glob("*.py"))
    assert files
    for f in files:
        assert forbidden not in _imports(f), f"{package}/{f.name} imports {forbidden}"


# -- the layers: golden/ and hdl/ at the bottom, qarch's core above them, synth/ and tb/ above the
# core, the commands on top; no import runs back up ------------------------------------------

CORE = ("qarch", "qarch.configs", "qarch.export", "qarch.schemes", "qarch.models")
COMMANDS = (
    "qarch.cli", "qarch.bench", "qarch.report", "qarch.evaluate", "qarch.driver",
    "qarch.stimulus", "qarch.perf", "qarch.perf_report", "qarch.scalesim_ref", "qarch.sweep",
    "qarch.gpu_check",
)  # fmt: skip
LAYERS = {"golden": 0, "hdl": 0, "core": 1, "synth": 2, "tb": 2, "commands": 3}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    top = module.split(".")[0]
    if top in ("golden", "hdl", "synth", "tb"):
        return top
    if top != "qarch":
        return None  # third-party
    if any(module == c or module.startswith(c + ".") for c in COMMANDS):
        return "commands"
    if any(module == c or module.startswith(c + ".") for c in CORE):
        return "core"
    raise AssertionError(f"{module} is in no layer: add it to CORE or COMMANDS")


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    me = _module(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                out |= {mod} | {f"{mod}.{a.name}" for a in node.names if not node.module}
            elif node.module:
                out.add(node.module)
    return out


def test_imports_never_run_back_up():
    files = [p for d in ("golden", "hdl", "qarch", "synth", "tb") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 40
    bad = []
    for f in files:
        mine = _layer(_module(f))
        for mod in _imported_modules(f):
            theirs = _layer(mod)
            if theirs is None or theirs == mine:
                continue
            if LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"{_module(f)} ({mine}) imports {mod} ({theirs})")
    assert not bad, "\n".join(bad)


# -- no scheme is named outside the registry and its own module ----------------------------------

SCHEME_MODULES = ("qarch/schemes",)  # the registry and each scheme's own module


def test_no_scheme_name_comparisons_outside_the_registry():
    import re

    from qarch.schemes import REGISTRY

    names = "|".join(re.escape(n) for n in REGISTRY)
    lit = rf"""["'](?:{names})["']"""
    patterns = [
        re.compile(rf"(?:==|!=)\s*{lit}"),  # x == "ant"
        re.compile(rf"{lit}\s*(?:==|!=|\bin\b)"),  # "ant" == x, "ant" in x
        re.compile(rf"\bin\s*[\(\[\{{][^)\]}}]*{lit}"),  # x in ("gptq", ...)
        re.compile(rf"startswith\(\s*{lit}"),
    ]
    bad = []
    for d in ("qarch", "synth", "tb"):
        for f in sorted((ROOT / d).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            if rel.startswith(SCHEME_MODULES):
                continue
            for i, line in enumerate(f.read_text().splitlines(), 1):
                code = re.sub(r"\bfor\s+[\w, ()]+?\s+in\b", "", line)  # iterating is not testing
                if any(p.search(code) for p in patterns):
                    bad.append(f"{rel}:{i}: {line.strip()}")
    assert not bad, "scheme names compared outside the registry:\n" + "\n".join(bad)


# -- self-contained: nothing in the repository points outside it ---------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")
# the workplace folders beside a checkout (spelled in pieces so that this file passes too)
_OUTSIDE = ["/".join(p) for p in (("shared", "spec"), ("shared", "notes"), ("..", "shared"),
                                  ("", "work", ""))]  # fmt: skip


def _text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    files = out.stdout.split() if out.returncode == 0 else []
    if not files:  # not a git checkout: the same folders by hand
        files = [str(p.relative_to(ROOT)) for d in ("docs", "golden", "hdl", "qarch", "tb",
                 "synth", "tests") for p in (ROOT / d).rglob("*") if p.is_file()]  # fmt: skip
        files += ["README.md", "Makefile", "pyproject.toml", "BENCHMARKS.md"]
    keep = (".md", ".py", ".toml", ".txt", "Makefile", ".cfg")
    return [ROOT / f for f in files if f.endswith(keep) and (ROOT / f).is_file()]


def test_nothing_refers_to_files_outside_the_repository():
    files = _text_files()
    assert any(f.name == "README.md" for f in files) and any(f.parent.name == "docs" for f in files)
    for f in files:
        text = f.read_text(errors="replace")
        for bad in _OUTSIDE:
            assert bad not in text, (
                f"{f.relative_to(ROOT)} refers to {bad!r}, outside the repository"
            )
        if f.suffix == ".md":  # every relative markdown link resolves inside the repository
            for target in _LINK.findall(text):
                if "://" in target or target.startswith(("#", "mailto:")):
                    continue
                dest = (f.parent / target.split("#")[0]).resolve()
                assert dest.is_relative_to(ROOT), f"{f.relative_to(ROOT)} links outside: {target}"
                assert dest.exists(), f"{f.relative_to(ROOT)} links to a missing file: {target}"


def test_the_fpga_figures_in_the_docs_are_the_generated_ones():
    """docs/evaluation.md quotes the iCEBreaker build that `make synth` records."""
    import json

    rep = json.loads((ROOT / "synth/reports/fpga-icebreaker-int4x8-array4x4-p16.json").read_text())
    cells, total = rep["utilisation"]["ICESTORM_LC"]
    text = " ".join((ROOT / "docs/evaluation.md").read_text().split())
    quote = (
        f"`qarch fpga int4x8-array4x4-p16`: {cells:,} of {total:,} logic cells, "
        f"{rep['fmax_mhz']} MHz against the {rep['clock_mhz']:g} MHz board clock, "
        f"{rep['frame_bits']['in']}-bit input and {rep['frame_bits']['out']}-bit output frames"
    )
    assert quote in text, f"docs/evaluation.md should quote: {quote}"
