"""Thin wrapping backends for the Lock-safety scenarios: replies that come late or never.

Each wrapper forwards to a real backend and can hold one kind of call back,
the way a slow network or a lost reply would, so a scenario can run every
interleaving it needs without a store fault. :class:`Wrapped` wraps a sync
backend for ``Lock`` and threads; :class:`AsyncWrapped` an async backend for
``AsyncLock`` and tasks.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import datetime
from typing import Any

from mongoelector.backends import Capability, CasResult, LeaseRecord, LeaseRequest, StorageBackend
from mongoelector.backends.async_protocol import AsyncStorageBackend
from mongoelector.errors import AmbiguousOutcome

#: Real seconds a scenario waits for another thread before it calls the run hung.
HANG_GUARD = 10.0


class Wrapped:
    """A backend wrapper that counts calls and can hold back or lose them.

    - ``lose_release``: the next ``release`` raises ``AmbiguousOutcome`` without
      being applied; :meth:`land_lost_releases` applies it later, as a delayed
      write would land.
    - ``hold_release``: the next ``release`` waits until :meth:`let_go` before
      it is applied and answered (a slow reply).
    - ``hold_cas``: the next ``compare_and_set`` waits until :meth:`let_go`.
    - ``lose_cas``: the next ``compare_and_set`` raises ``AmbiguousOutcome`` and is
      not applied; :meth:`land_lost_writes` applies it later.
    - ``hold_get``: the next ``get`` waits until :meth:`let_go`, then reads.
    - ``ambiguous``: set of operation names that apply, then raise
      ``AmbiguousOutcome`` (the reply was lost).
    """

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.lose_release = False
        self.lose_cas = False
        self.lost_cas: list[tuple[LeaseRequest, bool]] = []
        self.hold_release = False
        self.hold_cas = False
        self.hold_get = False
        self.ambiguous: set[str] = set()
        self.lost: list[tuple[str, str | None, int | None]] = []
        self.held = threading.Event()  # set while a call is being held back
        self._go = threading.Event()
        self._mutex = threading.Lock()

    @property
    def capabilities(self) -> Any:
        # No batch calls here (the switches act on the per-key calls): locks renew key by key.
        return self.inner.capabilities - {Capability.RENEW_MANY, Capability.GET_MANY}

    def let_go(self) -> None:
        self._go.set()

    def land_lost_releases(self) -> None:
        for key, owner, token in self.lost:
            self.inner.release(key, owner, token=token)
        self.lost.clear()

    def land_lost_writes(self) -> list[CasResult]:
        """Apply the compare_and_set calls that were lost in flight, as late writes would."""
        landed = [
            self.inner.compare_and_set(request, force=force) for request, force in self.lost_cas
        ]
        self.lost_cas.clear()
        return landed

    def _count(self, name: str) -> None:
        with self._mutex:
            self.calls[name] += 1

    def _wait(self) -> None:
        self.held.set()
        if not self._go.wait(HANG_GUARD):
            raise AssertionError("a held call was never let go")

    def server_time(self) -> datetime:
        return self.inner.server_time()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        self._count("compare_and_set")
        if self.lose_cas:
            self.lose_cas = False
            self.lost_cas.append((request, force))
            raise AmbiguousOutcome("compare_and_set: sent, the reply lost, still in flight")
        if self.hold_cas:
            self.hold_cas = False
            self._wait()
        result = self.inner.compare_and_set(request, force=force)
        if "compare_and_set" in self.ambiguous:
            raise AmbiguousOutcome("compare_and_set: the reply was lost")
        return result

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        self._count("renew")
        result = self.inner.renew(key, owner, token, ttl)
        if "renew" in self.ambiguous:
            raise AmbiguousOutcome("renew: the reply was lost")
        return result

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        self._count("release")
        if self.lose_release:
            self.lose_release = False
            self.lost.append((key, owner, token))
            raise AmbiguousOutcome("release: sent, and the reply was lost")
        if self.hold_release:
            self.hold_release = False
            self._wait()
        return self.inner.release(key, owner, token=token, force=force)

    def get(self, key: str) -> LeaseRecord | None:
        self._count("get")
        if self.hold_get:
            self.hold_get = False
            self._wait()
        return self.inner.get(key)


class AsyncWrapped:
    """The asyncio counterpart of :class:`Wrapped`, around an async backend.

    Same switches (``lose_release``, ``hold_release``, ``hold_cas``,
    ``ambiguous``), and ``hold_get`` (the next ``get`` waits until
    :meth:`let_go`; the read happens after), with :class:`asyncio.Event` for ``held`` and the go
    signal. Every call yields to the event loop once before it reaches the
    store, as a network call would, so tasks sharing a lock interleave inside
    their store calls. A held ``compare_and_set`` whose caller is cancelled
    before :meth:`let_go` is not applied then: it is kept in ``lost_cas`` and
    :meth:`land_lost_writes` applies it later (a request that arrives after
    its sender stopped waiting).
    """

    def __init__(self, inner: AsyncStorageBackend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.lose_release = False
        self.hold_release = False
        self.hold_cas = False
        self.hold_get = False
        self.ambiguous: set[str] = set()
        self.lost: list[tuple[str, str | None, int | None]] = []
        self.lost_cas: list[tuple[LeaseRequest, bool]] = []
        self.held = asyncio.Event()  # set while a call is being held back
        self._go = asyncio.Event()

    @property
    def capabilities(self) -> Any:
        # No batch calls here (the switches act on the per-key calls): locks renew key by key.
        return self.inner.capabilities - {Capability.RENEW_MANY, Capability.GET_MANY}

    def let_go(self) -> None:
        self._go.set()

    async def land_lost_releases(self) -> None:
        for key, owner, token in self.lost:
            await self.inner.release(key, owner, token=token)
        self.lost.clear()

    async def land_lost_writes(self) -> None:
        for request, force in self.lost_cas:
            await self.inner.compare_and_set(request, force=force)
        self.lost_cas.clear()

    async def _enter(self, name: str) -> None:
        self.calls[name] += 1
        await asyncio.sleep(0)

    async def _wait(self) -> None:
        self.held.set()
        try:
            await asyncio.wait_for(self._go.wait(), HANG_GUARD)
        except asyncio.TimeoutError:
            raise AssertionError("a held call was never let go") from None

    async def server_time(self) -> datetime:
        return await self.inner.server_time()

    async def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        await self._enter("compare_and_set")
        if self.hold_cas:
            self.hold_cas = False
            try:
                await self._wait()
            except asyncio.CancelledError:
                self.lost_cas.append((request, force))
                raise
        result = await self.inner.compare_and_set(request, force=force)
        if "compare_and_set" in self.ambiguous:
            raise AmbiguousOutcome("compare_and_set: the reply was lost")
        return result

    async def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        await self._enter("renew")
        result = await self.inner.renew(key, owner, token, ttl)
        if "renew" in self.ambiguous:
            raise AmbiguousOutcome("renew: the reply was lost")
        return result

    async def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        await self._enter("release")
        if self.lose_release:
            self.lose_release = False
            self.lost.append((key, owner, token))
            raise AmbiguousOutcome("release: sent, and the reply was lost")
        if self.hold_release:
            self.hold_release = False
            await self._wait()
        return await self.inner.release(key, owner, token=token, force=force)

    async def get(self, key: str) -> LeaseRecord | None:
        await self._enter("get")
        if self.hold_get:
            self.hold_get = False
            await self._wait()
        return await self.inner.get(key)
