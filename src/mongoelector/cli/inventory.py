"""What a store holds: every lease record and elector status report, judged by server time.

Read-only: in a MongoDB database it finds documents in the lease collections
(``mongolocker`` for locks and ``elector.locks`` for elections by default, as
the 1.x-compatible facades and :class:`~mongoelector.backends.MongoBackend`
write them) and in the status collection (``elector.leader_status``), and
reads them with the backend's own document readers. In a SQLite file it reads
the records of every key through the backend (:func:`read_sqlite_inventory`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymongo
from pymongo import ReadPreference
from pymongo.errors import PyMongoError

from mongoelector.backends._mongo.documents import ID, member_from_document, record_from_document
from mongoelector.backends.mongo import DEFAULT_COLLECTION, DEFAULT_STATUS_COLLECTION, MongoBackend
from mongoelector.backends.protocol import LeaseRecord, MemberRecord
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.masking import mask_secrets
from mongoelector.elector import LOCK_COLLECTION
from mongoelector.errors import BackendError

__all__ = [
    "DEFAULT_LEASE_COLLECTIONS",
    "SQLITE_TABLE",
    "Inventory",
    "KeyView",
    "MemberView",
    "read_inventory",
    "read_sqlite_inventory",
    "server_time",
]

#: Where the facades keep leases: 1.x ``MongoLocker`` locks, then 1.x elector leases.
DEFAULT_LEASE_COLLECTIONS = (DEFAULT_COLLECTION, LOCK_COLLECTION)
#: Where a SQLite file keeps its leases (shown where a MongoDB collection would be).
SQLITE_TABLE = "mongoelector_leases"

HELD = "held"
EXPIRED = "expired"
RELEASED = "released"
NO_RECORD = "no record"


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberView:
    """An elector's latest status report (its last poll that reported); ``age`` is seconds
    since it (server time)."""

    member: MemberRecord
    age: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyView:
    """One key: its lease record (if any), where it is, its state, and the electors reporting on it.

    ``state`` is ``held``, ``expired`` (a holder's record whose time ran out),
    ``released`` or ``no record`` (status reports only). ``expires_in`` is
    seconds of server time until expiry (negative once expired).
    """

    key: str
    collection: str | None
    record: LeaseRecord | None
    state: str
    expires_in: float | None
    members: tuple[MemberView, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """Everything found, as of ``server_time`` (known to within ``uncertainty`` seconds)."""

    database: str
    server_time: datetime
    uncertainty: float
    collections: tuple[str, ...]
    keys: tuple[KeyView, ...]


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else (later - earlier).total_seconds()


def _state(record: LeaseRecord, now: datetime) -> str:
    if record.owner is None:
        return RELEASED
    return HELD if record.is_held(now) else EXPIRED


def _find(database: Any, collection: str, query: dict[str, Any], timeout: float) -> list[Any]:
    handle = database.get_collection(collection, read_preference=ReadPreference.PRIMARY)
    try:
        with pymongo.timeout(timeout):
            return list(handle.find(query))
    except PyMongoError as error:
        raise CliError(
            f"reading {collection!r} failed: {mask_secrets(str(error))}", ExitCode.UNREACHABLE
        ) from error


def server_time(database: Any, *, timeout: float) -> tuple[datetime, float]:
    """The server's time and its uncertainty (seconds), as the backend estimates it."""
    backend = MongoBackend(database, status_collection=None, create_indexes=False, timeout=timeout)
    try:
        estimate = backend.time_estimate()
    except BackendError as error:
        raise CliError(
            f"reading the server's clock failed: {mask_secrets(str(error))}", ExitCode.UNREACHABLE
        ) from error
    return estimate.time, estimate.uncertainty


def _views(
    records: Iterable[tuple[str, LeaseRecord]], members: Sequence[MemberRecord], now: datetime
) -> list[KeyView]:
    by_key: dict[str, list[MemberView]] = {}
    # Per key: the leader first, then the freshest reports.
    order = sorted(
        members, key=lambda m: (m.key, not m.is_leader, -(m.timestamp or now).timestamp())
    )
    for member in order:
        age = None if member.timestamp is None else (now - member.timestamp).total_seconds()
        by_key.setdefault(member.key, []).append(MemberView(member=member, age=age))
    views = []
    seen = set()
    for collection, record in records:
        seen.add(record.key)
        views.append(
            KeyView(
                key=record.key,
                collection=collection,
                record=record,
                state=_state(record, now),
                expires_in=_seconds(record.expires_at, now),
                members=tuple(by_key.get(record.key, ())),
            )
        )
    for key, reports in by_key.items():
        if key not in seen:
            views.append(
                KeyView(
                    key=key,
                    collection=None,
                    record=None,
                    state=NO_RECORD,
                    expires_in=None,
                    members=tuple(reports),
                )
            )
    views.sort(key=lambda view: (view.key, view.collection or ""))
    return views


def read_inventory(
    database: Any,
    *,
    collections: Sequence[str],
    status_collection: str | None = DEFAULT_STATUS_COLLECTION,
    key: str | None = None,
    timeout: float,
) -> Inventory:
    """Read every lease in ``collections`` and every report in ``status_collection``.

    With ``key``, only that key's. Raises :class:`CliError` (``UNREACHABLE``)
    if the server fails to answer.
    """
    now, uncertainty = server_time(database, timeout=timeout)
    lease_query: dict[str, Any] = {} if key is None else {ID: key}
    records = []
    for collection in collections:
        for document in _find(database, collection, lease_query, timeout):
            if isinstance(document.get(ID), str):
                records.append((collection, record_from_document(document)))
    members: list[MemberRecord] = []
    if status_collection is not None:
        member_query: dict[str, Any] = {} if key is None else {"key": key}
        for document in _find(database, status_collection, member_query, timeout):
            member = member_from_document(document)
            if member is not None:
                members.append(member)
    return Inventory(
        database=str(database.name),
        server_time=now,
        uncertainty=uncertainty,
        collections=tuple(collections),
        keys=tuple(_views(records, members, now)),
    )


def read_sqlite_inventory(backend: SQLiteBackend, *, key: str | None = None) -> Inventory:
    """Every key's lease record and live member reports in ``backend``'s file (only
    ``key``'s with ``key``), as of the host's clock (uncertainty 0).

    ``database`` is the file's path and every record's collection is
    :data:`SQLITE_TABLE`. Raises :class:`CliError` (``UNREACHABLE``) if the
    file cannot be read.
    """
    try:
        now = backend.server_time()
        keys = backend.keys() if key is None else [key]
        records = []
        members: list[MemberRecord] = []
        for name in keys:
            record = backend.get(name)
            if record is not None:
                records.append((SQLITE_TABLE, record))
            members.extend(backend.members(name))
    except BackendError as error:
        raise CliError(
            f"reading {backend.path!r} failed: {mask_secrets(str(error))}", ExitCode.UNREACHABLE
        ) from error
    return Inventory(
        database=backend.path,
        server_time=now,
        uncertainty=0.0,
        collections=(SQLITE_TABLE,),
        keys=tuple(_views(records, members, now)),
    )
