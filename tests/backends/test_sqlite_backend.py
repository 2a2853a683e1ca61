"""SQLiteBackend beyond the conformance suite: one file shared, failures classified."""

from __future__ import annotations

import multiprocessing
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mongoelector.backends._sqlite_file import commit_surely_failed
from mongoelector.backends.protocol import LeaseRequest, MemberRecord
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.clock import SystemClock
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.testing import FakeClock


def request(owner: str, key: str = "job") -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=30)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "leases.sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(path: Path, clock: FakeClock) -> Iterator[SQLiteBackend]:
    with SQLiteBackend(path, clock=clock, busy_timeout=0.05) as opened:
        yield opened


def test_two_backends_on_one_file_see_each_others_leases(
    backend: SQLiteBackend, path: Path, clock: FakeClock
) -> None:
    with SQLiteBackend(path, clock=clock) as other:
        held = backend.compare_and_set(request("alice"))
        refused = other.compare_and_set(request("bob"))
        assert held.acquired and not refused.acquired
        assert refused.record == held.record
        assert other.release("job", "alice") is True
        assert other.compare_and_set(request("bob")).acquired
        assert backend.get("job") == other.get("job")


def test_leases_tokens_and_members_outlive_the_backend_object(path: Path, clock: FakeClock) -> None:
    member = MemberRecord(
        key="job", uuid="alice", host="h", pid=1, is_leader=True, elector_running=True, ttl=60
    )
    with SQLiteBackend(path, clock=clock) as first:
        token = first.compare_and_set(request("alice")).record.token  # type: ignore[union-attr]
        first.report_member(member)
    with SQLiteBackend(path, clock=clock) as second:
        assert second.get("job").owner == "alice"  # type: ignore[union-attr]
        assert [m.uuid for m in second.members("job")] == ["alice"]
        taken = second.compare_and_set(request("bob"), force=True).record
        assert taken is not None and taken.token == token + 1


def test_server_time_is_the_injected_clock_or_else_the_system_clock(
    backend: SQLiteBackend, clock: FakeClock, path: Path
) -> None:
    assert backend.server_time() == clock.now()
    assert backend.clock is clock
    with SQLiteBackend(path) as default:
        assert isinstance(default.clock, SystemClock)


def test_reads_go_on_while_another_process_holds_the_write_lock(
    backend: SQLiteBackend, path: Path
) -> None:
    backend.compare_and_set(request("alice"))
    with closing(sqlite3.connect(path, isolation_level=None)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendUnavailable, match="database is locked") as raised:
            backend.compare_and_set(request("bob", key="other"))
        assert isinstance(raised.value.original, sqlite3.OperationalError)
        assert backend.get("job").owner == "alice"  # type: ignore[union-attr]
        blocker.execute("ROLLBACK")
    assert backend.compare_and_set(request("bob", key="other")).acquired


@pytest.mark.parametrize(
    ("message", "errorname", "in_transaction", "surely_failed"),
    [
        ("database is locked", None, True, True),
        ("database table is locked", None, True, True),
        ("database is locked", None, False, False),
        ("disk I/O error", None, True, False),
        ("database or disk is full", None, True, False),
        ("anything", "SQLITE_BUSY", True, True),
        ("anything", "SQLITE_BUSY_SNAPSHOT", True, True),
        ("database is locked", "SQLITE_IOERR_FSYNC", True, False),
    ],
)
def test_only_a_busy_commit_that_left_the_transaction_open_surely_failed(
    message: str, errorname: str | None, in_transaction: bool, surely_failed: bool
) -> None:
    error = sqlite3.OperationalError(message)
    if errorname is not None:
        error.sqlite_errorname = errorname  # type: ignore[attr-defined]
    assert commit_surely_failed(error, still_in_transaction=in_transaction) is surely_failed


class CommitFails(sqlite3.Connection):
    """A connection whose COMMIT raises ``failure`` once it is set."""

    failure: sqlite3.Error | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and CommitFails.failure is not None:
            raise CommitFails.failure
        return super().execute(sql, *args)


@pytest.fixture
def failing_commits(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[CommitFails]]:
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: connect(*a, factory=CommitFails, **kw))
    yield CommitFails
    CommitFails.failure = None


def test_a_commit_that_failed_with_io_error_is_ambiguous(
    failing_commits: type[CommitFails], backend: SQLiteBackend
) -> None:
    backend.get("job")  # connects and creates the tables
    failing_commits.failure = sqlite3.OperationalError("disk I/O error")

    with pytest.raises(AmbiguousOutcome, match="may have applied"):
        backend.compare_and_set(request("alice"))

    failing_commits.failure = None
    assert backend.compare_and_set(request("bob")).acquired  # a fresh connection works


def test_a_commit_refused_as_busy_is_unavailable_and_rolled_back(
    failing_commits: type[CommitFails], backend: SQLiteBackend
) -> None:
    backend.get("job")
    failing_commits.failure = sqlite3.OperationalError("database is locked")

    with pytest.raises(BackendUnavailable, match="refused"):
        backend.compare_and_set(request("alice"))

    failing_commits.failure = None
    assert backend.get("job") is None
    assert backend.compare_and_set(request("bob")).acquired


def test_a_file_that_cannot_be_a_database_makes_every_call_unavailable(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("these are not the pages you are looking for\n" * 100)
    with SQLiteBackend(not_a_database) as broken:
        with pytest.raises(BackendUnavailable, match="not a database"):
            broken.compare_and_set(request("alice"))
        with pytest.raises(BackendUnavailable):
            broken.get("job")
    with SQLiteBackend(tmp_path) as directory, pytest.raises(BackendUnavailable, match="open"):
        directory.get("job")


def test_a_closed_backend_reconnects_when_used_again(backend: SQLiteBackend) -> None:
    backend.compare_and_set(request("alice"))
    backend.close()
    assert backend.get("job").owner == "alice"  # type: ignore[union-attr]


def _contend_in_forked_child(backend: SQLiteBackend, results: Any) -> None:
    results.put(backend.compare_and_set(request("child")).acquired)
    results.put(backend.get("job").owner)  # type: ignore[union-attr]


def test_a_forked_child_opens_its_own_connection(backend: SQLiteBackend) -> None:
    backend.compare_and_set(request("parent"))
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    child = context.Process(target=_contend_in_forked_child, args=(backend, results))
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() when other tests left threads running.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    child.join(30)

    assert child.exitcode == 0
    assert (results.get(), results.get()) == (False, "parent")
    assert backend.release("job", "parent") is True  # the parent's connection still works


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (None, TypeError),
        (42, TypeError),
        (b"leases.sqlite", TypeError),
        ("", ValueError),
        (":memory:", ValueError),
    ],
)
def test_a_bad_path_is_rejected(path: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="path"):
        SQLiteBackend(path)


def test_bad_settings_are_rejected(path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        SQLiteBackend(path, busy_timeout=0)
    with pytest.raises(TypeError, match="clock"):
        SQLiteBackend(path, clock="system")  # type: ignore[arg-type]


def test_repr_names_the_file_and_clock(backend: SQLiteBackend, path: Path) -> None:
    assert repr(backend) == f"SQLiteBackend({str(path)!r}, clock={backend.clock!r})"
