"""``Lock``: a distributed lock over any storage backend (the sync driver)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from collections.abc import Mapping as _Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mongoelector._common.batches import renews_in_batches
from mongoelector._common.lock_base import AcquireRun, LockBase
from mongoelector._common.stores import sync_store
from mongoelector._listeners import EventListener
from mongoelector._sync.callbacks import run_callback
from mongoelector._sync.calls import Failure, perform
from mongoelector.backends.protocol import LeaseRecord, RenewManyBackend, StorageBackend
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.events import Renew, TryAcquire
from mongoelector.core.lease import Holding
from mongoelector.core.lock_machine import Call, WaitThenCall
from mongoelector.core.renewal import Renewal
from mongoelector.errors import BackendError

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.database import Database
    from pymongo.synchronous.client_session import ClientSession

    from mongoelector._sync.renewer import Renewer
    from mongoelector.fencing import FencedCollection

__all__ = ["Lock"]

logger = logging.getLogger("mongoelector.lock")


DocT = TypeVar("DocT", bound="_Mapping[str, Any]")


class Lock(LockBase[StorageBackend]):
    """A lease lock on ``key`` in ``backend``, held for ``ttl`` seconds unless renewed.

    The holder trusts its holding for ``renew_deadline`` seconds (default
    ``ttl * 2/3``) from the start of its last successful acquire or
    :meth:`touch`; after that :attr:`token` is ``None`` even if the store has
    not expired the lease yet. Every acquisition gets a fencing token greater
    than any earlier one for this key. A lock object is not tied to a thread:
    any thread may release what another acquired. In a forked child the
    copied object holds nothing of its parent's: ``ensure()`` raises,
    :meth:`release` sends nothing for the parent's holding, and it takes a
    new :attr:`uuid`, so its :meth:`acquire` competes with the parent.

    With ``auto_renew=True`` the process's scheduler renews the holding every
    ``retry_period`` (``ttl * 2/15`` by default) from acquire until release,
    retrying failed renewals until the renew deadline; all the locks of a
    process share its few threads, whatever their number. If the holding
    ends without :meth:`release` (the deadline passed, or the store no
    longer has it) the :attr:`lost` event is set and ``on_lost()`` is called
    once, with no arguments, on the scheduler's callback thread (as are the
    event listeners told about renewals); a callback that raises is logged.
    It may call this lock's methods, :meth:`release` never waits for it, and
    while it runs no other holding's renewal waits for it. On a backend that
    declares ``Capability.RENEW_MANY`` the renewals of the process's locks on
    that backend object go out together, one ``renew_many`` call for all
    those falling due within half a ``retry_period`` (see docs/backends.md,
    "Batched renewals"); each lock still renews, and is lost, on its own.

    ``backend`` is a :class:`~mongoelector.backends.StorageBackend`, or a
    pymongo ``Database`` (a mongomock one too), which is wrapped in
    ``MongoBackend(db, clock=clock)`` with that backend's defaults (locks in
    the ``mongolocker`` collection). Anything else is a ``TypeError`` naming
    the methods it lacks; an ``AsyncDatabase`` is refused, naming ``AsyncLock``.
    """

    __slots__ = (
        "_renewer",
        "_retired",
    )

    def __init__(
        self,
        key: str,
        backend: StorageBackend | Database[Any],
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
            sync_store(backend, clock=clock),
            ttl=ttl,
            clock=clock,
            renew_deadline=renew_deadline,
            auto_renew=auto_renew,
            on_lost=on_lost,
            event_listeners=event_listeners,
        )
        self._renewer: Renewer | None = None
        # stopped inside a user callback, not ended yet (a tuple: most locks have none)
        self._retired: tuple[Renewer, ...] = ()

    # --- operations ---------------------------------------------------------------

    def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        step: float = 0.25,
        force: bool = False,
    ) -> bool:
        """Take the lock and return ``True``.

        Non-blocking: raise :class:`LockExists` if someone holds it. Blocking:
        retry every ``step`` seconds, raising :class:`AcquireTimeout` after
        ``timeout`` seconds (never when ``None``). ``force`` takes the lock even
        from a live holder. Store failures raise a
        :class:`~mongoelector.errors.BackendError`; if a write may have applied,
        :meth:`release` still frees it (also after a ``KeyboardInterrupt`` mid-call).
        """
        run = self._begin_acquire(blocking, timeout, step, force)
        try:
            # ``run.pending``, written out: the decision while it is a call or a wait.
            while isinstance(call := run.decision, (Call, WaitThenCall)):
                if isinstance(call, WaitThenCall):
                    self._clock.sleep(call.until - self._clock.monotonic())
                if not run.claim():
                    continue
                started_at = self._clock.monotonic()
                try:
                    outcome = perform(self._backend, self._request(call.action), call.action)
                except BaseException:
                    # Not a store error (perform returns those): KeyboardInterrupt or
                    # SystemExit mid-call. A write may have landed: release() frees it.
                    if isinstance(call.action, TryAcquire):
                        self._mark_maybe_held()
                    raise
                run.feed(call.action, started_at, outcome)
            return run.finish()
        finally:
            run.close()

    def release(self, force: bool = False) -> bool:
        """Free the lock; return ``True`` if a live holding ended in the store.

        Without ``force`` only this object's own holding is released (a no-op
        returning ``False`` when it holds nothing). ``force`` frees the lock
        whoever holds it. This object stops trusting its holding before the
        store is asked, so even if the call fails it no longer acts as holder;
        a failed call (whatever it raised) is sent again by the next release.

        Any thread may call it, not only the one that acquired, and so may the
        callbacks (``on_lost``, event listeners). With ``auto_renew`` it waits
        for a renew call in flight (whose reply is then not trusted), never for
        a callback the renewer is running: when it returns, no renew of the
        released holding is in flight or will be sent, and the renewer has
        ended unless it is still running a callback (it ends once that
        returns). Releasing never sets :attr:`lost`.
        """
        plan = self._plan_release(force)
        if self._auto_renew:  # without it, no renewer is ever started
            with self._mutex:
                renewer, self._renewer = self._renewer, None
            self._retire(renewer)
        if plan is None:
            return False
        token = plan.token
        try:
            if not plan.force and token is None:
                token = self._token_in(self._backend.get(self._key))
                if token is None:
                    return False
            return self._backend.release(self._key, plan.owner, token=token, force=plan.force)
        except BaseException as error:
            # A store error, a backend's bug (taken as an ambiguous outcome, as acquire
            # takes it), or KeyboardInterrupt/SystemExit mid-call: the release may not
            # have landed, and the next release() sends it again.
            self._release_failed(plan, token, error)
            raise

    def touch(self) -> datetime | None:
        """Renew the holding for another ``ttl``; the new expiry (server time), or ``None``.

        ``None`` means this object holds nothing, or its holding is lost: the
        renew deadline passed, or the store no longer has it (it expired and was
        taken, or was force-released); :attr:`lost` is set then.
        """
        renewal = self._trusted_renewal()
        if renewal is None:
            return None
        started_at = self._clock.monotonic()
        try:
            record = self._backend.renew(self._key, self._uuid, renewal.token, self._ttl)
        except BackendError as error:
            self._touch_failed(renewal, error)
            raise
        return self._touched(renewal, started_at, record)

    def _hold_until(self, ttl: float) -> bool:
        """Stop renewing and leave the holding to expire ``ttl`` seconds from now (server
        time) without releasing it; ``False`` if there was no trusted holding or the store
        refused the renew. For ``mongoelector.jobs`` (its ``at_least``)."""
        renewal = self._trusted_renewal()
        with self._mutex:
            renewer, self._renewer = self._renewer, None
        self._retire(renewer)
        if renewal is None:
            return False
        try:
            record = self._backend.renew(self._key, self._uuid, renewal.token, ttl)
        finally:
            self._leave_to_lapse(renewal.token, ttl)
        return record is not None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the renewer has caught up with the clock; for tests with a fake clock.

        After ``clock.advance(...)``, this returns once the renewer has done
        everything that time calls for (renewed, or given the holding up and
        ended) and sleeps again, so a test can then assert on the outcome.
        A renewer that was stopped while it ran a callback (``on_lost`` that
        released or re-acquired, say) is waited for until that callback has
        returned and the renewer has ended. Returns ``True`` at once when no
        renewer runs, and ``False`` only if ``timeout`` (real seconds, for
        each renewer waited for) passed first.
        """
        self._check_fork()
        with self._mutex:
            renewers = [*self._retired, *([self._renewer] if self._renewer else [])]
        if not all(renewer.wait_idle(timeout) for renewer in renewers):
            return False
        with self._mutex:
            self._retired = tuple(renewer for renewer in self._retired if not renewer.ended)
        return True

    def get_current(self) -> dict[str, Any] | None:
        """The stored record of this key in the 1.x document layout, or ``None``."""
        record = self._backend.get(self._key)
        return status_docs.lock_document(record) if record is not None else None

    def locked(self) -> bool:
        """True if anyone holds the lock now (by server time)."""
        record = self._backend.get(self._key)
        return record is not None and record.is_held(self._backend.server_time())

    def owned(self) -> bool:
        """True if the store says this object holds the lock now (by server time)."""
        self._check_fork()
        record = self._backend.get(self._key)
        return record is not None and record.is_held_by(self._uuid, self._backend.server_time())

    @property
    def status(self) -> dict[str, Any]:
        """The 1.x status dict (``uuid, key, ttl, timestamp, host, pid, lock_owned, ...``)."""
        return self._status(owned=self.owned())

    # --- the holding's life cycle: the renewer ----------------------------------------

    def _after_fork(self) -> None:
        super()._after_fork()
        self._renewer = None  # the parent's: it runs only there
        self._retired = ()

    def _took(self, holding: Holding, run: AcquireRun | None = None) -> None:
        if not self._auto_renew:  # no renewer to stop or start
            super()._took(holding, run)
            return
        with self._mutex:
            previous, self._renewer = self._renewer, None
        self._retire(previous)
        with self._mutex:
            super()._took(holding, run)
            renewal = self._renewal
            if renewal is not None:
                # Imported here: the renewer and the process's scheduler (threads) are
                # loaded by the first auto-renewed holding, not by ``import``.
                from mongoelector._sync.renewer import Renewer  # noqa: PLC0415

                batch_with = self._backend if renews_in_batches(self._backend) else None
                self._renewer = Renewer(
                    key=self._key,
                    clock=self._clock,
                    mutex=self._mutex,
                    renewal=renewal,
                    holder=self,
                    batch_with=cast("RenewManyBackend | None", batch_with),
                    owner=self._uuid,
                    ttl=self._ttl,
                )
                self._renewer.start()

    def _retire(self, renewer: Renewer | None) -> None:
        """Stop ``renewer`` (no longer the lock's); keep it for :meth:`wait_idle` if still in a
        callback."""
        if renewer is None:
            return
        renewer.stop()
        if not renewer.ended:
            with self._mutex:
                self._retired = (*(r for r in self._retired if not r.ended), renewer)

    def _renew(self, action: Renew) -> LeaseRecord | Failure | None:
        outcome = perform(self._backend, self._request(), action)
        assert outcome is None or isinstance(outcome, (LeaseRecord, Failure))
        return outcome

    def _after_loss(self, renewal: Renewal) -> None:
        """Stop the lost holding's renewer and fire ``on_lost`` (once per holding).

        Stopping waits for a renew in flight, never for a callback; from the
        renewer's own callback it only asks. So it does for a loss the timer
        found at the deadline while the renewer's own renew was in flight: that
        renew may hang in the store, and ``on_lost`` must not wait for it.
        """
        with self._mutex:
            renewer = self._renewer if self._renewal is renewal else None
        if renewer is not None:
            if renewer.reporting_loss_here:
                renewer.request_stop()
            else:
                renewer.stop()
        run_callback(self._on_lost, "on_lost", log=logger, carrying_on="the lock stays lost")

    def _transaction_refused(self, token: int, started_at: float) -> None:
        """``fenced_transaction`` proved the store no longer has the holding of ``token``."""
        self._refused_elsewhere(token, started_at)

    def fenced(
        self, collection: Collection[DocT], *, field: str = "_fence"
    ) -> FencedCollection[DocT]:
        """``collection`` with its writes fenced by this lock's token (see docs/locks.md).

        Each write calls :meth:`ensure` first, so it raises :class:`LockLost`
        before anything is sent once the holding is no longer trusted.
        """
        from mongoelector.fencing import FencedCollection  # noqa: PLC0415 - pymongo on use

        return FencedCollection(collection, self.ensure, key=self._key, field=field)

    def fenced_transaction(self, client: MongoClient[Any]) -> AbstractContextManager[ClientSession]:
        """A context manager whose block's writes commit only while this lock is held.

        ``with lock.fenced_transaction(client) as session:`` starts a
        multi-document transaction on ``client`` (a pymongo ``MongoClient`` of
        a replica set or sharded cluster; the backend must be a
        ``MongoBackend``, else ``TypeError``); make the block's reads and
        writes with ``session=session``. When the block ends, a write to the
        lock record inside the same transaction checks that it still belongs
        to this acquisition and has not expired by the server's clock, and
        only then is the transaction committed. Not held (``ensure()``
        fails): ``LockLost`` before anything is sent.
        :class:`~mongoelector.errors.LockLost` and nothing committed if the
        check fails or a takeover conflicts; if the lock record, read then,
        is no longer this acquisition's, the holding is first marked lost as
        on a refused renewal (:attr:`lost`, ``on_lost``, listeners);
        :class:`~mongoelector.errors.AmbiguousOutcome` if the commit's
        outcome is unknown; an exception of the block aborts the transaction
        and goes on. Never retried. See ``docs/locks.md``, "Transactions".
        """
        from mongoelector.fencing.transaction import fenced_transaction  # noqa: PLC0415

        return fenced_transaction(self, client)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
