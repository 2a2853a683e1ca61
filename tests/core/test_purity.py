"""The pure core performs no I/O: it imports nothing that could."""

from __future__ import annotations

import ast
from pathlib import Path

import mongoelector.core

FORBIDDEN = {"pymongo", "threading", "time", "asyncio", "socket", "os", "datetime.now"}
CORE_DIR = Path(mongoelector.core.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_no_io_modules() -> None:
    offenders = {
        path.name: sorted(imported_modules(path) & FORBIDDEN) for path in CORE_DIR.glob("*.py")
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_core_never_reads_the_wall_clock() -> None:
    for path in CORE_DIR.glob("*.py"):
        source = path.read_text()
        assert ".now(" not in source, path.name
        assert "sleep(" not in source, path.name
