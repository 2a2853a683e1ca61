"""The storage protocol for asyncio, and the adapter that lets a non-blocking sync store in.

:class:`AsyncStorageBackend` promises exactly what
:class:`~mongoelector.backends.protocol.StorageBackend` promises (read its
docstrings: they are the contract), with every operation a coroutine.
:func:`as_async_backend` accepts either kind: an async backend is used as it
is; a sync one is wrapped in :class:`InlineBackend`, whose calls run directly
on the event loop, which is right for a store that never blocks, such as
:class:`~mongoelector.backends.memory.MemoryBackend`. The sync
:class:`~mongoelector.backends.MongoBackend` is refused (every call would stall
the loop for a network round trip, and much longer during a failover): its
async counterpart is :class:`~mongoelector.backends.AsyncMongoBackend`.
:class:`~mongoelector.backends.sqlite.SQLiteBackend` is accepted: a call holds
the loop for one local file transaction, and at worst for its
``busy_timeout`` while another process writes (keep that short for asyncio
use; see ``docs/asyncio.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, cast, runtime_checkable

from mongoelector.backends.mongo import MongoBackend
from mongoelector.backends.protocol import (
    CAPABILITY_PROTOCOLS,
    Capability,
    CasResult,
    GetManyBackend,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemberStatusBackend,
    RenewItem,
    RenewManyBackend,
    ReportManyBackend,
    StorageBackend,
    implemented_capabilities,
    missing_protocol_methods,
)

__all__ = [
    "ASYNC_CAPABILITY_PROTOCOLS",
    "AsyncGetManyBackend",
    "AsyncMemberStatusBackend",
    "AsyncRenewManyBackend",
    "AsyncReportManyBackend",
    "AsyncStorageBackend",
    "InlineBackend",
    "as_async_backend",
]

_OPERATIONS = ("server_time", "compare_and_set", "renew", "release", "get")


@runtime_checkable
class AsyncStorageBackend(Protocol):
    """A store of lease records, one per key, with coroutine operations (atomic per key)."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        """The optional abilities of this backend."""
        ...

    async def server_time(self) -> datetime:
        """The store's current time, timezone-aware UTC: the only clock expiry is judged by."""
        ...

    async def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        """As :meth:`StorageBackend.compare_and_set <mongoelector.backends.StorageBackend>`."""
        ...

    async def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        """As ``StorageBackend.renew``."""
        ...

    async def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        """As ``StorageBackend.release``."""
        ...

    async def get(self, key: str) -> LeaseRecord | None:
        """As ``StorageBackend.get``."""
        ...


@runtime_checkable
class AsyncMemberStatusBackend(Protocol):
    """Async storage of electors' status reports (the ``MEMBER_STATUS`` capability)."""

    async def report_member(self, member: MemberRecord) -> None:
        """As ``MemberStatusBackend.report_member``."""
        ...

    async def members(self, key: str) -> list[MemberRecord]:
        """As ``MemberStatusBackend.members``."""
        ...


@runtime_checkable
class AsyncRenewManyBackend(Protocol):
    """Async renewals of many holdings in one call (the ``RENEW_MANY`` capability)."""

    async def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        """As ``RenewManyBackend.renew_many``."""
        ...


