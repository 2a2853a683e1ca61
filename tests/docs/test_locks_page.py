"""The examples on docs/locks.md do what the page says (every block also runs as a page item)."""

from __future__ import annotations

from pathlib import Path

import mongomock
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


def test_write_fenced_refuses_an_older_token() -> None:
    example = run_block("def write_fenced(")
    write_fenced, stale_token = example["write_fenced"], example["StaleToken"]
    assert callable(write_fenced) and isinstance(stale_token, type)
    jobs = mongomock.MongoClient().db.jobs
    jobs.insert_one({"_id": "tenant-42", "state": "new"})
    write_fenced(jobs, "tenant-42", 7, {"state": "migrating"})
    write_fenced(jobs, "tenant-42", 8, {"state": "migrated"})
    with pytest.raises(stale_token, match="newer than 7"):
        write_fenced(jobs, "tenant-42", 7, {"state": "migrating"})
    assert jobs.find_one({"_id": "tenant-42"}) == {
        "_id": "tenant-42",
        "state": "migrated",
        "fence": 8,
    }


def test_write_fenced_creates_a_new_document() -> None:
    """Issue 15, item 2: the first write to a document that does not exist yet succeeds."""
    example = run_block("def write_fenced(")
    write_fenced, stale_token = example["write_fenced"], example["StaleToken"]
    assert callable(write_fenced) and isinstance(stale_token, type)
    jobs = mongomock.MongoClient().db.jobs
    write_fenced(jobs, "tenant-7", 3, {"state": "migrating"})
    assert jobs.find_one({"_id": "tenant-7"}) == {
        "_id": "tenant-7",
        "state": "migrating",
        "fence": 3,
    }
    with pytest.raises(stale_token, match="newer than 2"):
        write_fenced(jobs, "tenant-7", 2, {"state": "old"})
    assert jobs.count_documents({}) == 1
