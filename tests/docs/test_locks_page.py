"""The examples on docs/locks.md do what the page says (every block also runs as a page item)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sybil import Document
from sybil.parsers.markdown import PythonCodeBlockParser

PAGE = Path(__file__).resolve().parents[2] / "docs" / "locks.md"


def run_block(containing: str) -> dict[str, object]:
    """Runs the one Python block of the page that contains ``containing``, on its own."""
    document = Document.parse(str(PAGE), PythonCodeBlockParser())
    blocks = [str(e.parsed) for e in document.examples() if containing in str(e.parsed)]
    assert len(blocks) == 1, containing
    namespace: dict[str, object] = {"__name__": "docs_locks_example"}
    exec(compile(blocks[0], f"locks.md ({containing})", "exec"), namespace)
    return namespace


def test_the_complete_example_migrates_every_batch(capsys: pytest.CaptureFixture[str]) -> None:
    run_block("def migrate(")
    assert capsys.readouterr().out == "migrated 100 batches\n"


def test_the_fenced_example_refuses_the_late_write(capsys: pytest.CaptureFixture[str]) -> None:
    """The example prints what the page shows after it, and the document keeps the newer write."""
    example = run_block("old.fenced(jobs)")
    assert capsys.readouterr().out == (
        "refused: token 1 < 2\n{'_id': 'tenant-42', 'state': 'migrated', '_fence': 2}\n"
    )
    jobs: Any = example["jobs"]
    assert jobs.count_documents({}) == 1  # the upsert created one document, never a second


def test_the_page_no_longer_hand_rolls_write_fenced() -> None:
    """Issue 16: the library's ``fenced()`` replaces the ``write_fenced`` recipe."""
    assert "write_fenced" not in PAGE.read_text()
