"""``AsyncLock``: the distributed lock for asyncio code (the asyncio driver of ``Lock``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

from mongoelector._common.lock_base import LockBase
from mongoelector.aio._glue import perform
from mongoelector.aio._time import sleep
from mongoelector.backends.async_protocol import AsyncStorageBackend, as_async_backend
from mongoelector.backends.protocol import StorageBackend
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.lock_machine import WaitThenCall
from mongoelector.errors import BackendError
from mongoelector.monitoring import EventListener

__all__ = ["AsyncLock"]

logger = logging.getLogger("mongoelector.lock")


class AsyncLock(LockBase[AsyncStorageBackend]):
    """A lease lock on ``key`` for asyncio code: :class:`~mongoelector.Lock` with coroutines.

    Same settings, tokens and promises as ``Lock``, including :attr:`lost`,
    :meth:`ensure`, :attr:`valid_until` and :meth:`remaining`; there is no
    ``auto_renew`` (no background renewer) yet: renew long holdings with
    :meth:`touch`. ``backend`` is an
    :class:`~mongoelector.backends.async_protocol.AsyncStorageBackend`, or a
    sync backend that never blocks (``MemoryBackend``), whose calls then run
    inline on the event loop. Waits between tries go through ``clock``: under a
    :class:`~mongoelector.testing.FakeClock` they advance it, as ``Lock`` does.

    Cancellation: if the task running :meth:`acquire` is cancelled while a
    store call is in flight (so the lock may have been taken), the lock
    releases whatever this object may hold before the cancellation
    propagates; if that release fails, the object remembers, and a later
    :meth:`release` frees it. Cancelled between tries, nothing is held.
    """

    def __init__(
        self,
        key: str,
        backend: AsyncStorageBackend | StorageBackend,
        *,
        ttl: float = 600,
        clock: Clock | None = None,
        renew_deadline: float | None = None,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        super().__init__(
            key,
            as_async_backend(backend),
            ttl=ttl,
            clock=clock,
            renew_deadline=renew_deadline,
            event_listeners=event_listeners,
        )

    async def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        step: float = 0.25,
        force: bool = False,
    ) -> bool:
        """Take the lock and return ``True`` (see :meth:`mongoelector.Lock.acquire`).

        Non-blocking: raise ``LockExists`` if someone holds it. Blocking: retry
        every ``step`` seconds, raising ``AcquireTimeout`` after ``timeout``
        seconds (never when ``None``). ``force`` takes the lock even from a
        live holder; a cancelled forced acquire leaves this object holding
        nothing.
        """
        run = self._begin_acquire(blocking, timeout, step, force)
        while (call := run.pending) is not None:
            if isinstance(call, WaitThenCall):
                await sleep(self._clock, call.until - self._clock.monotonic())
            started_at = self._clock.monotonic()
            try:
                outcome = await perform(self._backend, self._request(), call.action)
            except asyncio.CancelledError:
                await self._abandon()
                raise
            run.feed(call.action, started_at, outcome)
        return run.finish()

    async def _abandon(self) -> None:
        """An acquire was cancelled mid-call: free whatever it may have taken."""
        self._forget_holding()
        try:
            await self.release()
        except BackendError as error:
            logger.warning(
                "lock %r: release after a cancelled acquire failed (release() retries): %s",
                self._key,
                error,
            )

    async def release(self, force: bool = False) -> bool:
        """Free the lock; ``True`` if a live holding ended in the store (see ``Lock.release``)."""
        plan = self._plan_release(force)
        if plan is None:
            return False
        token = plan.token
        try:
            if not plan.force and token is None:
                token = self._token_in(await self._backend.get(self._key))
                if token is None:
                    return False
            return await self._backend.release(self._key, plan.owner, token=token, force=plan.force)
        except (BackendError, asyncio.CancelledError) as error:
            self._release_failed(plan, token, error)
            raise

    async def touch(self) -> datetime | None:
        """Renew the holding for another ``ttl``; the new expiry (server time), or ``None``.

        ``None`` means this object holds nothing, or its holding is lost (the
        renew deadline passed, or the store no longer has it); :attr:`lost` is
        set then.
        """
        renewal = self._trusted_renewal()
        if renewal is None:
            return None
        started_at = self._clock.monotonic()
        try:
            record = await self._backend.renew(self._key, self._uuid, renewal.token, self._ttl)
        except BackendError as error:
            self._touch_failed(renewal, error)
            raise
        return self._touched(renewal, started_at, record)

    async def get_current(self) -> dict[str, Any] | None:
        """The stored record of this key in the 1.x document layout, or ``None``."""
        record = await self._backend.get(self._key)
        return status_docs.lock_document(record) if record is not None else None

    async def locked(self) -> bool:
        """True if anyone holds the lock now (by server time)."""
        record = await self._backend.get(self._key)
        return record is not None and record.is_held(await self._backend.server_time())

    async def owned(self) -> bool:
        """True if the store says this object holds the lock now (by server time)."""
        record = await self._backend.get(self._key)
        return record is not None and record.is_held_by(
            self._uuid, await self._backend.server_time()
        )

    async def status(self) -> dict[str, Any]:
        """The 1.x status dict (a coroutine here: ``lock_owned`` reads the store)."""
        return self._status(owned=await self.owned())

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
