"""The SQLite side of :class:`~mongoelector.backends.sqlite.SQLiteBackend`.

One connection per process to one database file: the schema, the row
formats, and transactions whose failures are mapped to
:class:`~mongoelector.errors.BackendUnavailable` (certainly not applied) or
:class:`~mongoelector.errors.AmbiguousOutcome` (may have applied).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from mongoelector.backends.protocol import LeaseRecord, MemberRecord
from mongoelector.clock import Clock
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable

__all__ = [
    "LEASE_COLUMNS",
    "MEMBER_COLUMNS",
    "SQLiteFile",
    "at",
    "commit_surely_failed",
    "lease_from_row",
    "member_from_row",
    "micros",
]

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

# Times are whole microseconds since the Unix epoch (UTC).
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mongoelector_leases (
        key TEXT PRIMARY KEY, owner TEXT, token INTEGER NOT NULL,
        acquired_us INTEGER, expires_us INTEGER,
        host TEXT, pid INTEGER, metadata TEXT NOT NULL, acquisition TEXT)""",
    # The last token of every key ever acquired: it outlives deleted leases.
    """CREATE TABLE IF NOT EXISTS mongoelector_tokens (
        key TEXT PRIMARY KEY, last_token INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mongoelector_members (
        key TEXT NOT NULL, uuid TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        is_leader INTEGER NOT NULL, elector_running INTEGER NOT NULL, ttl REAL NOT NULL,
        token INTEGER, app_version TEXT, stamped_us INTEGER NOT NULL,
        lapses_us INTEGER NOT NULL, PRIMARY KEY (key, uuid))""",
)
LEASE_COLUMNS = "key, owner, token, acquired_us, expires_us, host, pid, metadata, acquisition"
MEMBER_COLUMNS = (
    "key, uuid, host, pid, is_leader, elector_running, ttl, token, app_version, stamped_us"
)

# Connections inherited through fork(): the child must neither use nor close them,
# so they are kept referenced here for the life of the process.
_INHERITED: list[sqlite3.Connection] = []


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a lease table made by an earlier 2.0 development version up to date."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(mongoelector_leases)")}
    if "acquisition" not in columns:
        conn.execute("ALTER TABLE mongoelector_leases ADD COLUMN acquisition TEXT")


def micros(moment: datetime) -> int:
    """``moment`` (timezone-aware) as whole microseconds since the epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def at(count: int) -> datetime:
    """The UTC time ``count`` microseconds after the epoch."""
    return _EPOCH + count * _MICROSECOND


def _at_or_none(count: int | None) -> datetime | None:
    return None if count is None else at(count)


def lease_from_row(row: tuple[Any, ...]) -> LeaseRecord:
    """A lease row (in :data:`LEASE_COLUMNS` order) as a record."""
    key, owner, token, acquired_us, expires_us, host, pid, metadata, acquisition = row
    return LeaseRecord(
        key=key,
        owner=owner,
        token=token,
        acquired_at=_at_or_none(acquired_us),
        expires_at=_at_or_none(expires_us),
        host=host,
        pid=pid,
        metadata=json.loads(metadata),
        acquisition=acquisition,
    )


def member_from_row(row: tuple[Any, ...]) -> MemberRecord:
    """A member row (in :data:`MEMBER_COLUMNS` order) as a record."""
    key, uuid, host, pid, is_leader, running, ttl, token, app_version, stamped_us = row
    return MemberRecord(
        key=key,
        uuid=uuid,
        host=host,
        pid=pid,
        is_leader=bool(is_leader),
        elector_running=bool(running),
        ttl=ttl,
        token=token,
        app_version=app_version,
        timestamp=_at_or_none(stamped_us),
    )


def commit_surely_failed(error: sqlite3.Error, *, still_in_transaction: bool) -> bool:
    """True if a ``COMMIT`` that raised ``error`` certainly did not commit.

    Only a busy or locked database (another connection holds a lock) leaves
    the transaction open and uncommitted. Any other failure of ``COMMIT`` (an
    I/O error, a full disk) may come after the commit record reached the
    journal, so it may have committed.
    """
    name = getattr(error, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        busy = name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    else:
        message = str(error).lower()
        busy = "locked" in message or "busy" in message
    return busy and still_in_transaction


class SQLiteFile:
    """This process's connection to the database ``path``, used by one thread at a time.

    The connection opens on first use (creating the tables), in WAL mode so
    that reads never wait for writers, and reopens after a failure or a fork.
    """

    def __init__(self, path: str, *, busy_timeout: float, clock: Clock) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._mutex = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0

    def read(self, work: Callable[[sqlite3.Connection, int], _T]) -> _T:
        """Run the read-only ``work(conn, now_us)``; store failures raise BackendUnavailable."""
        with self._mutex:
            conn = self._connection()
            try:
                return work(conn, micros(self._clock.now()))
            except sqlite3.Error as error:
                raise BackendUnavailable(
                    f"SQLite read from {self.path!r} failed: {error}", original=error
                ) from error

    def write(self, work: Callable[[sqlite3.Connection, int], _T]) -> _T:
        """Run ``work(conn, now_us)`` in one ``BEGIN IMMEDIATE`` transaction and commit it.

        ``now_us`` (server time) is read once the write lock is held, so no
        other writer acts between that reading and the commit.
        """
        with self._mutex:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn, micros(self._clock.now()))
            except BaseException as error:
                self._roll_back(conn)
                if isinstance(error, sqlite3.Error):
                    raise BackendUnavailable(
                        f"SQLite write to {self.path!r} failed before commit: {error}",
                        original=error,
                    ) from error
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                if commit_surely_failed(error, still_in_transaction=conn.in_transaction):
                    self._roll_back(conn)
                    raise BackendUnavailable(
                        f"SQLite commit to {self.path!r} was refused: {error}", original=error
                    ) from error
                self._discard()
                raise AmbiguousOutcome(
                    f"SQLite commit to {self.path!r} failed and may have applied: {error}",
                    original=error,
                ) from error
            return result

    def close(self) -> None:
        """Close this process's connection, if open; the next call opens a new one."""
        with self._mutex:
            if self._conn_pid == os.getpid():
                self._discard()

    # --- with self._mutex held ------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        if self._conn is not None:
            _INHERITED.append(self._conn)
            self._conn = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise BackendUnavailable(
                f"cannot open SQLite database {self.path!r}: {error}", original=error
            ) from error
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            _add_missing_columns(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            conn.close()
            raise BackendUnavailable(
                f"cannot set up SQLite database {self.path!r}: {error}", original=error
            ) from error
        self._conn, self._conn_pid = conn, os.getpid()
        return conn

    def _roll_back(self, conn: sqlite3.Connection) -> None:
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._discard()  # closing a connection rolls its transaction back

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
