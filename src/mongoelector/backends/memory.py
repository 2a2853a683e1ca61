"""An in-process backend whose server time is an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from mongoelector._validation import check_key, check_owner, check_seconds
from mongoelector.backends.protocol import (
    EMPTY_METADATA,
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
)
from mongoelector.backends.validation import (
    check_keys,
    check_member,
    check_members,
    check_renew_items,
    check_request,
)
from mongoelector.clock import Clock, SystemClock

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Lease records in this process's memory, safe to share between threads.

    Server time is ``clock.now()`` (the real clock by default), so a
    :class:`~mongoelector.testing.FakeClock` makes every expiry deterministic.
    Coordinates only the threads of one process; it never raises
    :class:`~mongoelector.errors.BackendError`.
    """

    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.MEMBER_STATUS,
            Capability.RENEW_MANY,
            Capability.GET_MANY,
            Capability.REPORT_MANY,
        }
    )

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._mutex = threading.Lock()
        self._records: dict[str, LeaseRecord] = {}
        # The last token of each key whose record was deleted; a key with a record has its
        # last token there (every grant writes one, and renew and release keep it).
        self._deleted_tokens: dict[str, int] = {}
        self._members: dict[tuple[str, str], MemberRecord] = {}

    @property
    def clock(self) -> Clock:
        """The clock that is this backend's server time."""
        return self._clock

    def server_time(self) -> datetime:
        return self._clock.now()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        check_request(request)
        with self._mutex:
            now = self._clock.now()
            current = self._records.get(request.key)
            if current is not None and current.is_held(now) and not force:
                return CasResult(acquired=False, record=current)
            token = 1 + max(
                current.token if current is not None else 0,
                self._deleted_tokens.get(request.key, 0),
            )
            record = LeaseRecord(
                key=request.key,
                owner=request.owner,
                token=token,
                acquired_at=now,
                expires_at=now + timedelta(seconds=request.ttl),
                host=request.host,
                pid=request.pid,
                metadata=dict(request.metadata) if request.metadata else EMPTY_METADATA,
                acquisition=request.acquisition,
            )
            self._records[request.key] = record
            return CasResult(acquired=True, record=record)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        check_key(key)
        check_owner(owner)
        seconds = check_seconds(ttl, name="ttl")
        with self._mutex:
            return self._renew_locked(key, owner, token, seconds, self._clock.now())

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        """Every renewal under one hold of the lock (one instant of server time for all)."""
        checked = check_renew_items(items)
        with self._mutex:
            now = self._clock.now()
            return [
                self._renew_locked(item.key, item.owner, item.token, float(item.ttl), now)
                for item in checked
            ]

    def _renew_locked(
        self, key: str, owner: str, token: int, seconds: float, now: datetime
    ) -> LeaseRecord | None:
        current = self._records.get(key)
        if current is None or current.owner != owner or current.token != token:
            return None
        renewed = replace(current, expires_at=now + timedelta(seconds=seconds))
        self._records[key] = renewed
        return renewed

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        check_key(key)
        if not force:
            check_owner(owner)
        with self._mutex:
            current = self._records.get(key)
            if current is None or current.owner is None:
                return False
            if not force and (
                current.owner != owner or (token is not None and current.token != token)
            ):
                return False
            was_held = current.is_held(self._clock.now())
            self._records[key] = replace(current, owner=None)
            return was_held

    def get(self, key: str) -> LeaseRecord | None:
        check_key(key)
        with self._mutex:
            return self._records.get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        """Every key's record, read under one hold of the lock (one snapshot)."""
        distinct = check_keys(keys)
        with self._mutex:
            return {key: self._records.get(key) for key in distinct}

    def delete(self, key: str) -> bool:
        """Remove the record of ``key`` (as an operator or a TTL index might).

        Fencing tokens still grow afterwards. Returns ``True`` if there was one.
        """
        check_key(key)
        with self._mutex:
            record = self._records.pop(key, None)
            if record is None:
                return False
            self._deleted_tokens[key] = max(record.token, self._deleted_tokens.get(key, 0))
            return True

    def report_member(self, member: MemberRecord) -> None:
        check_member(member)
        with self._mutex:
            stamped = replace(member, timestamp=self._clock.now())
            self._members[(member.key, member.uuid)] = stamped

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        """Every report, stored under one hold of the lock (one timestamp)."""
        checked = check_members(members)
        with self._mutex:
            now = self._clock.now()
            for member in checked:
                self._members[(member.key, member.uuid)] = replace(member, timestamp=now)

    def members(self, key: str) -> list[MemberRecord]:
        check_key(key)
        with self._mutex:
            now = self._clock.now()
            live = []
            for (member_key, uuid), member in list(self._members.items()):
                assert member.timestamp is not None
                if member.timestamp + timedelta(seconds=member.ttl) <= now:
                    del self._members[(member_key, uuid)]
                elif member_key == key:
                    live.append(member)
        live.sort(key=lambda m: m.timestamp or now, reverse=True)
        return live

    def __repr__(self) -> str:
        return f"MemoryBackend(clock={self._clock!r})"
