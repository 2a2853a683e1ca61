"""A backend in one SQLite file, for the processes of one host.

It is written as a third party would write a backend: the standard-library
``sqlite3`` module and mongoelector's public protocol, errors, argument checks
and clock, nothing else. Every write runs in a ``BEGIN IMMEDIATE``
transaction, so the read-decide-write of each operation holds the database's
write lock from start to end, across threads and processes alike.

Leases expire by the host's monotonic clock (the injected clock's
``monotonic()``, by default the system's), stored with the id of the boot it
counts from: the processes sharing a file share that clock, so they agree on
it, and a step of the wall clock moves no lease (see ``_host_time``). Wall
time only presents records and server time. Fencing tokens live in a table
of their own, so deleting a lease record by hand never lets a key's tokens
start over.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

from mongoelector.backends._host_time import HostInstant, at
from mongoelector.backends._sqlite_file import (
    LEASE_COLUMNS,
    MEMBER_COLUMNS,
    LeaseRow,
    MemberRow,
    SQLiteFile,
)
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
)
from mongoelector.backends.validation import (
    check_key,
    check_keys,
    check_member,
    check_members,
    check_owner,
    check_renew_items,
    check_request,
    check_ttl,
)
from mongoelector.clock import Clock, SystemClock

__all__ = ["SQLiteBackend"]


def _micros_of(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _select_lease(conn: sqlite3.Connection, key: str) -> LeaseRow | None:
    row = conn.execute(
        f"SELECT {LEASE_COLUMNS} FROM mongoelector_leases WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else LeaseRow(*row)


def _next_token(conn: sqlite3.Connection, key: str, current: LeaseRow | None) -> int:
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


def _read_record(conn: sqlite3.Connection, now: HostInstant, key: str) -> LeaseRecord | None:
    """The record of ``key`` as ``get`` returns it; ``None`` if there is none."""
    current = _select_lease(conn, key)
    return None if current is None else current.record(now)


def _renew_row(
    conn: sqlite3.Connection, now: HostInstant, key: str, owner: str, token: int, ttl_us: int
) -> LeaseRecord | None:
    """Extend ``owner``'s holding ``token`` to now + ``ttl_us``; ``None`` if it is not theirs."""
    current = _select_lease(conn, key)
    if current is None or current.owner != owner or current.token != token:
        return None
    renewed = current._replace(
        expires_us=now.wall + ttl_us,
        boot=now.boot,
        acquired_tick=current.acquired_tick_at(now),
        renewed_tick=now.tick,
        expires_tick=now.tick + ttl_us,
    )
    conn.execute(
        "UPDATE mongoelector_leases SET expires_us = ?, boot = ?, acquired_tick = ?, "
        "renewed_tick = ?, expires_tick = ? WHERE key = ?",
        (
            renewed.expires_us,
            renewed.boot,
            renewed.acquired_tick,
            renewed.renewed_tick,
            renewed.expires_tick,
            key,
        ),
    )
    return renewed.record(now)


def _select_members(conn: sqlite3.Connection, key: str | None) -> list[tuple[int, MemberRow]]:
    """``(rowid, row)`` of every member row of ``key`` (of every key when ``None``)."""
    rows = conn.execute(
        f"SELECT rowid, {MEMBER_COLUMNS} FROM mongoelector_members"
        + ("" if key is None else " WHERE key = ?"),
        () if key is None else (key,),
    )
    return [(row[0], MemberRow(*row[1:])) for row in rows]


