"""The storage protocol: what a store must do for locks and elections to be safe.

A backend keeps one *lease record* per key and changes it only through the
operations below, each of which must be atomic for its key. Expiry is judged
by the backend's own :meth:`StorageBackend.server_time`, never by a caller's
clock. Failures are raised as :class:`~mongoelector.errors.BackendUnavailable`
(nothing happened) or :class:`~mongoelector.errors.AmbiguousOutcome` (the write
may have happened); anything else a backend raises is a bug in the backend.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, cast, runtime_checkable

__all__ = [
    "CAPABILITY_PROTOCOLS",
    "Capability",
    "CasResult",
    "GetManyBackend",
    "LeaseRecord",
    "LeaseRequest",
    "MemberRecord",
    "MemberStatusBackend",
    "RenewItem",
    "RenewManyBackend",
    "ReportManyBackend",
    "StorageBackend",
    "implemented_capabilities",
    "missing_protocol_methods",
    "require_backend",
]

#: An empty, read-only metadata mapping that records and requests without metadata may
#: share (one object, not an empty ``dict`` each: a process holds thousands of them).
EMPTY_METADATA: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """The stored state of one key.

    ``owner`` is the holder's id, or ``None`` once released. ``token`` is the
    fencing token of the latest acquisition: it grows with every successful
    acquisition of the key, and is never reused, even if the record is deleted.
    ``acquired_at`` and ``expires_at`` are server time (timezone-aware UTC).
    ``acquisition`` is the :attr:`LeaseRequest.acquisition` of the
    ``compare_and_set`` call that created this holding (``None`` when the
    store does not know it, e.g. a record written by mongoelector 1.x): it
    tells the attempt that wrote the record apart from any other holding of
    the same owner.
    """

    key: str
    owner: str | None
    token: int
    acquired_at: datetime | None
    expires_at: datetime | None
    host: str | None = None
    pid: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    acquisition: str | None = None

    def is_held(self, at: datetime) -> bool:
        """True if someone holds this lease at server time ``at``."""
        return self.owner is not None and self.expires_at is not None and self.expires_at > at

    def is_held_by(self, owner: str, at: datetime) -> bool:
        """True if ``owner`` holds this lease at server time ``at``."""
        return self.owner == owner and self.is_held(at)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRequest:
    """Who asks for a lease on ``key``, and for how long (``ttl`` seconds).

    ``acquisition`` identifies this one request (a fresh random id by
    default): a record it creates carries it, so that after an ambiguous
    outcome the caller can tell *this* attempt's write from an earlier
    holding of the same ``owner``. Send each ``compare_and_set`` with a new
    one.
    """

    key: str
    owner: str
    ttl: float
    host: str | None = None
    pid: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    acquisition: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True, kw_only=True)
class CasResult:
    """The outcome of :meth:`StorageBackend.compare_and_set`.

    ``acquired`` says whether the caller now holds the lease. ``record`` is the
    record after the operation: the caller's new holding when acquired,
    otherwise the current holder's record (``None`` only if the backend cannot
    tell who holds it).
    """

    acquired: bool
    record: LeaseRecord | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRecord:
    """One elector's self-reported status; ``timestamp`` is stamped by the store."""

    key: str
    uuid: str
    host: str
    pid: int
    is_leader: bool
    elector_running: bool
    ttl: float
    token: int | None = None
    app_version: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewItem:
    """One renewal of a batch: the arguments of :meth:`StorageBackend.renew`, as a record.

    Extend ``owner``'s holding ``token`` of ``key`` to expire ``ttl`` seconds
    from server now. Backends check the fields (as ``renew`` checks its
    arguments) when the batch is sent, not here.
    """

    key: str
    owner: str
    token: int
    ttl: float


class Capability(enum.Enum):
    """Optional abilities a backend can declare in its ``capabilities`` set."""

    #: The backend implements :class:`MemberStatusBackend`.
    MEMBER_STATUS = "member_status"
    #: The backend implements :class:`RenewManyBackend`: many renewals in one call.
    RENEW_MANY = "renew_many"
    #: The backend implements :class:`GetManyBackend`: many reads in one call.
    GET_MANY = "get_many"
    #: The backend implements :class:`ReportManyBackend`: many status reports in one call.
    REPORT_MANY = "report_many"


@runtime_checkable
class StorageBackend(Protocol):
    """A store of lease records, one per key. All operations are atomic per key."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        """The optional abilities of this backend."""
        ...

    def server_time(self) -> datetime:
        """The store's current time, timezone-aware UTC: the only clock expiry is judged by."""
        ...

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        """Give the lease to ``request.owner`` if nobody holds it, or unconditionally if ``force``.

        Nobody holds it when there is no record, the record is released, or it
        expired by server time. On success the record gets a fencing token
        greater than any this key has had, ``acquired_at`` = now,
        ``expires_at`` = now + ``ttl`` (server time) and ``acquisition`` =
        ``request.acquisition``; ``acquired`` is ``True`` only for a write made
        by this call. On refusal nothing changes, including when
        ``request.owner`` itself is the live holder.
        """
        ...

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        """Extend ``owner``'s holding ``token`` to expire ``ttl`` seconds from now.

        Returns the updated record (its ``acquisition`` unchanged), or ``None``
        (changing nothing) if the record is no longer ``owner``'s holding ``token``.
        """
        ...

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        """End ``owner``'s holding (``token`` too, when given), or anyone's if ``force``.

        The record keeps its token so that the next holder gets a greater one.
        Returns ``True`` if a live holding ended. A backend that sends the
        release again after a failure that may have applied must not answer
        ``False`` only because the later send found no holding to end: its
        own earlier send may have ended it. It answers from the record, or
        raises :class:`~mongoelector.errors.AmbiguousOutcome` when it cannot
        tell.
        """
        ...

    def get(self, key: str) -> LeaseRecord | None:
        """The record of ``key`` as stored (possibly released or expired), or ``None``."""
        ...


