"""Async test doubles: a store whose calls can be held in flight, and a poll-by-poll driver."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemoryBackend,
)
from mongoelector.errors import BackendUnavailable
from mongoelector.testing import FakeClock


class GatedBackend:
    """An async backend over a MemoryBackend whose chosen operations can be held in flight.

    An operation named in ``held`` sets ``entered`` and does not return until
    ``gate`` is set; its effect on the store happens before that pause when
    ``apply_first`` (a reply slow to come back) or after it otherwise (a
    request slow to arrive). ``down`` makes every call raise
    ``BackendUnavailable`` before touching the store.
    """

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner
        self.held: set[str] = set()
        self.apply_first = True
        self.down = False
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls: Counter[str] = Counter()

    @property
    def capabilities(self) -> frozenset[Capability]:
        # No batch calls here (only the per-key calls can be held): a lock renews key by key.
        return self.inner.capabilities - {Capability.RENEW_MANY, Capability.GET_MANY}

    async def _call(self, name: str, effect: Callable[[], object]) -> object:
        self.calls[name] += 1
        if self.down:
            raise BackendUnavailable(f"{name}: store unreachable")
        if name not in self.held:
            return effect()
        result = effect() if self.apply_first else None
        self.entered.set()
        await self.gate.wait()
        return result if self.apply_first else effect()

    async def server_time(self) -> datetime:
        return self.inner.server_time()

    async def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        result = await self._call(
            "compare_and_set", lambda: self.inner.compare_and_set(request, force=force)
        )
        assert isinstance(result, CasResult)
        return result

    async def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        result = await self._call("renew", lambda: self.inner.renew(key, owner, token, ttl))
        assert result is None or isinstance(result, LeaseRecord)
        return result

    async def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        result = await self._call(
            "release", lambda: self.inner.release(key, owner, token=token, force=force)
        )
        return bool(result)

    async def get(self, key: str) -> LeaseRecord | None:
        self.calls["get"] += 1
        return self.inner.get(key)

    async def report_member(self, member: MemberRecord) -> None:
        self.inner.report_member(member)

    async def members(self, key: str) -> list[MemberRecord]:
        return self.inner.members(key)


async def poll_due(clock: FakeClock, electors: list[AsyncLeaderElector], until: float) -> None:
    """Advance the clock poll by poll, polling each elector when it is due, until ``until``."""
    while True:
        due = min(e.next_poll_at for e in electors)
        if due > until:
            clock.advance(until - clock.monotonic())
            return
        clock.advance(max(0.0, due - clock.monotonic()))
        for each in electors:
            if each.next_poll_at <= clock.monotonic():
                await each.poll()


def leaders(electors: list[AsyncLeaderElector]) -> list[AsyncLeaderElector]:
    return [e for e in electors if e.is_leader]