class SQLiteBackend:
    """Lease records in the SQLite file ``path``, shared by every process that opens it.

    Safe to share between threads. After a fork, the child opens a connection
    of its own on first use. Each call waits up to ``busy_timeout`` seconds
    for the database's write lock; then, or on any other failure before the
    commit, it raises :class:`~mongoelector.errors.BackendUnavailable`
    (nothing was written). A failed ``COMMIT`` raises
    :class:`~mongoelector.errors.AmbiguousOutcome` unless it certainly did not
    commit. Call :meth:`close` (or use ``with``) when done.

    Leases expire by ``clock.monotonic()`` within one boot of the host, so a
    step of the wall clock neither shortens nor lengthens any lease: every
    process that shares the file must read the same monotonic clock (the
    default :class:`~mongoelector.clock.SystemClock` does, on one host). A
    lease written in another boot (by ``boot_id``) has lapsed. ``boot_id``
    names the running boot; leave it ``None`` to read the host's (on Linux,
    ``/proc/sys/kernel/random/boot_id``; elsewhere one id serves every boot,
    and a reboot is noticed by the monotonic clock having restarted). Tests
    pass one to simulate a reboot.
    """

    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.MEMBER_STATUS,
            Capability.RENEW_MANY,
            Capability.GET_MANY,
            Capability.REPORT_MANY,
        }
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
        boot_id: str | None = None,
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
        if boot_id is not None and not isinstance(boot_id, str):
            raise TypeError(f"boot_id must be a str or None, got {boot_id!r}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._file = SQLiteFile(
            filename,
            busy_timeout=check_ttl(busy_timeout, name="busy_timeout"),
            clock=self._clock,
            boot_id=boot_id,
        )

    @property
    def path(self) -> str:
        """The database file."""
        return self._file.path

    @property
    def clock(self) -> Clock:
        """The clock whose monotonic time leases expire by, and whose wall time presents them."""
        return self._clock

    def server_time(self) -> datetime:
        """The clock's wall time now.

        Expiry is decided by the monotonic clock, and every record read
        presents its times by the wall clock of that read: ``expires_at``
        minus ``server_time()`` is the lease's remaining time even after the
        wall clock stepped (up to a step between the two calls).
        """
        return self._clock.now()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        request = check_request(request)
        ttl_us = _micros_of(request.ttl)
        metadata = json.dumps(dict(request.metadata), sort_keys=True)

        def work(conn: sqlite3.Connection, now: HostInstant) -> CasResult:
            current = _select_lease(conn, request.key)
            if current is not None and not force and current.held(now):
                return CasResult(acquired=False, record=current.record(now))
            row = LeaseRow(
                key=request.key,
                owner=request.owner,
                token=_next_token(conn, request.key, current),
                acquired_us=now.wall,
                expires_us=now.wall + ttl_us,
                host=request.host,
                pid=request.pid,
                metadata=metadata,
                acquisition=request.acquisition,
                boot=now.boot,
                acquired_tick=now.tick,
                renewed_tick=now.tick,
                expires_tick=now.tick + ttl_us,
            )
            conn.execute(
                f"INSERT OR REPLACE INTO mongoelector_leases ({LEASE_COLUMNS}) "
                f"VALUES ({_marks(len(row))})",
                row,
            )
            return CasResult(acquired=True, record=row.record(now))

        return self._file.write(work)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        check_key(key)
        check_owner(owner)
        ttl_us = _micros_of(check_ttl(ttl))

        def work(conn: sqlite3.Connection, now: HostInstant) -> LeaseRecord | None:
            return _renew_row(conn, now, key, owner, token, ttl_us)

        return self._file.write(work)

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        """Every renewal in one ``BEGIN IMMEDIATE`` transaction, at one reading of the clock.

        It commits or fails as a whole: ``BackendUnavailable`` renewed none of
        the items, ``AmbiguousOutcome`` all of the granted ones or none.
        """
        checked = check_renew_items(items)
        if not checked:
            return []

        def work(conn: sqlite3.Connection, now: HostInstant) -> list[LeaseRecord | None]:
            return [
                _renew_row(conn, now, item.key, item.owner, item.token, _micros_of(item.ttl))
                for item in checked
            ]

        return self._file.write(work)

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        check_key(key)
        if not force:
            check_owner(owner)

        def work(conn: sqlite3.Connection, now: HostInstant) -> bool:
            current = _select_lease(conn, key)
            if current is None or current.owner is None:
                return False
            if not force and (
                current.owner != owner or (token is not None and current.token != token)
            ):
                return False
            conn.execute("UPDATE mongoelector_leases SET owner = NULL WHERE key = ?", (key,))
            return current.held(now)

        return self._file.write(work)

    def get(self, key: str) -> LeaseRecord | None:
        check_key(key)

        return self._file.read(lambda conn, now: _read_record(conn, now, key))

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        """Every key's record from one read transaction (one snapshot of the file)."""
        distinct = check_keys(keys)
        if not distinct:
            return {}

        def work(conn: sqlite3.Connection, now: HostInstant) -> dict[str, LeaseRecord | None]:
            return {key: _read_record(conn, now, key) for key in distinct}

        return self._file.read(work)

    def report_member(self, member: MemberRecord) -> None:
        self._report([check_member(member)])

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        """Every report, stored in one write transaction."""
        checked = check_members(members)
        if checked:
            self._report(checked)

    def _report(self, members: list[MemberRecord]) -> None:
        """Store ``members`` (checked) in one write transaction, lapsed reports dropped."""

        def work(conn: sqlite3.Connection, now: HostInstant) -> None:
            lapsed = [(rowid,) for rowid, row in _select_members(conn, None) if not row.live(now)]
            conn.executemany("DELETE FROM mongoelector_members WHERE rowid = ?", lapsed)
            rows = []
            for member in members:
                ttl_us = _micros_of(member.ttl)
                rows.append(
                    MemberRow(
                        key=member.key,
                        uuid=member.uuid,
                        host=member.host,
                        pid=member.pid,
                        is_leader=member.is_leader,
                        elector_running=member.elector_running,
                        ttl=member.ttl,
                        token=member.token,
                        app_version=member.app_version,
                        stamped_us=now.wall,
                        lapses_us=now.wall + ttl_us,
                        boot=now.boot,
                        stamped_tick=now.tick,
                        lapses_tick=now.tick + ttl_us,
                    )
                )
            conn.executemany(
                f"INSERT OR REPLACE INTO mongoelector_members ({MEMBER_COLUMNS}) "
                f"VALUES ({_marks(len(rows[0]))})",
                rows,
            )

        self._file.write(work)

    def members(self, key: str) -> list[MemberRecord]:
        check_key(key)

        def work(conn: sqlite3.Connection, now: HostInstant) -> list[MemberRecord]:
            live = [
                (row.record(now), rowid)
                for rowid, row in _select_members(conn, key)
                if row.live(now)
            ]
            live.sort(key=lambda pair: (pair[0].timestamp or at(0), pair[1]), reverse=True)
            return [record for record, _ in live]

        return self._file.read(work)

    def keys(self) -> list[str]:
        """Every key with a lease record (held, expired or released) or a live member
        report, sorted; one read. For tools that list what the file holds."""

        def work(conn: sqlite3.Connection, now: HostInstant) -> list[str]:
            keys = {row[0] for row in conn.execute("SELECT key FROM mongoelector_leases")}
            keys.update(row.key for _, row in _select_members(conn, None) if row.live(now))
            return sorted(keys)

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
