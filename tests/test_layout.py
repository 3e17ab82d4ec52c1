"""The design card's boundary: hdl/ never imports golden/, golden/ never imports hdl/."""

import ast
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
