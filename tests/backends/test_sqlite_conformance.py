"""SQLiteBackend passes the whole conformance suite, through both entry points."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import BackendConformance, BackendHarness, FakeClock, check_backend


def sqlite_harness(directory: Path) -> BackendHarness:
    """A fresh SQLite file in ``directory``, on a FakeClock, with every optional hook."""
    path = directory / "leases.sqlite"
    clock = FakeClock()
    backend = SQLiteBackend(path, clock=clock, busy_timeout=0.05)

    def delete_record(key: str) -> None:
        # As an operator would: straight into the file, past the backend.
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("DELETE FROM mongoelector_leases WHERE key = ?", (key,))

    @contextmanager
    def outage() -> Iterator[None]:
        # Another process takes the database's write lock and sits on it.
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")

    return BackendHarness(
        backend=backend,
        advance=clock.advance,
        delete_record=delete_record,
        outage=outage,
        close=backend.close,
    )


class TestSQLiteBackendConformance(BackendConformance):
    @pytest.fixture
    def conformance_harness(self, tmp_path: Path) -> Iterator[BackendHarness]:
        harness = sqlite_harness(tmp_path)
        yield harness
        assert harness.close is not None
        harness.close()


def test_check_backend_passes_every_check_on_sqlite() -> None:
    directories: list[str] = []

    def factory() -> BackendHarness:
        directories.append(tempfile.mkdtemp(prefix="mongoelector-conformance-"))
        return sqlite_harness(Path(directories[-1]))

    try:
        report = check_backend(factory)
    finally:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    assert report.ok, str(report)
    assert report.skipped == []
