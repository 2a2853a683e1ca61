"""``AsyncLock``: the distributed lock for asyncio code (the asyncio driver of ``Lock``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from collections.abc import Mapping as _Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mongoelector._common.batches import renews_in_batches
from mongoelector._common.lock_base import AcquireRun, LockBase
from mongoelector._common.outcomes import Failure
from mongoelector._common.stores import async_store
from mongoelector._listeners import EventListener
from mongoelector.aio._glue import perform, run_callback
from mongoelector.aio._time import sleep
from mongoelector.aio.renewer import AsyncRenewer
from mongoelector.backends.async_protocol import AsyncRenewManyBackend, AsyncStorageBackend
from mongoelector.backends.protocol import LeaseRecord, StorageBackend
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.events import Renew
from mongoelector.core.lease import Holding
from mongoelector.core.lock_machine import WaitThenCall
from mongoelector.core.renewal import Lost, Renewal
from mongoelector.errors import BackendError

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.client_session import AsyncClientSession
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from mongoelector.fencing import AsyncFencedCollection

__all__ = ["AsyncLock"]

logger = logging.getLogger("mongoelector.lock")


DocT = TypeVar("DocT", bound="_Mapping[str, Any]")


class AsyncLock(LockBase[AsyncStorageBackend]):
    """A lease lock on ``key`` for asyncio code: :class:`~mongoelector.Lock` with coroutines.

    Same settings, tokens and promises as ``Lock``, including :attr:`lost`,
    :meth:`ensure`, :attr:`valid_until` and :meth:`remaining`. ``backend`` is
    an :class:`~mongoelector.backends.async_protocol.AsyncStorageBackend`, or
    a sync backend that never blocks (``MemoryBackend``), whose calls then run
    inline on the event loop, or an ``AsyncDatabase``
    (``pymongo.AsyncMongoClient(uri)["app"]``), wrapped in
    ``AsyncMongoBackend(db, clock=clock)`` with its defaults. A sync pymongo
    ``Database`` (or mongomock's) is refused with ``TypeError``: its calls would
    block the event loop. Waits between tries go through ``clock``: under
    a :class:`~mongoelector.testing.FakeClock` they advance it, as ``Lock``
    does.

    With ``auto_renew=True`` an asyncio task (named
    ``mongoelector-renew-<key>``) renews the holding every ``retry_period``
    from acquire until release, retrying failed renewals until the renew
    deadline, with the same rules as ``Lock``'s renewer (a task of the running loop, not
    the sync Lock's process scheduler). If the holding
    ends without :meth:`release`, :attr:`lost` is set and ``on_lost()`` (a
    plain function or a coroutine function) is called once, with no
    arguments; one that raises is logged. It may call this lock's methods,
    and :meth:`release` never awaits it. The task ends on release, on loss,
    and when it is cancelled (say, by ``asyncio.run`` at shutdown); a
    cancelled renewer leaves the holding to lapse at its deadline. On a
    backend that declares ``Capability.RENEW_MANY`` the renewals of the
    loop's locks on that backend object go out together, one ``renew_many``
    call for all those falling due within half a ``retry_period``, as for
    ``Lock``.

    Cancellation: if the task running :meth:`acquire` is cancelled while a
    store call is in flight (so the lock may have been taken), the lock
    releases whatever this object may hold before the cancellation
    propagates; if that release fails, the object remembers, and a later
    :meth:`release` frees it. Cancelled between tries, nothing is held.
    """

    __slots__ = (
        "_callbacks",
        "_renewer",
    )

    def __init__(
        self,
        key: str,
        backend: AsyncStorageBackend | StorageBackend | AsyncDatabase[Any],
        *,
        ttl: float = 600,
        clock: Clock | None = None,
        renew_deadline: float | None = None,
        auto_renew: bool = False,
        on_lost: Callable[[], Any] | None = None,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        super().__init__(
            key,
            async_store(backend, clock=clock),
            ttl=ttl,
            clock=clock,
            renew_deadline=renew_deadline,
            auto_renew=auto_renew,
            on_lost=on_lost,
            event_listeners=event_listeners,
        )
        self._renewer: AsyncRenewer | None = None
        self._callbacks: set[asyncio.Task[None]] = set()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._renewer = None  # the parent's: it runs only there
        self._callbacks = set()

    @property
    def renewer(self) -> asyncio.Task[None] | None:
        """The task renewing the current holding (``auto_renew``), while there is one."""
        self._check_fork()
        with self._mutex:
            renewer = self._renewer
        return renewer.task if renewer is not None and not renewer.task.done() else None

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
        try:
            while (call := run.pending) is not None:
                if isinstance(call, WaitThenCall):
                    await sleep(self._clock, call.until - self._clock.monotonic())
                if not run.claim():
                    continue
                started_at = self._clock.monotonic()
                try:
                    outcome = await perform(self._backend, self._request(call.action), call.action)
                except asyncio.CancelledError:
                    run.close()
                    await self._abandon()
                    raise
                run.feed(call.action, started_at, outcome)
            return run.finish()
        finally:
            run.close()

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
        """Free the lock; ``True`` if a live holding ended in the store (see ``Lock.release``).

        With ``auto_renew`` it awaits a renew call in flight (whose reply is
        then not trusted), never an ``on_lost`` the renewer task is awaiting:
        when it returns, no renew of the released holding is in flight or will
        be sent, and the renewer task has ended unless it is still in
        ``on_lost`` (it ends once that returns). ``on_lost`` may call it too.
        """
        plan = self._plan_release(force)
        with self._mutex:
            renewer, self._renewer = self._renewer, None
        if renewer is not None:
            try:
                await renewer.stop()
            except asyncio.CancelledError:
                if plan is not None:
                    self._release_failed(plan, plan.token)
                raise
        if plan is None:
            return False
        token = plan.token
        try:
            if not plan.force and token is None:
                token = self._token_in(await self._backend.get(self._key))
                if token is None:
                    return False
            return await self._backend.release(self._key, plan.owner, token=token, force=plan.force)
        except BaseException as error:
            # A store error, a backend's bug (taken as an ambiguous outcome, as acquire
            # takes it), or a cancellation mid-call: the release may not have landed, and
            # the next release() sends it again.
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

    async def _hold_until(self, ttl: float) -> bool:
        """Stop renewing and leave the holding to expire ``ttl`` seconds from now, without
        releasing it (see ``Lock._hold_until``)."""
        renewal = self._trusted_renewal()
        with self._mutex:
            renewer, self._renewer = self._renewer, None
        if renewer is not None:
            await renewer.stop()
        if renewal is None:
            return False
        try:
            record = await self._backend.renew(self._key, self._uuid, renewal.token, ttl)
        finally:
            self._leave_to_lapse(renewal.token, ttl)
        return record is not None

    # --- the holding's life cycle: the renewer task -------------------------------------

    def _took(self, holding: Holding, run: AcquireRun | None = None) -> None:
        with self._mutex:
            previous, self._renewer = self._renewer, None
            super()._took(holding, run)
            renewal = self._renewal
            if self._auto_renew and renewal is not None:
                batch_with = self._backend if renews_in_batches(self._backend) else None
                self._renewer = AsyncRenewer(
                    key=self._key,
                    clock=self._clock,
                    mutex=self._mutex,
                    renewal=renewal,
                    holder=self,
                    batch_with=cast("AsyncRenewManyBackend | None", batch_with),
                    owner=self._uuid,
                    ttl=self._ttl,
                )
        if previous is not None:
            previous.request_stop()  # its holding is replaced: it ends at its next step

    async def _renew(self, action: Renew) -> LeaseRecord | Failure | None:
        outcome = await perform(self._backend, self._request(), action)
        assert outcome is None or isinstance(outcome, (LeaseRecord, Failure))
        return outcome

    async def _renewer_lost(self, renewal: Renewal, lost: Lost) -> None:
        """The renewer recorded the loss of ``renewal``'s holding: tell the listeners, await
        ``on_lost``."""
        self._monitor.lost(lost.token, lost.reason, now=self._clock.monotonic())
        await self._call_on_lost()

    def _after_loss(self, renewal: Renewal) -> None:
        """A loss found outside the renewer (``touch``, ``ensure``): stop it, fire ``on_lost``."""
        with self._mutex:
            renewer = self._renewer if self._renewal is renewal else None
        if renewer is not None:
            renewer.request_stop()
        if self._on_lost is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._call_on_lost_without_a_loop()
            return
        task = loop.create_task(self._call_on_lost(), name=f"mongoelector-on-lost-{self._key}")
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _call_on_lost(self) -> None:
        await run_callback(self._on_lost, "on_lost", log=logger, carrying_on="the lock stays lost")

    def _call_on_lost_without_a_loop(self) -> None:
        assert self._on_lost is not None
        try:
            result = self._on_lost()
        except Exception:
            logger.exception("on_lost callback %r raised; the lock stays lost", self._on_lost)
            return
        if inspect.iscoroutine(result):
            result.close()
            logger.warning(
                "lock %r: on_lost coroutine not run (the loss was found outside an event loop)",
                self._key,
            )

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
        self._check_fork()
        record = await self._backend.get(self._key)
        return record is not None and record.is_held_by(
            self._uuid, await self._backend.server_time()
        )

    async def status(self) -> dict[str, Any]:
        """The 1.x status dict (a coroutine here: ``lock_owned`` reads the store)."""
        return self._status(owned=await self.owned())

    async def _transaction_refused(self, token: int, started_at: float) -> None:
        """``fenced_transaction`` proved the store no longer has the holding of ``token``."""
        self._refused_elsewhere(token, started_at)

    def fenced(
        self, collection: AsyncCollection[DocT], *, field: str = "_fence"
    ) -> AsyncFencedCollection[DocT]:
        """``collection`` with its writes fenced by this lock's token (see docs/locks.md).

        Each write calls :meth:`ensure` first, so it raises :class:`LockLost`
        before anything is sent once the holding is no longer trusted.
        """
        from mongoelector.fencing import AsyncFencedCollection  # noqa: PLC0415 - pymongo on use

        return AsyncFencedCollection(collection, self.ensure, key=self._key, field=field)

    def fenced_transaction(
        self, client: AsyncMongoClient[Any]
    ) -> AbstractAsyncContextManager[AsyncClientSession]:
        """The asyncio twin of ``Lock.fenced_transaction`` (``async with``).

        ``client`` is a pymongo ``AsyncMongoClient``.

        The backend must be an ``AsyncMongoBackend``; see ``docs/locks.md``,
        "Transactions".
        """
        from mongoelector.fencing.transaction import async_fenced_transaction  # noqa: PLC0415

        return async_fenced_transaction(self, client)

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
