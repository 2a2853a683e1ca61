"""``AsyncLeaderElector``: leader election for asyncio code (the asyncio driver)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from collections.abc import Mapping as _Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from mongoelector._common.batches import (
    Outcome,
    reads_in_batches,
    renews_in_batches,
    reports_in_batches,
)
from mongoelector._common.elector_base import BatchedLoop, ElectorBase
from mongoelector._common.outcomes import Failure
from mongoelector._common.stores import async_store
from mongoelector.aio import batches, reads, status
from mongoelector.aio._glue import TaskLock, perform, run_callback
from mongoelector.aio._time import wait_until
from mongoelector.aio.leadership import AsyncLeadership
from mongoelector.backends.async_protocol import (
    AsyncMemberStatusBackend,
    AsyncRenewManyBackend,
    AsyncStorageBackend,
)
from mongoelector.backends.protocol import (
    Capability,
    LeaseRecord,
    MemberRecord,
    StorageBackend,
)
from mongoelector.clock import Clock
from mongoelector.core.batching import RenewTiming
from mongoelector.core.elector_machine import Step
from mongoelector.core.events import Action, LeaderInfo, Observe, Renew
from mongoelector.core.renewal import Ended, Lost
from mongoelector.errors import BackendError
from mongoelector.monitoring import EventListener

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.client_session import AsyncClientSession
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from mongoelector.fencing import AsyncFencedCollection

__all__ = ["AsyncLeaderElector"]

logger = logging.getLogger("mongoelector.elector")


DocT = TypeVar("DocT", bound="_Mapping[str, Any]")


@dataclass(eq=False)
class _Loop:
    """One run of the polling loop, from ``start()`` to ``stop()``."""

    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    first_poll: asyncio.Event = field(default_factory=asyncio.Event)
    #: Replaced (after setting it) whenever ``in_callback`` or ``done`` changes.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[Any] | None = None
    stopped: bool = False
    #: The loop's task is inside a user callback (``stop()`` does not wait for it then).
    in_callback: bool = False
    #: The loop's task has left the loop.
    done: bool = False
    #: The loop in its store's renew group (a backend that renews in batches).
    batched: _Batched | None = None
    #: The clock's time the loop's task waits for, while it waits for its next poll.
    sleeping_until: float | None = None
    #: A batch took the waiting loop in: its renewal's outcome comes through this future.
    summoned: asyncio.Future[batches.Joined] | None = None
    #: A read batch took the waiting loop in: its record comes through this future.
    read_summoned: asyncio.Future[reads.Read] | None = None
    #: The loop's status report is queued in its status group, or in flight.
    status_queued: bool = False

    def set(self, *, in_callback: bool | None = None, done: bool | None = None) -> None:
        if in_callback is not None:
            self.in_callback = in_callback
        if done is not None:
            self.done = done
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class AsyncLeaderElector(ElectorBase[AsyncStorageBackend]):
    """Elects one leader among all electors of ``key``: ``LeaderElector`` for asyncio.

    Same settings, timing and promises as ``LeaderElector``, and the same
    state machine. ``backend`` is an
    :class:`~mongoelector.backends.async_protocol.AsyncStorageBackend`, or a
    sync backend that never blocks (``MemoryBackend``), called inline, or an
    ``AsyncDatabase``, wrapped in ``AsyncMongoBackend(db, clock=clock)`` with
    its defaults (a sync ``Database`` is refused with ``TypeError``, as it would
    block the event loop).

    The loop runs as an asyncio task. Callbacks may be plain functions or
    coroutine functions, which are awaited; they run one at a time, in the
    order their events happened, never while the elector holds its lock, so
    any callback may await :meth:`stop`, :meth:`release`, :meth:`start` or
    :meth:`poll`, from the loop's task or any other. The task that caused a
    callback (the loop's, or the caller of :meth:`poll`, :meth:`release` or
    :meth:`stop`) runs it before that call returns, unless a callback of this
    elector is running at that moment: then the call returns at once and the
    task running that callback runs the new ones next. Stale callbacks are
    skipped as in ``LeaderElector``. Keep callbacks short, since the loop's
    next renew waits for the callbacks it runs; long work belongs in
    :meth:`leadership`. A callback that raises is logged and the elector goes
    on. Cancelling the loop's task steps this node down (firing
    ``on_leader_loss``) and releases the lease, even if a store call was in
    flight.
    """

    __slots__ = (
        "_loop",
        "_poll_lock",
        "_starts",
        "_status_flight",
        "_task",
    )

    def __init__(
        self,
        key: str,
        backend: AsyncStorageBackend | StorageBackend | AsyncDatabase[Any],
        *,
        ttl: float = 15,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        follower_poll: float | None = None,
        clock: Clock | None = None,
        on_leader: Callable[[], Any] | None = None,
        on_leader_loss: Callable[[], Any] | None = None,
        on_loop: Callable[[], Any] | None = None,
        on_new_leader: Callable[[LeaderInfo], Any] | None = None,
        app_version: str | None = None,
        report_status: bool = True,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        super().__init__(
            key,
            async_store(backend, clock=clock),
            ttl=ttl,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            follower_poll=follower_poll,
            clock=clock,
            on_leader=on_leader,
            on_leader_loss=on_leader_loss,
            on_loop=on_loop,
            on_new_leader=on_new_leader,
            app_version=app_version,
            report_status=report_status,
            event_listeners=event_listeners,
        )
        # Held around the machine and store calls only, never while a user callback runs.
        self._poll_lock = TaskLock()
        self._loop: _Loop | None = None
        self._starts = 0
        self._task: asyncio.Task[Any] | None = None
        # Done when the status group's call sending this node's report ends (None: none).
        self._status_flight: asyncio.Future[None] | None = None

    def _after_fork(self) -> None:
        super()._after_fork()
        self._poll_lock = TaskLock()
        if self._loop is not None:
            # The child's copy: a loop task that a fork inside a coroutine left running in
            # the child ends at its next poll, sending nothing.
            self._loop.stopped = True
        self._loop = None  # the parent's loop runs only in the parent
        self._task = None
        self._status_flight = None

    # --- what this node knows --------------------------------------------------------

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` (or the end of the loop's task); never
        in a forked child for a loop its parent started."""
        self._check_fork()
        return self._loop is not None

    @property
    def task(self) -> asyncio.Task[Any] | None:
        """The task the polling loop runs in (the caller's for a blocking start), if started;
        never, in a forked child, the parent's."""
        self._check_fork()
        return self._task

    async def cluster_detail(self) -> dict[str, Any]:
        """Every member's latest report (newest first) and the current leader (reads the store)."""
        backend = self._backend
        members: list[MemberRecord] = []
        if Capability.MEMBER_STATUS in backend.capabilities and isinstance(
            backend, AsyncMemberStatusBackend
        ):
            members = await backend.members(self._key)
        record = await backend.get(self._key)
        return self._cluster_detail(members, record, await backend.server_time())

    # --- polling --------------------------------------------------------------------

    async def poll(self) -> None:
        """Run one poll cycle now: step down if due, renew or try to acquire, report status.

        Returns once the cycle's store calls are done and the callbacks it
        caused have run, unless another callback of this elector was running
        (see the class docstring).
        """
        self._check_fork()
        await self._poll(None)

    async def release(self) -> None:
        """Step down now if leading and free the lease; fire ``on_leader_loss``.

        Returns once the lease is freed in the store (after the loop's
        in-flight store call, if any); it never waits for a callback running
        elsewhere, and from inside a callback it only queues ``on_leader_loss``.
        """
        self._check_fork()
        async with self._poll_lock:
            confirmation = self._confirmation_before_stop()
            if confirmation is not None:
                self._notify(await self._carry_out(confirmation))
            self._let_go(self._machine.release(self._clock.monotonic()))
        self._wake_listeners()
        await self._run_callbacks(None)
        await self._send_releases()

    def fenced_transaction(
        self, client: AsyncMongoClient[Any]
    ) -> AbstractAsyncContextManager[AsyncClientSession]:
        """The asyncio twin of ``LeaderElector.fenced_transaction`` (``async with``).

        ``client`` is a pymongo ``AsyncMongoClient``.

        The backend must be an ``AsyncMongoBackend``; see ``docs/locks.md``,
        "Transactions".
        """
        from mongoelector.fencing.transaction import async_fenced_transaction  # noqa: PLC0415

        return async_fenced_transaction(self, client)

    async def _transaction_refused(self, token: int, started_at: float) -> None:
        """``fenced_transaction`` proved the store no longer has the lease of term ``token``:
        step down as on a refused renew (listeners woken, ``on_leader_loss`` awaited here
        unless a callback of this elector runs elsewhere, as ``release()`` does)."""
        async with self._poll_lock:
            step = self._refused_by_check(token, started_at)
            if step is None:
                return
            self._notify(step)
        self._wake_listeners()
        await self._run_callbacks(None)

    def leadership(self, timeout: float | None = None) -> AsyncLeadership:
        """An async context manager whose block runs only while this node leads.

        ``async with elector.leadership() as term:`` enters at once if this
        node leads; otherwise it waits (up to ``timeout`` seconds of the
        elector's clock, forever when ``None``) for this running elector to
        become leader, raising :class:`~mongoelector.errors.AcquireTimeout`
        when the time is up and :class:`~mongoelector.errors.NotLeader` if the
        elector is not running or stops meanwhile. When the term ends (renew
        deadline passed, takeover observed, release, stop), the block is
        cancelled and :class:`~mongoelector.errors.LockLost` is raised out of
        it. ``term.token`` is the term's fencing token. Leaving the block
        never steps down.
        """
        return AsyncLeadership(self, timeout)

    # --- the loop ---------------------------------------------------------------------

    async def start(self, blocking: bool = False) -> None:
        """Start polling in a new task; return once its first poll is done.

        A second call while running does nothing. Once :meth:`stop` has been
        called, ``start()`` runs a new loop at once, even from a callback the
        old loop is still running (from ``on_leader_loss``, it first frees the
        lease that the stop is about to free). With ``blocking``, poll in the calling task
        instead, returning after :meth:`stop` (or raising the task's
        cancellation, after stepping down).
        """
        self._check_fork()
        if self._loop is not None:
            return
        async with self._poll_lock:
            if self._loop is not None:
                return
            self._starts += 1
            self._loop = loop = _Loop()
            try:
                await self._send_unsent()
            except BaseException:  # cancelled (or a bug): no loop started, none to stop
                self._loop = None
                loop.set(done=True)
                raise
            renew_many = renews_in_batches(self._backend)
            get_many = reads_in_batches(self._backend)
            report_many = self._report_status and reports_in_batches(self._backend)
            if renew_many or get_many or report_many:
                loop.batched = _Batched(
                    self, loop, renew_many=renew_many, get_many=get_many, report_many=report_many
                )
            self._machine.start()
        if blocking:
            self._task = loop.task = asyncio.current_task()
            await self._run(loop)
            return
        self._task = loop.task = asyncio.create_task(
            self._run(loop), name=f"mongoelector-{self._key}"
        )
        loop.task.add_done_callback(lambda _: loop.set(done=True))
        await loop.first_poll.wait()

    async def stop(self) -> None:
        """Stop polling, step down and release the lease; fire ``on_leader_loss`` if leading.

        Returns once the lease is freed in the store and the loop has ended,
        never after a whole poll interval. It waits for the loop's in-flight
        store call, never for a callback: if the loop's task is running one,
        ``stop()`` returns without it, and that task ends after running the
        callbacks still due. From a callback it does the same.
        """
        self._check_fork()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stopped = True
            loop.wakeup.set()
        starts = self._starts
        self._wake_listeners()
        await self._step_down_for_good(starts)
        if loop is None or loop.task is asyncio.current_task():
            return
        while not (loop.done or loop.in_callback):
            await loop.changed.wait()

    async def _run(self, loop: _Loop) -> None:
        try:
            summoned: asyncio.Future[batches.Joined] | None = None
            read: asyncio.Future[reads.Read] | None = None
            while not loop.stopped or summoned is not None:
                await self._poll(loop, summoned, read)
                loop.first_poll.set()
                if loop.stopped:
                    break
                loop.sleeping_until = self._machine.wake_at()
                try:
                    await wait_until(self._clock, loop.sleeping_until, loop.wakeup)
                finally:
                    loop.sleeping_until = None
                loop.wakeup.clear()
                summoned, loop.summoned = loop.summoned, None
                read, loop.read_summoned = loop.read_summoned, None
        except asyncio.CancelledError:
            logger.info("elector loop for %r cancelled; stepping down", self._key)
            raise
        except Exception:
            logger.exception("elector loop for %r crashed; stepping down", self._key)
            raise
        finally:
            try:
                if self._loop is loop:  # ended by cancellation or a crash, not by stop()
                    self._loop = None
                    loop.stopped = True
                    await self._step_down_for_good(self._starts)
            finally:
                if loop.batched is not None:
                    loop.batched.leave()
                loop.first_poll.set()
                loop.set(done=True)

    async def _poll(
        self,
        loop: _Loop | None,
        summoned: asyncio.Future[batches.Joined] | None = None,
        read: asyncio.Future[reads.Read] | None = None,
    ) -> None:
        """One poll cycle; by ``loop``, none once it was stopped.

        A leader's poll is a renewal: in its store's renew group, it goes out in a batch
        with the renewals of that store due soon; ``summoned`` when another holding's
        batch took this loop in (its renewal may be in flight: awaited even if stopped).
        A follower's poll, in its store's read group, reads its record with the other
        followers' due soon first (``read``: another's read batch took it in).
        """
        self._check_fork()  # a loop copied into a forked child polls nothing there
        if loop is not None and loop.stopped and summoned is None:
            return  # before the lock: there is no running event loop in a forked child
        async with self._poll_lock:
            if loop is not None and loop.stopped:
                if summoned is not None:
                    await summoned  # its renewal may be in flight; the reply is ignored
                return
            batched = loop.batched if loop is not None else None
            if batched is not None and summoned is None and read is None:
                read = batched.gather_read()  # None: not a follower, or nobody to read with
            now = self._clock.monotonic()
            step = self._machine.begin_poll(now, read_first=read is not None)
            self._notify(step)
            if isinstance(step.action, Observe):
                assert read is not None
                started_at, outcome = await read  # a read: cancelled, it changed nothing
                followed = self._settle_observed(started_at, outcome)
                self._notify(followed)
                if followed.action is not None:  # the try, by compare_and_set
                    self._notify(await self._carry_out(followed.action))
            elif loop is not None and (
                summoned is not None or (batched is not None and batched.group is not None)
            ):
                await self._renew_in_batch(loop, step.action, summoned)
            elif step.action is not None:
                self._notify(await self._carry_out(step.action))
            if self._polled() and not self._status_to_group():
                await self._send_status(running=self.running)
            self._notify_loop()
        self._wake_listeners()
        await self._run_callbacks(loop)

    async def _step_down_for_good(self, starts: int) -> None:
        """Stop taking part and free the lease, unless ``start()`` ran since its call ``starts``;
        then send the last status report.

        The last report waits for a status call in flight with this node's report (so that
        it lands after it); the step-down, its callbacks and the release do not: a hung
        status call delays none of them, and cancelled there, the lease is free already.
        """
        async with self._poll_lock:
            stopping = self._starts == starts
            if stopping:
                confirmation = self._confirmation_before_stop()
                if confirmation is not None:
                    self._notify(await self._carry_out(confirmation))
                self._let_go(self._machine.stop(self._clock.monotonic()))
        self._wake_listeners()
        await self._run_callbacks(None)
        await self._send_releases()
        if stopping and self._report_status:
            async with self._poll_lock:
                if self._starts == starts:
                    await self._send_status(running=False)
            await self._run_callbacks(None)  # any queued meanwhile (its store_error went at once)

    # --- plumbing -----------------------------------------------------------------------

    async def _send_releases(self) -> None:
        """Free in the store every lease this node gave up and has not freed yet."""
        async with self._poll_lock:
            await self._send_unsent()

    async def _send_unsent(self) -> None:
        """Under the poll lock: send the releases not sent yet; one cancelled mid-call is
        kept, to go out again first next time."""
        while (release := self._next_unsent()) is not None:
            try:
                await self._carry_out(release)
            except asyncio.CancelledError:
                self._abandoned(release)
                raise

    async def _renew_in_batch(
        self,
        loop: _Loop,
        action: Action | None,
        summoned: asyncio.Future[batches.Joined] | None,
    ) -> None:
        """Under the poll lock: carry out ``action``, a renewal in a batch of its store.

        Joined (``summoned``): the batch sent the renewal of this term, or nothing
        (the elector no longer led when it went out). Its outcome is fed to the
        machine only if ``action`` is that very renewal (the machine may have moved on
        meanwhile, by a caller's poll); otherwise ``action`` goes out on its own.
        The trigger of a batch sends its renewal through the group's call; if the
        elector no longer leads as the call goes out (or was stopped), nothing is sent
        and the next poll decides. A batch that crashed cancels the futures of its
        members: the loop ends as a cancelled one (it steps down for good).
        """
        sent: Renew | None = None
        started_at = 0.0
        outcome: Outcome = None
        try:
            if summoned is not None:
                joined = await summoned
                if isinstance(joined, tuple):
                    sent, started_at, _, outcome = joined
            elif isinstance(action, Renew) and loop.batched and loop.batched.group is not None:
                renewed = await loop.batched.group.renew(loop.batched, action)
                if isinstance(renewed, (Lost, Ended)):
                    return  # nothing was sent
                sent = action
                started_at, _, outcome = renewed
        except asyncio.CancelledError:
            if isinstance(action, Renew):
                self._interrupted(action)  # the renewal may be in flight
            raise
        if sent is not None and sent == action:
            self._notify(self._settle(action, started_at, outcome))
        elif action is not None:
            self._notify(await self._carry_out(action))

    async def _carry_out(self, action: Action) -> Step:
        started_at = self._clock.monotonic()
        try:
            outcome = await perform(self._backend, self._request, action)
        except asyncio.CancelledError:
            self._interrupted(action)
            raise
        return self._settle(action, started_at, outcome)

    async def _run_callbacks(self, loop: _Loop | None) -> None:
        """Run the queued callbacks still due, unless they already run elsewhere.

        ``loop`` is the loop whose task this is, if any: ``stop()`` stops
        waiting for that task while it is inside a callback.
        """
        me: object = asyncio.current_task() or object()
        if not self._queue.claim(me):
            return
        try:
            while (call := self._next_callback(me)) is not None:
                if loop is not None:
                    loop.set(in_callback=True)
                try:
                    await run_callback(call.callback, call.name, *call.args)
                finally:
                    if loop is not None:
                        loop.set(in_callback=False)
        finally:
            self._queue.give_up(me)

    def _status_to_group(self) -> bool:
        """Hand the status report due to the started loop's status group, which sends it
        with the reports of its store due soon (:mod:`mongoelector.aio.status`) in a task
        of its own; ``False`` if there is no such group (the caller sends it itself)."""
        loop = self._loop
        batched = loop.batched if loop is not None else None
        if batched is None or batched.status_group is None:
            return False
        batched.status_group.due(batched)
        return True

    async def _send_status(self, *, running: bool) -> None:
        """Send this node's status report now, by itself. A running node's report is
        skipped while its status group's call is sending one; the last report
        (``running=False``) waits for that call, so that it lands after it."""
        backend = self._backend
        if Capability.MEMBER_STATUS not in backend.capabilities or not isinstance(
            backend, AsyncMemberStatusBackend
        ):
            return
        flight = self._status_flight
        if flight is not None and not flight.done():
            if running:
                return
            await asyncio.wait({flight})
        member, at = self._member_record(running=running)
        error: BackendError | None = None
        try:
            await backend.report_member(member)
        except BackendError as caught:
            error = caught
        self._status_sent(member, at, error)

    def fenced(
        self, collection: AsyncCollection[DocT], *, field: str = "_fence"
    ) -> AsyncFencedCollection[DocT]:
        """``collection`` with its writes fenced by the current term's token (docs/locks.md).

        Raises :class:`~mongoelector.errors.NotLeader` if this node does not
        lead now. Its writes raise :class:`~mongoelector.errors.LockLost`,
        before anything is sent, once that term is over, even if a later term
        has begun: call ``fenced()`` again for the new term.
        """
        from mongoelector.fencing import AsyncFencedCollection  # noqa: PLC0415 - pymongo on use
        from mongoelector.fencing._tokens import term_token  # noqa: PLC0415

        return AsyncFencedCollection(collection, term_token(self), key=self._key, field=field)

    async def __aenter__(self) -> AsyncLeaderElector:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class _Batched(BatchedLoop["AsyncLeaderElector", _Loop]):
    """A started elector's loop as a member of its store's renew group (the asyncio twin of
    the sync ``_Batched`` in :mod:`mongoelector._sync.elector`).

    While the elector leads, its next poll is a renewal of its lease, which the
    group sends with the renewals of the other holdings of the store that fall due
    soon, in one ``renew_many``; the elector feeds its outcome to its machine
    exactly as its own ``renew``'s.
    """

    __slots__ = ()

    group: batches.AsyncRenewGroup | None
    read_group: reads.AsyncReadGroup | None
    status_group: status.AsyncStatusGroup | None

    def __init__(
        self,
        elector: AsyncLeaderElector,
        loop: _Loop,
        *,
        renew_many: bool,
        get_many: bool,
        report_many: bool = False,
    ) -> None:
        super().__init__(elector, loop)
        backend: AsyncRenewManyBackend = elector._backend  # type: ignore[assignment]
        clock = elector._clock
        self.group = batches.enter(self, backend, clock) if renew_many else None
        self.read_group = reads.enter(self, elector._backend, clock) if get_many else None
        self.status_group = status.enter(self, elector._backend, clock) if report_many else None

    # --- in the status group ----------------------------------------------------------

    def _claim_status(self) -> bool:
        """Mark the loop's report queued; ``False`` if it is already, or the loop ended."""
        loop = self._loop
        if loop.done or loop.stopped or loop.status_queued:
            return False
        loop.status_queued = True
        return True

    def _unclaim_status(self) -> None:
        """The report claimed is not to be sent after all (it is not due any more)."""
        self._loop.status_queued = False

    def _may_join_status(self) -> bool:
        loop = self._loop
        return not (loop.status_queued or loop.stopped or loop.done)

    def _status_begin(self) -> tuple[MemberRecord, float] | None:
        """As the group's call starts: the report to send (``None``, the claim settled, if
        the loop was stopped meanwhile: its stop reports for itself; or if a call is still
        sending a report of the elector's loop before this one, started again meanwhile:
        reports of one node go out one at a time, so that they land in order)."""
        elector, loop = self._elector, self._loop
        flight = elector._status_flight
        if loop.stopped or loop.done or (flight is not None and not flight.done()):
            loop.status_queued = False
            return None
        elector._status_flight = asyncio.get_running_loop().create_future()
        return elector._member_record(running=True)

    def _status_end(self, member: MemberRecord, at: float, error: BackendError | None) -> None:
        """The report ``member`` (made at ``at``) was sent, or failed with ``error``. Another
        report due now goes out for the elector's started loop, which is a new one if it
        was started again while this report was in flight (it skipped its own meanwhile)."""
        elector, loop = self._elector, self._loop
        try:
            again = elector._status_landed(member, at, error, stale=loop.stopped)
        finally:
            loop.status_queued = False
            flight = elector._status_flight
            if flight is not None and not flight.done():
                flight.set_result(None)
        if again:
            elector._status_to_group()  # now, not a poll later: the started loop's, if any

    # --- in the renew and read groups -----------------------------------------------------

    def read_timing(self, now: float | None = None) -> RenewTiming | None:
        """When the follower's next poll falls due; ``None`` unless it would read first."""
        return self._elector._read_timing(now)

    def gather_read(self) -> asyncio.Future[reads.Read] | None:
        """As the loop polls: start reading its record with the followers that join it (the
        future of its read), if it follows in a read group; ``None``: it polls alone."""
        if self.read_group is None:
            return None
        return self.read_group.gather(self)

    def _summonable(self) -> bool:
        """Whether the loop sleeps until its next poll, not yet summoned to a batch, and
        not stopped."""
        loop = self._loop
        return (
            loop.sleeping_until is not None
            and loop.summoned is None
            and loop.read_summoned is None
            and not loop.stopped
        )

    def _may_join_read(self, now: float) -> bool:
        return self._summonable() and self._elector._due_to_join(
            self._loop.sleeping_until, now, read=True
        )

    def _summon_read(self) -> asyncio.Future[reads.Read] | None:
        loop = self._loop
        if not self._summonable():
            return None
        loop.read_summoned = asyncio.get_running_loop().create_future()
        loop.wakeup.set()
        return loop.read_summoned

    @property
    def _rules(self) -> _Batched:
        return self

    def timing(self, now: float | None = None) -> RenewTiming | None:
        """When the term must next be renewed; ``None`` unless the elector leads (trusted)."""
        return self._elector._renew_timing(now)

    def renew_now(self) -> Renew | Lost | Ended:
        """The renewal of the term to send now; :class:`Ended` (nothing to send: the loop
        polls on its own) unless the elector leads and is trusted."""
        elector = self._elector
        token = elector._machine.token(elector._clock.monotonic())
        return Ended(token=-1) if token is None else Renew(token=token)

    def _may_join(self, now: float) -> bool:
        return self._summonable() and self._elector._due_to_join(
            self._loop.sleeping_until, now, read=False
        )

    def _summon(self) -> asyncio.Future[batches.Joined] | None:
        loop = self._loop
        if not self._summonable():
            return None
        loop.summoned = asyncio.get_running_loop().create_future()
        loop.wakeup.set()
        return loop.summoned

    def _may_go_on(self) -> bool:
        return not self._loop.stopped

    async def _renew(self, step: Renew) -> Outcome:
        """Nobody joined: the store's own ``renew``."""
        outcome = await perform(self._elector._backend, self._elector._request, step)
        assert outcome is None or isinstance(outcome, (LeaseRecord, Failure))
        return outcome