@runtime_checkable
class MemberStatusBackend(Protocol):
    """Storage of electors' status reports (the :attr:`Capability.MEMBER_STATUS` ability)."""

    def report_member(self, member: MemberRecord) -> None:
        """Store ``member``'s status, stamped with server time; it lapses after ``member.ttl``."""
        ...

    def members(self, key: str) -> list[MemberRecord]:
        """The live status reports for election ``key``, newest first."""
        ...


@runtime_checkable
class RenewManyBackend(Protocol):
    """Renewals of many holdings in one call (the :attr:`Capability.RENEW_MANY` ability)."""

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        """Renew every item, each exactly as :meth:`StorageBackend.renew` would.

        Returns one entry per item, in the order of ``items``: the renewed
        record, or ``None`` where that renewal was refused (which changed
        nothing for that key). Each renewal is atomic for its key, as
        ``renew`` is; the batch as a whole is not one atomic step, and a
        refused item does not stop the others. ``items`` must be a sequence of :class:`RenewItem`
        naming each key at most once; bad input (a bad field, a repeated key)
        raises ``TypeError``/``ValueError`` naming it before anything is
        renewed. An empty batch returns ``[]``. On ``BackendUnavailable`` no
        item was renewed; on ``AmbiguousOutcome`` each item may or may not
        have been renewed, each completely or not at all.
        """
        ...


@runtime_checkable
class GetManyBackend(Protocol):
    """Reads of many keys in one call (the :attr:`Capability.GET_MANY` ability)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        """The record of each of ``keys``, as :meth:`StorageBackend.get` would return it.

        One entry per distinct key (``None``: the key has no record), in the
        order the keys were first given. Each record is as stored at some
        instant during the call (a backend may, but need not, read all keys
        at one instant). ``keys`` must be a sequence of keys (a bare ``str``
        is refused); bad keys raise ``TypeError``/``ValueError`` naming them.
        """
        ...


@runtime_checkable
class ReportManyBackend(Protocol):
    """Status reports of many electors in one call (the :attr:`Capability.REPORT_MANY`
    ability, on top of :attr:`Capability.MEMBER_STATUS`)."""

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        """Store every report of ``members`` exactly as :meth:`MemberStatusBackend.report_member`
        would, one after the other (a later report of the same member replaces an earlier).

        ``members`` must be a sequence of :class:`MemberRecord`; a bad item (not a
        record, a bad key or ttl) raises ``TypeError``/``ValueError`` naming it before
        anything is stored. An empty sequence stores nothing. On ``BackendUnavailable``
        no report was stored; on ``AmbiguousOutcome`` each may or may not have been.
        """
        ...


#: The protocol class behind each optional capability, as sync code calls it.
CAPABILITY_PROTOCOLS: Mapping[Capability, type] = {
    Capability.MEMBER_STATUS: MemberStatusBackend,
    Capability.RENEW_MANY: RenewManyBackend,
    Capability.GET_MANY: GetManyBackend,
    Capability.REPORT_MANY: ReportManyBackend,
}

_REQUIRED = ("server_time", "compare_and_set", "renew", "release", "get")


def missing_protocol_methods(backend: object) -> list[str]:
    """The :class:`StorageBackend` methods that ``backend`` lacks or has not callable."""
    missing = [name for name in _REQUIRED if not callable(getattr(backend, name, None))]
    if not hasattr(backend, "capabilities"):
        missing.append("capabilities")
    return missing


def implemented_capabilities(
    backend: object, protocols: Mapping[Capability, type]
) -> frozenset[Capability]:
    """What ``backend`` declares it can do, less each capability in ``protocols`` whose
    protocol class (sync or async, as the caller will call it) ``backend`` does not
    implement: what an adapter over ``backend`` may declare in turn."""
    declared = frozenset(getattr(backend, "capabilities", ()))
    return frozenset(
        capability
        for capability in declared
        if capability not in protocols or isinstance(backend, protocols[capability])
    )


def require_backend(backend: object, *, name: str = "backend") -> StorageBackend:
    """Return ``backend`` if it implements :class:`StorageBackend`, else raise ``TypeError``."""
    missing = missing_protocol_methods(backend)
    if missing:
        raise TypeError(
            f"{name} must implement the StorageBackend protocol; {backend!r} "
            f"is missing: {', '.join(missing)}"
        )
    return cast("StorageBackend", backend)
