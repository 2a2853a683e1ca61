"""A backend in one SQLite file, for the processes of one host.

It is written as a third party would write a backend: the standard-library
``sqlite3`` module and mongoelector's public protocol, errors, argument checks
and clock, nothing else. Every write runs in a ``BEGIN IMMEDIATE``
transaction, so the read-decide-write of each operation holds the database's
write lock from start to end, across threads and processes alike.

Server time is the injected clock (by default the system clock): the
processes sharing a file share the host's clock, so they agree on it. Fencing
tokens live in a table of their own, so deleting a lease record by hand never
lets a key's tokens start over.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import replace
from datetime import datetime
from types import TracebackType

from mongoelector.backends._sqlite_file import (
    LEASE_COLUMNS,
    MEMBER_COLUMNS,
    SQLiteFile,
    at,
    lease_from_row,
    member_from_row,
)
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
)
from mongoelector.backends.validation import (
    check_key,
    check_member,
    check_owner,
    check_request,
    check_ttl,
)
from mongoelector.clock import Clock, SystemClock

__all__ = ["SQLiteBackend"]


def _micros_of(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _select_lease(conn: sqlite3.Connection, key: str) -> LeaseRecord | None:
    row = conn.execute(
        f"SELECT {LEASE_COLUMNS} FROM mongoelector_leases WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else lease_from_row(row)


def _next_token(conn: sqlite3.Connection, key: str, current: LeaseRecord | None) -> int:
    """The key's next fencing token, recorded in the token table (which outlives records)."""
    row = conn.execute(
        "SELECT last_token FROM mongoelector_tokens WHERE key = ?", (key,)
    ).fetchone()
    last = max(row[0] if row is not None else 0, current.token if current is not None else 0)
    conn.execute(
        "INSERT OR REPLACE INTO mongoelector_tokens (key, last_token) VALUES (?, ?)",
        (key, last + 1),
    )
    return last + 1


class SQLiteBackend:
    """Lease records in the SQLite file ``path``, shared by every process that opens it.

    Safe to share between threads. After a fork, the child opens a connection
    of its own on first use. Each call waits up to ``busy_timeout`` seconds
    for the database's write lock; then, or on any other failure before the
    commit, it raises :class:`~mongoelector.errors.BackendUnavailable`
    (nothing was written). A failed ``COMMIT`` raises
    :class:`~mongoelector.errors.AmbiguousOutcome` unless it certainly did not
    commit. Call :meth:`close` (or use ``with``) when done.
    """

    capabilities: frozenset[Capability] = frozenset({Capability.MEMBER_STATUS})

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        filename = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        if not isinstance(filename, str):
            raise TypeError(f"path must be a str or path-like text path, got {path!r}")
        if filename in ("", ":memory:"):
            raise ValueError(
                f"path must name a file that processes share, got {filename!r} "
                f"(use MemoryBackend within one process)"
            )
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must implement Clock, got {clock!r}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._file = SQLiteFile(
            filename,
            busy_timeout=check_ttl(busy_timeout, name="busy_timeout"),
            clock=self._clock,
        )

    @property
    def path(self) -> str:
        """The database file."""
        return self._file.path

    @property
    def clock(self) -> Clock:
        """The clock that is this backend's server time."""
        return self._clock

    def server_time(self) -> datetime:
        return self._clock.now()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        request = check_request(request)
        ttl_us = _micros_of(request.ttl)
        metadata = json.dumps(dict(request.metadata), sort_keys=True)

        def work(conn: sqlite3.Connection, now_us: int) -> CasResult:
            current = _select_lease(conn, request.key)
            if current is not None and not force and current.is_held(at(now_us)):
                return CasResult(acquired=False, record=current)
            token = _next_token(conn, request.key, current)
            row = (
                request.key,
                request.owner,
                token,
                now_us,
                now_us + ttl_us,
                request.host,
                request.pid,
                metadata,
                request.acquisition,
            )
            conn.execute(
                f"INSERT OR REPLACE INTO mongoelector_leases ({LEASE_COLUMNS}) "
                f"VALUES ({_marks(9)})",
                row,
            )
            return CasResult(acquired=True, record=lease_from_row(row))

        return self._file.write(work)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        check_key(key)
        check_owner(owner)
        ttl_us = _micros_of(check_ttl(ttl))

        def work(conn: sqlite3.Connection, now_us: int) -> LeaseRecord | None:
            current = _select_lease(conn, key)
            if current is None or current.owner != owner or current.token != token:
                return None
            expires_us = now_us + ttl_us
            conn.execute(
                "UPDATE mongoelector_leases SET expires_us = ? WHERE key = ?", (expires_us, key)
            )
            return replace(current, expires_at=at(expires_us))

        return self._file.write(work)

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        check_key(key)
        if not force:
            check_owner(owner)

        def work(conn: sqlite3.Connection, now_us: int) -> bool:
            current = _select_lease(conn, key)
            if current is None or current.owner is None:
                return False
            if not force and (
                current.owner != owner or (token is not None and current.token != token)
            ):
                return False
            conn.execute("UPDATE mongoelector_leases SET owner = NULL WHERE key = ?", (key,))
            return current.is_held(at(now_us))

        return self._file.write(work)

    def get(self, key: str) -> LeaseRecord | None:
        check_key(key)
        return self._file.read(lambda conn, _now_us: _select_lease(conn, key))

    def report_member(self, member: MemberRecord) -> None:
        member = check_member(member)
        ttl_us = _micros_of(member.ttl)

        def work(conn: sqlite3.Connection, now_us: int) -> None:
            conn.execute("DELETE FROM mongoelector_members WHERE lapses_us <= ?", (now_us,))
            conn.execute(
                f"INSERT OR REPLACE INTO mongoelector_members VALUES ({_marks(11)})",
                (
                    member.key,
                    member.uuid,
                    member.host,
                    member.pid,
                    member.is_leader,
                    member.elector_running,
                    member.ttl,
                    member.token,
                    member.app_version,
                    now_us,
                    now_us + ttl_us,
                ),
            )

        self._file.write(work)

    def members(self, key: str) -> list[MemberRecord]:
        check_key(key)

        def work(conn: sqlite3.Connection, now_us: int) -> list[MemberRecord]:
            rows = conn.execute(
                f"SELECT {MEMBER_COLUMNS} FROM mongoelector_members "
                f"WHERE key = ? AND lapses_us > ? ORDER BY stamped_us DESC, rowid DESC",
                (key, now_us),
            )
            return [member_from_row(row) for row in rows]

        return self._file.read(work)

    def close(self) -> None:
        """Close this process's connection; a later call opens a new one."""
        self._file.close()

    def __enter__(self) -> SQLiteBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r}, clock={self._clock!r})"
