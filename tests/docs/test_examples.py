"""The test examples shown in the docs run, and pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def example_tests() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for index, block in enumerate(BLOCK.findall(page.read_text())):
            if re.search(r"^def test_", block, re.MULTILINE):
                found.append((f"{page.name}#{index}", block))
    return found


@pytest.mark.parametrize(("where", "source"), example_tests(), ids=lambda v: str(v)[:40])
def test_documented_example_passes(where: str, source: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_example_{where}"}
    exec(compile(source, where, "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert tests, where
    for test in tests:
        assert callable(test)
        test()