@runtime_checkable
class AsyncGetManyBackend(Protocol):
    """Async reads of many keys in one call (the ``GET_MANY`` capability)."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        """As ``GetManyBackend.get_many``."""
        ...


@runtime_checkable
class AsyncReportManyBackend(Protocol):
    """Async status reports of many electors in one call (the ``REPORT_MANY`` capability)."""

    async def report_members(self, members: Sequence[MemberRecord]) -> None:
        """As ``ReportManyBackend.report_members``."""
        ...


#: The protocol class behind each optional capability, as async code calls it.
ASYNC_CAPABILITY_PROTOCOLS: Mapping[Capability, type] = {
    Capability.MEMBER_STATUS: AsyncMemberStatusBackend,
    Capability.RENEW_MANY: AsyncRenewManyBackend,
    Capability.GET_MANY: AsyncGetManyBackend,
    Capability.REPORT_MANY: AsyncReportManyBackend,
}


class InlineBackend:
    """A sync backend seen as an :class:`AsyncStorageBackend`, called inline on the event loop.

    Each coroutine calls the wrapped method directly and returns its result,
    without a thread and without suspending, so it suits only stores that
    never block (:class:`~mongoelector.backends.memory.MemoryBackend`, test
    doubles). A store that waits on the network would stall the event loop for
    the length of every call. The optional calls (member status, batches)
    are there, and declared, only when the wrapped backend has them.
    """

    def __init__(self, backend: StorageBackend) -> None:
        missing = missing_protocol_methods(backend)
        if missing:
            raise TypeError(
                f"backend must implement the StorageBackend protocol; {backend!r} "
                f"is missing: {', '.join(missing)}"
            )
        self._backend = backend

    @property
    def wrapped(self) -> StorageBackend:
        """The sync backend this adapter calls."""
        return self._backend

    @property
    def capabilities(self) -> frozenset[Capability]:
        return implemented_capabilities(self._backend, CAPABILITY_PROTOCOLS)

    async def server_time(self) -> datetime:
        return self._backend.server_time()

    async def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        return self._backend.compare_and_set(request, force=force)

    async def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return self._backend.renew(key, owner, token, ttl)

    async def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        return self._backend.release(key, owner, token=token, force=force)

    async def get(self, key: str) -> LeaseRecord | None:
        return self._backend.get(key)

    async def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        if not isinstance(self._backend, RenewManyBackend):
            raise TypeError(f"{self._backend!r} does not renew in batches")
        return self._backend.renew_many(items)

    async def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        if not isinstance(self._backend, GetManyBackend):
            raise TypeError(f"{self._backend!r} does not read in batches")
        return self._backend.get_many(keys)

    async def report_member(self, member: MemberRecord) -> None:
        self._member_backend().report_member(member)

    async def report_members(self, members: Sequence[MemberRecord]) -> None:
        if not isinstance(self._backend, ReportManyBackend):
            raise TypeError(f"{self._backend!r} does not report status in batches")
        self._backend.report_members(members)

    async def members(self, key: str) -> list[MemberRecord]:
        return self._member_backend().members(key)

    def _member_backend(self) -> MemberStatusBackend:
        if not isinstance(self._backend, MemberStatusBackend):
            raise TypeError(f"{self._backend!r} does not store member status")
        return self._backend

    def __repr__(self) -> str:
        return f"InlineBackend({self._backend!r})"


def as_async_backend(backend: object, *, name: str = "backend") -> AsyncStorageBackend:
    """``backend`` as an :class:`AsyncStorageBackend`, else ``TypeError`` naming what is wrong.

    A backend whose operations are all coroutine functions is returned as it
    is; one whose operations are all plain methods is wrapped in
    :class:`InlineBackend`. A mix of the two is refused, and so is the sync
    ``MongoBackend``, which would block the event loop (``TypeError`` naming
    ``AsyncMongoBackend``).
    """
    missing = missing_protocol_methods(backend)
    if missing:
        raise TypeError(
            f"{name} must implement the StorageBackend or AsyncStorageBackend protocol; "
            f"{backend!r} is missing: {', '.join(missing)}"
        )
    is_async = [
        inspect.iscoroutinefunction(getattr(backend, operation)) for operation in _OPERATIONS
    ]
    if all(is_async):
        return cast("AsyncStorageBackend", backend)
    if isinstance(backend, MongoBackend):
        raise TypeError(
            f"{name} {backend!r} is the sync MongoBackend: each call would block the event "
            f"loop for a round trip to MongoDB (and for seconds during a failover). Use "
            f"mongoelector.backends.AsyncMongoBackend on a pymongo AsyncMongoClient database "
            f"instead, e.g. AsyncMongoBackend(pymongo.AsyncMongoClient(uri)['app'])"
        )
    if not any(is_async):
        return InlineBackend(cast("StorageBackend", backend))
    mixed = [op for op, flag in zip(_OPERATIONS, is_async, strict=True) if flag]
    raise TypeError(
        f"{name} {backend!r} mixes coroutine and plain operations (coroutines: "
        f"{', '.join(mixed)}); all five must be one or the other"
    )
