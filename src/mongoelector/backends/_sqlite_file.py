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
from datetime import datetime
from typing import NamedTuple, TypeVar

from mongoelector.backends._host_time import (
    BOOT_ID_FILE,
    HostInstant,
    at,
    host_boot_id,
    read_instant,
)
from mongoelector.backends.protocol import LeaseRecord, MemberRecord
from mongoelector.clock import Clock
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable

__all__ = [
    "LEASE_COLUMNS",
    "MEMBER_COLUMNS",
    "LeaseRow",
    "MemberRow",
    "SQLiteFile",
    "commit_surely_failed",
]

_T = TypeVar("_T")

# Columns ending in _us hold the wall clock at the write, in whole microseconds
# since the Unix epoch (UTC): for people reading the file, and for rows written
# before ticks existed (boot IS NULL), which are judged by them. Columns ending
# in _tick hold the monotonic clock of the boot in `boot`, in microseconds: they
# decide expiry (see _host_time).
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mongoelector_leases (
        key TEXT PRIMARY KEY, owner TEXT, token INTEGER NOT NULL,
        acquired_us INTEGER, expires_us INTEGER,
        host TEXT, pid INTEGER, metadata TEXT NOT NULL, acquisition TEXT,
        boot TEXT, acquired_tick INTEGER, renewed_tick INTEGER, expires_tick INTEGER)""",
    # The last token of every key ever acquired: it outlives deleted leases.
    """CREATE TABLE IF NOT EXISTS mongoelector_tokens (
        key TEXT PRIMARY KEY, last_token INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mongoelector_members (
        key TEXT NOT NULL, uuid TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        is_leader INTEGER NOT NULL, elector_running INTEGER NOT NULL, ttl REAL NOT NULL,
        token INTEGER, app_version TEXT, stamped_us INTEGER NOT NULL,
        lapses_us INTEGER NOT NULL, boot TEXT, stamped_tick INTEGER, lapses_tick INTEGER,
        PRIMARY KEY (key, uuid))""",
)
# Columns added during the 2.0 development cycle, in the order they were added.
_ADDED_COLUMNS = {
    "mongoelector_leases": (
        ("acquisition", "TEXT"),
        ("boot", "TEXT"),
        ("acquired_tick", "INTEGER"),
        ("renewed_tick", "INTEGER"),
        ("expires_tick", "INTEGER"),
    ),
    "mongoelector_members": (
        ("boot", "TEXT"),
        ("stamped_tick", "INTEGER"),
        ("lapses_tick", "INTEGER"),
    ),
}
LEASE_COLUMNS = (
    "key, owner, token, acquired_us, expires_us, host, pid, metadata, acquisition, "
    "boot, acquired_tick, renewed_tick, expires_tick"
)
MEMBER_COLUMNS = (
    "key, uuid, host, pid, is_leader, elector_running, ttl, token, app_version, "
    "stamped_us, lapses_us, boot, stamped_tick, lapses_tick"
)

# Connections inherited through fork(): the child must neither use nor close them,
# so they are kept referenced here for the life of the process.
_INHERITED: list[sqlite3.Connection] = []


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring tables made by an earlier 2.0 development version up to date.

    Rows written before the tick columns existed keep ``boot`` NULL and are
    judged by their wall-clock columns, as that version judged them.
    """
    for table, added in _ADDED_COLUMNS.items():
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in added:
            if name not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _at_or_none(count: int | None) -> datetime | None:
    return None if count is None else at(count)


def _wall_or_none(now: HostInstant, tick: int | None) -> datetime | None:
    return None if tick is None else now.wall_of(tick)


class LeaseRow(NamedTuple):
    """A row of ``mongoelector_leases``, in :data:`LEASE_COLUMNS` order."""

    key: str
    owner: str | None
    token: int
    acquired_us: int | None
    expires_us: int | None
    host: str | None
    pid: int | None
    metadata: str
    acquisition: str | None
    boot: str | None
    acquired_tick: int | None
    renewed_tick: int | None
    expires_tick: int | None

    def current(self, now: HostInstant) -> bool:
        """True if the row was last written earlier in the boot of ``now``."""
        return now.in_this_boot(self.boot, self.renewed_tick)

    def held(self, now: HostInstant) -> bool:
        """True if someone holds the lease at ``now``.

        A row of this boot is held until its expiry tick; a row of another
        boot has lapsed; a row written before ticks existed is held until its
        wall-clock expiry.
        """
        if self.owner is None:
            return False
        if self.boot is None:
            return self.expires_us is not None and self.expires_us > now.wall
        return self.current(now) and self.expires_tick is not None and self.expires_tick > now.tick

    def acquired_tick_at(self, now: HostInstant) -> int | None:
        """The acquisition as a tick of the boot of ``now`` (translated by wall clock if older)."""
        if self.current(now):
            return self.acquired_tick
        return None if self.acquired_us is None else now.tick_of(self.acquired_us)

    def record(self, now: HostInstant) -> LeaseRecord:
        """The row as a record, its times presented by the wall clock of ``now``.

        ``record.is_held(at(now.wall))`` agrees with :meth:`held`: a row of
        this boot shows its ticks as wall times (so ``expires_at`` minus the
        reading is the lease's remaining monotonic time), any other row its
        wall-clock stamps, with a lapsed row's ``expires_at`` no later than
        ``now``.
        """
        if self.boot is not None and self.current(now):
            acquired_at = _wall_or_none(now, self.acquired_tick)
            expires_at = _wall_or_none(now, self.expires_tick)
        else:
            acquired_at = _at_or_none(self.acquired_us)
            expires_at = _at_or_none(self.expires_us)
            if self.boot is not None and expires_at is not None:
                expires_at = min(expires_at, at(now.wall))
        return LeaseRecord(
            key=self.key,
            owner=self.owner,
            token=self.token,
            acquired_at=acquired_at,
            expires_at=expires_at,
            host=self.host,
            pid=self.pid,
            metadata=json.loads(self.metadata),
            acquisition=self.acquisition,
        )


class MemberRow(NamedTuple):
    """A row of ``mongoelector_members``, in :data:`MEMBER_COLUMNS` order."""

    key: str
    uuid: str
    host: str
    pid: int
    is_leader: int
    elector_running: int
    ttl: float
    token: int | None
    app_version: str | None
    stamped_us: int
    lapses_us: int
    boot: str | None
    stamped_tick: int | None
    lapses_tick: int | None

    def live(self, now: HostInstant) -> bool:
        """True if the report has not lapsed at ``now`` (by the rules of :meth:`LeaseRow.held`)."""
        if self.boot is None:
            return self.lapses_us > now.wall
        return (
            now.in_this_boot(self.boot, self.stamped_tick)
            and self.lapses_tick is not None
            and self.lapses_tick > now.tick
        )

    def record(self, now: HostInstant) -> MemberRecord:
        """The row as a record; a live report's timestamp presented by the wall clock of ``now``."""
        if self.boot is not None and now.in_this_boot(self.boot, self.stamped_tick):
            timestamp = _wall_or_none(now, self.stamped_tick)
        else:
            timestamp = at(self.stamped_us)
        return MemberRecord(
            key=self.key,
            uuid=self.uuid,
            host=self.host,
            pid=self.pid,
            is_leader=bool(self.is_leader),
            elector_running=bool(self.elector_running),
            ttl=self.ttl,
            token=self.token,
            app_version=self.app_version,
            timestamp=timestamp,
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

    def __init__(
        self, path: str, *, busy_timeout: float, clock: Clock, boot_id: str | None = None
    ) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._boot = boot_id
        self._mutex = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0

    def read(self, work: Callable[[sqlite3.Connection, HostInstant], _T]) -> _T:
        """Run the read-only ``work(conn, now)``; store failures raise BackendUnavailable.

        ``work`` sees the database as it was before ``now`` was read: no row
        it sees was written at a later tick (which would look like a row of
        an earlier boot).
        """
        with self._mutex:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                # The first read fixes the snapshot this transaction sees.
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return work(conn, self._now())
            except sqlite3.Error as error:
                raise BackendUnavailable(
                    f"SQLite read from {self.path!r} failed: {error}", original=error
                ) from error
            finally:
                self._roll_back(conn)

    def write(self, work: Callable[[sqlite3.Connection, HostInstant], _T]) -> _T:
        """Run ``work(conn, now)`` in one ``BEGIN IMMEDIATE`` transaction and commit it.

        ``now`` (the host's time) is read once the write lock is held, so no
        other writer acts between that reading and the commit.
        """
        with self._mutex:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn, self._now())
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

    def _now(self) -> HostInstant:
        if self._boot is None:
            try:
                self._boot = host_boot_id()
            except OSError as error:
                raise BackendUnavailable(
                    f"cannot read the host's boot id from {BOOT_ID_FILE}: {error}",
                    original=error,
                ) from error
        return read_instant(self._clock, self._boot)

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
