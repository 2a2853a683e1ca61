"""Every Python block of README.md and docs/*.md runs in CI, or says visibly why not.

The blocks themselves run as test items of their pages (``README.md::line:21,column:1``,
collected through ``tests/docs/markdown.py``); these tests keep that promise from eroding.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest
from sybil import Document

import mongoelector
from tests.docs.markdown import PAGES, PLACEHOLDERS, ROOT, BlockAndItsTests, PythonBlocks

PAGE_PATHS = sorted(path for pattern in PAGES for path in ROOT.glob(pattern))
FENCE = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?(`{3,}|~{3,})[ \t]*(\S*)", re.MULTILINE)
SKIP = re.compile(r"<!--\s*skip:\s*(\S+)(.*?)-->", re.DOTALL)
#: Fence languages a page may use; Python goes in ```python fences only, which all run.
NOT_PYTHON = {"", "text", "bash", "sh"}


def fences(text: str) -> list[str]:
    """The language of every fenced block of a Markdown text, in order."""
    languages, open_fence = [], None
    for match in FENCE.finditer(text):
        if open_fence is None:
            open_fence = match[1]
            languages.append(match[2])
        elif match[1].startswith(open_fence[0]) and not match[2]:
            open_fence = None
    return languages


def test_the_pages_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in PAGE_PATHS}
    assert {"README.md", "docs/api.md", "docs/testing.md"} <= names


@pytest.mark.parametrize("page", PAGE_PATHS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_are_fenced_as_python_so_they_run(page: Path) -> None:
    languages = fences(page.read_text())
    assert set(languages) - {"python"} <= NOT_PYTHON, languages


@pytest.mark.parametrize("page", PAGE_PATHS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_sybil_collects_every_python_block(page: Path) -> None:
    document = Document.parse(str(page), PythonBlocks())
    assert len(list(document.examples())) == fences(page.read_text()).count("python")


@pytest.mark.parametrize("page", PAGE_PATHS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_skipped_block_says_why_where_readers_see_it(page: Path) -> None:
    """``<!-- skip -->`` is invisible on GitHub: the italic line above it says the same."""
    text = page.read_text()
    for match in SKIP.finditer(text):
        action, reason = match[1], match[2].strip()
        assert action == "next", f"{page.name}: skip one block at a time, not {action!r}"
        assert reason.startswith('"') and reason.endswith('"'), f"{page.name}: {reason}"
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        assert before == f"*Not run in CI: {reason[1:-1]}.*", f"{page.name}: {before!r}"
        after = text[match.end() :].lstrip().split("\n", 1)[0]
        assert after == "```python", f"{page.name}: the skip marker precedes {after!r}"


@pytest.mark.parametrize("page", PAGE_PATHS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_python_block_compiles_even_the_skipped_ones(page: Path) -> None:
    """A skipped block is not run, but it is still Python (top-level ``await`` allowed)."""
    for example in Document.parse(str(page), PythonBlocks()).examples():
        source = textwrap.dedent(str(example.parsed))
        where = f"{page.name}:{example.line}"
        compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def test_the_pages_are_part_of_make_test() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = pyproject["tool"]["pytest"]["ini_options"]["testpaths"]
    assert testpaths == ["tests", *PAGES]
    assert any(r.startswith("sybil") for r in pyproject["project"]["optional-dependencies"]["test"])
    assert "pytest_collect_file" in (ROOT / "conftest.py").read_text()


def test_placeholders_never_stand_in_for_mongoelector_names() -> None:
    """A missing import of a mongoelector name fails; only the reader's own code is stubbed."""
    exported = set(mongoelector.__all__)
    for module_info in pkgutil.walk_packages(mongoelector.__path__, "mongoelector."):
        if not any(part.startswith("_") for part in module_info.name.split(".")):
            exported |= set(getattr(importlib.import_module(module_info.name), "__all__", ()))
    assert len(exported) > 50
    assert exported & PLACEHOLDERS == set()


def test_a_block_runs_the_tests_it_defines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nran = []\ndef test_it():\n    ran.append(1)\n    assert False\n```\n"
    )
    (example,) = Document.parse(str(page), PythonBlocks()).examples()
    example.namespace["request"] = None
    assert isinstance(example.region.evaluator, BlockAndItsTests)
    with pytest.raises(AssertionError):
        example.evaluate()
    assert example.namespace["ran"] == [1]
