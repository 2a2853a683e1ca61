"""``LeaderElector``: leader election over any storage backend (the sync driver).

A started elector has no thread of its own: its polls run on the process's
scheduler (:mod:`mongoelector._sync.scheduler`), which also renews every
auto-renewed lock. The scheduler's timer wakes the elector when its machine
says the next poll is due (:meth:`~mongoelector.core.elector_machine.ElectorMachine.wake_at`,
on the elector's clock: under a :class:`~mongoelector.testing.FakeClock`,
when a test advances it); a worker thread makes the poll's store calls; the
callbacks and listener events the poll caused run on a callback thread, one
at a time and in the order their events happened. So a callback that blocks
delays no poll, of this elector or another, and no lock's renewal. Two polls
of one elector never overlap (its poll lock), and the next poll is scheduled
when the previous one has ended.

While a poll waits for a worker, or its store call hangs, the renew deadline
still holds: the timer records the step-down itself at the deadline (no I/O,
no user code, :meth:`~mongoelector.core.elector_machine.ElectorMachine.expire`)
and hands ``on_leader_loss`` to the callback thread; the late reply is not
trusted.

``start(blocking=True)`` runs the loop in the caller's thread instead, with
its callbacks, as before. Every scheduled loop still running when the
interpreter exits is halted by an ``atexit`` hook (no poll after it; the
lease is not released, it lapses after its ttl as when a process ends: call
``stop()`` for that); a forked child runs none of its parent's loops.
"""

from __future__ import annotations

import atexit
import enum
import functools
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from collections.abc import Mapping as _Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from mongoelector._common.batches import (
    Observed,
    Outcome,
    reads_in_batches,
    renews_in_batches,
    reports_in_batches,
)
from mongoelector._common.elector_base import BatchedLoop, ElectorBase
from mongoelector._common.stores import sync_store
from mongoelector._sync import batches, reads, scheduler, status
from mongoelector._sync.callbacks import run_callback
from mongoelector._sync.calls import Failure, perform
from mongoelector._sync.guard import Guard
from mongoelector._sync.leadership import Leadership
from mongoelector.backends.protocol import (
    Capability,
    LeaseRecord,
    MemberRecord,
    MemberStatusBackend,
    RenewManyBackend,
    StorageBackend,
)
from mongoelector.clock import Clock
from mongoelector.core.batching import RenewTiming
from mongoelector.core.events import Action, LeaderInfo, Observe, Renew
from mongoelector.errors import BackendError
from mongoelector.monitoring import EventListener

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.database import Database
    from pymongo.synchronous.client_session import ClientSession

    from mongoelector.fencing import FencedCollection

__all__ = ["LeaderElector", "running"]

logger = logging.getLogger("mongoelector.elector")


DocT = TypeVar("DocT", bound="_Mapping[str, Any]")

_running: weakref.WeakSet[LeaderElector] = weakref.WeakSet()
_running_guard = threading.Lock()


def _after_fork_in_child() -> None:
    global _running_guard  # noqa: PLW0603 - a fresh lock for the child
    _running_guard = threading.Lock()
    _running.clear()  # the parent's loops do not run in the child (nor does its scheduler)


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _halt_all_at_exit() -> None:
    for elector in running():
        elector._halt()


def running() -> list[LeaderElector]:
    """The electors of this process whose scheduled loop has started and not ended yet."""
    with _running_guard:
        return list(_running)


class _Phase(enum.Enum):
    PARKED = "parked"  # waiting in the scheduler for the next poll
    QUEUED = "queued"  # due, waiting for a worker
    POLLING = "polling"  # on a worker: the poll and its store calls


#: The ``wakeup`` of every scheduled loop, which never waits on it (only blocking loops do).
_NO_WAKEUP = threading.Event()


@dataclass(eq=False, slots=True)
class _Loop:
    """One run of the polling loop, from ``start()`` to ``stop()``; changed under ``_state``.

    A scheduled loop moves between the phases; a blocking one (``start(blocking=True)``)
    is its thread's.
    """

    blocking: bool = False
    stopped: bool = False
    #: The loop has ended: no poll of it runs or will run.
    done: bool = False
    #: The clock's time the loop waits for, while it waits (``None``: it is busy).
    parked_until: float | None = None
    # --- a scheduled loop
    phase: _Phase = _Phase.PARKED
    #: The wake-up (parked), or the renew deadline (queued, polling) in the scheduler.
    entry: scheduler.Entry | None = None
    #: Which queued poll (and deadline) counts: a later one voids the earlier.
    ticket: int = 0
    #: The loop in its store's renew group (a backend that renews in batches), while it runs.
    batched: _Batched | None = None
    #: A batch's worker holds the poll lock for the loop's renewal in that batch.
    in_batch: bool = False
    #: The loop's status report is queued in its status group, or in flight.
    status_queued: bool = False
    # --- a blocking loop (a scheduled one has no Event: about 800 bytes an elector)
    wakeup: threading.Event = field(default_factory=lambda: _NO_WAKEUP)
    thread: threading.Thread | None = None
    #: The loop's thread is inside a user callback (``stop()`` does not wait for it then).
    in_callback: bool = False


class _Fire:
    """A scheduler entry's action: ``fire(loop, ticket)`` (a slotted object, not a closure
    and its cells: a process may keep a thousand started electors)."""

    __slots__ = ("fire", "loop", "ticket")

    def __init__(self, fire: Callable[[_Loop, int], None], loop: _Loop, ticket: int) -> None:
        self.fire = fire
        self.loop = loop
        self.ticket = ticket

    def __call__(self) -> None:
        self.fire(self.loop, self.ticket)


class LeaderElector(ElectorBase[StorageBackend]):
    """Elects one leader among all electors of ``key`` sharing ``backend``.

    The leader renews its lease every ``retry_period`` and steps down
    ``renew_deadline`` seconds after the start of its last successful renew if
    it cannot renew, firing ``on_leader_loss`` then even if the store is
    unreachable. Followers try to take the lease every ``retry_period``, so a
    crashed leader is replaced within ``ttl + retry_period`` and one that
    releases within ``retry_period``.

    ``backend`` is a :class:`~mongoelector.backends.StorageBackend`, or a
    pymongo ``Database`` (a mongomock one too), wrapped in
    ``MongoBackend(db, clock=clock)`` with that backend's defaults (the lease
    in ``mongolocker``, status reports in ``elector.leader_status``; the 1.x
    ``MongoLeaderElector`` keeps its lease in ``elector.locks`` instead).
    Anything else is a ``TypeError`` naming the methods it lacks.

    Callbacks: ``on_leader()`` and ``on_leader_loss()`` once per leadership
    term, ``on_new_leader(leader)`` with a
    :class:`~mongoelector.core.events.LeaderInfo` whenever a new term is
    observed (including this node's own), ``on_loop()`` after every poll. A
    callback that raises is logged and the elector goes on. Callbacks (and
    the reports to event listeners) run one at a time, in the order their
    events happened, and never while the elector holds a lock, so any
    callback may call :meth:`stop`, :meth:`release`, :meth:`start` or
    :meth:`poll` from any thread. Those of a started elector's own polls run
    on the process's callback thread (:mod:`mongoelector._sync.scheduler`),
    never on the thread making store calls, so a callback that blocks delays
    no poll. A caller of :meth:`poll`, :meth:`release` or :meth:`stop` (or
    the thread of ``start(blocking=True)``) runs those its call caused before
    the call returns, unless a callback of this elector is running at that
    moment: then the call returns at once and the thread running that
    callback runs the new ones next. A callback whose news is stale by its
    turn is skipped: ``on_leader`` of a term already over (and then that
    term's ``on_leader_loss``), ``on_new_leader`` naming a leader this node no
    longer knows as leader, e.g. itself after a release.

    In a forked child the copied elector is neither leader nor running, and
    its :meth:`stop` frees nothing of its parent's; it takes a new
    :attr:`uuid` there, so a later :meth:`start` or :meth:`poll` competes
    with the parent.
    """

    __slots__ = (
        "_latest",
        "_loop",
        "_machine_lock",
        "_poll_lock",
        "_reports_wait",
        "_starts",
        "_state",
        "_status_lock",
    )

    def __init__(
        self,
        key: str,
        backend: StorageBackend | Database[Any],
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
            sync_store(backend, clock=clock),
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
        # Serializes polls, releases and stops: held around their store calls, never while a
        # user callback runs.
        self._poll_lock = threading.RLock()
        # The machine and the queueing of what it reports: held only briefly, never during a
        # store call or a callback, so the scheduler's timer may step down at the renew
        # deadline while a poll's store call is in flight. Taken inside _poll_lock, never
        # inside _state; _state is taken inside it only where the machine's wake-up time is
        # compared with the loop's as of one moment (_wake_sooner, _wait_in_thread).
        # The lock order: _poll_lock; _status_lock or a status group's _choosing;
        # _machine_lock; _state; then leaves held briefly, never while calling out (the
        # scheduler's _guard, a group registry's guard, the callback queue's lock,
        # _running_guard, _listeners_lock).
        self._machine_lock = threading.Lock()
        self._reports_wait = False  # under _machine_lock: the timer's reports go to callbacks
        # Guards the loop bookkeeping; never held while taking _poll_lock or _machine_lock.
        # Not re-entrant; its waiters (stop, wait_idle, _halt) hold neither of those, as its
        # wait_for lets go of it alone.
        self._state = Guard()
        self._loop: _Loop | None = None
        self._latest: _Loop | None = None  # the loop started last, kept after its stop
        self._starts = 0
        # Held while a status report of this elector is built and sent (alone or in its
        # status group's batch), so that reports land in the order they were made.
        self._status_lock = threading.Lock()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._poll_lock = threading.RLock()
        self._machine_lock = threading.Lock()
        self._reports_wait = False
        self._state = Guard()
        self._status_lock = threading.Lock()
        if self._loop is not None:
            # The child's copy: a blocking loop whose callback forked goes on in the child
            # (its thread is the forking one) and ends at its next poll, sending nothing.
            self._loop.stopped = True
        self._loop = None  # the parent's loop runs only in the parent
        self._latest = None

    # --- what this node knows (no backend call) ------------------------------------

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` (or the loop's crash); never in a
        forked child for a loop its parent started."""
        self._check_fork()
        return self._loop is not None

    @property
    def cluster_detail(self) -> dict[str, Any]:
        """Every member's latest report (newest first) and the current leader (reads the store)."""
        members: list[MemberRecord] = []
        if Capability.MEMBER_STATUS in self._backend.capabilities and isinstance(
            self._backend, MemberStatusBackend
        ):
            members = self._backend.members(self._key)
        record = self._backend.get(self._key)
        return self._cluster_detail(members, record, self._backend.server_time())

    # --- polling --------------------------------------------------------------------

    def poll(self) -> None:
        """Run one poll cycle now, in this thread: step down if due, renew or try to acquire,
        report status.

        Returns once the cycle's store calls are done and the callbacks it
        caused have run, unless another callback of this elector was running
        (see the class docstring). It waits for a poll of the started loop in
        flight; the two never overlap. If it made the started loop's next poll
        due sooner (it won, say, while the loop waited ``follower_poll``), the
        loop polls then.
        """
        self._check_fork()
        self._poll_cycle(None)
        self._wake_sooner(self._loop)
        self._run_callbacks(None)

    def release(self) -> None:
        """Step down now if leading and free the lease; fire ``on_leader_loss``.

        Returns once the lease is freed in the store (after a poll's store
        call in flight, if any); it never waits for a callback running
        elsewhere, and from inside a callback it only queues ``on_leader_loss``.
        """
        self._check_fork()
        with self._poll_lock:
            self._confirm_before_stop()
            with self._machine_lock:
                self._let_go(self._machine.release(self._clock.monotonic()))
        self._wake_listeners()
        self._run_callbacks(None)
        self._send_releases()

    def fenced_transaction(self, client: MongoClient[Any]) -> AbstractContextManager[ClientSession]:
        """A context manager whose block's writes commit only while this node leads its term.

        ``with elector.fenced_transaction(client) as session:`` starts a
        multi-document transaction on ``client`` (a pymongo ``MongoClient`` of
        a replica set or sharded cluster; the backend must be a
        ``MongoBackend``, else ``TypeError``); make the block's reads and
        writes with ``session=session``. When the block ends, a write to the
        lock record inside the same transaction checks that it still belongs
        to the current term and has not expired by the server's clock, and
        only then is the transaction committed. Not leading: ``LockLost``
        before anything is sent.
        :class:`~mongoelector.errors.LockLost` and nothing committed if the
        check fails or a takeover conflicts; if the lease record, read then,
        is no longer this term's, the node first steps down as on a refused
        renewal (``on_leader_loss``);
        :class:`~mongoelector.errors.AmbiguousOutcome` if the commit's
        outcome is unknown; an exception of the block aborts the transaction
        and goes on. Never retried. See ``docs/locks.md``, "Transactions".
        """
        from mongoelector.fencing.transaction import fenced_transaction  # noqa: PLC0415

        return fenced_transaction(self, client)

    def _transaction_refused(self, token: int, started_at: float) -> None:
        """``fenced_transaction`` proved the store no longer has the lease of term ``token``:
        step down as on a refused renew (listeners woken, ``on_leader_loss`` run here unless
        a callback of this elector runs elsewhere, as ``release()`` does)."""
        with self._poll_lock, self._machine_lock:  # the timer may step down meanwhile
            step = self._refused_by_check(token, started_at)
            if step is None:
                return
            self._notify(step)
        self._wake_listeners()
        self._run_callbacks(None)

    def leadership(self, timeout: float | None = None) -> Leadership:
        """A context manager whose block runs only while this node leads.

        ``with elector.leadership() as term:`` enters at once if this node
        leads; otherwise it waits (up to ``timeout`` seconds of the elector's
        clock, forever when ``None``) for this running elector to become
        leader, raising :class:`~mongoelector.errors.AcquireTimeout` when the
        time is up and :class:`~mongoelector.errors.NotLeader` if the elector
        is not running or stops meanwhile. ``term.token`` is the term's fencing
        token; ``term.lost`` is set once leadership ends (renew deadline,
        takeover, release or stop), and the block must stop acting then. If the
        term ends before the block does, leaving the block raises
        :class:`~mongoelector.errors.LockLost`. Leaving the block never steps down.
        """
        return Leadership(self, timeout)

    # --- the loop ---------------------------------------------------------------------

    def start(self, blocking: bool = False) -> None:
        """Start polling on the process's scheduler, or in this thread if ``blocking``.

        Returns at once unless ``blocking``: the polls run on the scheduler's
        threads (no thread of its own; see the module docstring). A second
        call while running does nothing. Once :meth:`stop` has been called,
        ``start()`` runs a new loop at once, even from a callback caused by
        the old loop (from ``on_leader_loss``, it first frees the lease that
        the stop is about to free). With ``blocking``, the loop and its
        callbacks run in this thread, which returns after :meth:`stop` (from a
        callback or another thread) and the callbacks it was running.
        """
        self._check_fork()
        with self._poll_lock:
            with self._state:
                if self._loop is not None:
                    return
                self._starts += 1
                self._loop = self._latest = loop = (
                    _Loop(blocking=True, wakeup=threading.Event()) if blocking else _Loop()
                )
                if blocking:
                    loop.thread = threading.current_thread()
                else:
                    with _running_guard:
                        _running.add(self)
                    renew_many = renews_in_batches(self._backend)
                    get_many = reads_in_batches(self._backend)
                    report_many = self._report_status and reports_in_batches(self._backend)
                    if renew_many or get_many or report_many:
                        loop.batched = _Batched(
                            self,
                            loop,
                            renew_many=renew_many,
                            get_many=get_many,
                            report_many=report_many,
                        )
            self._send_releases()
            with self._machine_lock:
                self._machine.start()
        if blocking:
            self._run(loop)
        else:
            self._park(loop)

    def stop(self) -> None:
        """Stop polling, step down and release the lease; fire ``on_leader_loss`` if leading.

        Returns once the lease is freed in the store and no poll of the
        stopped loop will run again, never after a whole poll interval. It
        waits for a poll's store call in flight (bounded by the store's
        timeouts), never for a callback: ``on_leader_loss`` runs before it
        returns unless a callback of this elector is running elsewhere, which
        then runs it next (the renew deadline still holds meanwhile). From a
        callback it does the same; from the thread of ``start(blocking=True)``
        (its callbacks) it returns at once and that loop ends after them.
        """
        self._check_fork()
        with self._state:
            loop = self._loop
            self._loop = None
            if loop is not None:
                loop.stopped = True
                if loop.blocking:
                    loop.wakeup.set()
                elif loop.phase is not _Phase.POLLING:
                    self._end_locked(loop)  # parked or queued: it will not poll
            starts = self._starts
        self._wake_listeners()
        self._step_down_for_good(starts)
        if loop is None or loop.thread is threading.current_thread():
            return
        with self._state:
            self._state.wait_for(lambda: self._let_go_of(loop))

    def _let_go_of(self, loop: _Loop) -> bool:
        """Whether ``stop()`` may return: the stopped ``loop`` ended, or its thread (blocking)
        is inside a callback, which may be waiting for that very ``stop()``.

        A scheduled loop's poll is over once ``stop()`` had the poll lock: its
        worker only hands the callbacks on and ends, never waiting for them.
        """
        return loop.done or loop.in_callback

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the elector has caught up with its clock; for tests with a ``FakeClock``.

        Caught up: the loop waits for a time the clock has not reached (or
        is not running), and no callback or listener report of this elector
        is queued or running. So after ``clock.advance(...)``, it returns
        once the polls now due, and everything they caused, are done. Returns
        ``False`` if ``timeout`` (real seconds) passed first. Do not call it
        from this elector's callbacks: it would wait for itself.
        """
        self._check_fork()
        with self._state:
            return self._state.wait_for(self._is_idle, timeout)

    def _is_idle(self) -> bool:
        if self._queue.busy():
            return False
        loop = self._latest
        if loop is None or loop.done:
            return True
        if loop.stopped:
            return False  # still ending (a crash, a stop from its own callback)
        if loop.status_queued:
            return False  # its status report is still to be sent
        return loop.parked_until is not None and loop.parked_until > self._clock.monotonic()

    # --- a blocking loop: in the caller's thread ---------------------------------------

    def _run(self, loop: _Loop) -> None:
        try:
            while not loop.stopped:
                self._poll_cycle(loop)
                self._run_callbacks(loop)
                if loop.stopped:
                    break
                self._wait_in_thread(loop)
        except BaseException:
            logger.exception("elector loop for %r crashed; stepping down", self._key)
            with self._state:
                crashed = self._loop is loop
                if crashed:
                    self._loop = None
                    loop.stopped = True
                starts = self._starts
            if crashed:
                self._step_down_for_good(starts)
            raise
        finally:
            with self._state:
                loop.done = True
                loop.parked_until = None
                self._state.notify_all()

    def _wait_in_thread(self, loop: _Loop) -> None:
        """The blocking ``loop`` waits until its next poll is due, or it is stopped; woken
        early (a caller's ``poll()`` made it due sooner), it waits for the new time.

        The machine's time is read and the loop parked under the machine lock, as
        :meth:`_wake_sooner` compares them: a caller's poll that settles after the read
        finds the loop parked (and wakes it); read apart, its ``_wake_sooner`` could come
        in between, find nothing parked, and leave the loop waiting for the stale time
        (a follower's next read, past the renewal due after the caller won).
        """
        try:
            while True:
                loop.wakeup.clear()
                if loop.stopped:
                    return
                with self._machine_lock:
                    wake_at = self._machine.wake_at()
                    if wake_at <= self._clock.monotonic():
                        return
                    with self._state:
                        loop.parked_until = wake_at
                        self._state.notify_all()
                self._clock.wait_until(wake_at, loop.wakeup)
        finally:
            with self._state:
                loop.parked_until = None

    def _wake_sooner(self, loop: _Loop | None) -> None:
        """After a poll made by a caller (it may have won, renewed, or found the lease free):
        bring the waiting ``loop``'s next poll forward to the machine's wake-up time, if
        that is sooner than the one it waits for.

        The two times are compared as of one moment: the machine's is read and the loop
        woken under the machine lock. A time read before it is compared with the loop's
        may be stale: the loop may meanwhile have polled (renewed, at its wake-up time)
        and parked for its next poll; woken at the stale time, which has come, it would
        poll again at once (a second renewal at the same instant).
        """
        if loop is None:
            return
        with self._machine_lock:  # no poll settles until the loop is woken, or left waiting
            wake_at = self._machine.wake_at()
            with self._state:
                if loop.stopped or loop.done or loop.parked_until is None:
                    return
                if wake_at >= loop.parked_until:
                    return
                if loop.blocking:
                    loop.parked_until = None  # busy (for wait_idle) until it waits again
                    loop.wakeup.set()
                    return
                if loop.phase is not _Phase.PARKED:
                    return
                loop.parked_until = wake_at
                # voids the wake-up entry replaced here, should it fire meanwhile
                self._rearm_locked(loop, wake_at, self._due)
                self._state.notify_all()

    # --- a scheduled loop: the scheduler's timer, workers and callback thread ------------

    def _park(self, loop: _Loop) -> None:
        """Wait in the scheduler until the next poll is due; queue it at once if it is."""
        with self._machine_lock:
            wake_at = self._machine.wake_at()
        if wake_at <= self._clock.monotonic():
            self._queue_poll(loop)
            return
        with self._state:
            if loop.stopped:
                self._end_locked(loop)
                return
            loop.phase = _Phase.PARKED
            loop.parked_until = wake_at
            self._rearm_locked(loop, wake_at, self._due)  # voids the ended poll's deadline entry
            self._state.notify_all()
        # A poll made by a caller meanwhile may have made the next one due sooner.
        self._wake_sooner(loop)

    def _due(self, loop: _Loop, ticket: int) -> None:
        """In the timer thread: the next poll's time came. Step down if the deadline is past
        (here, so the step-down is on time however busy the workers are), queue the poll."""
        with self._state:
            if loop.done or loop.phase is not _Phase.PARKED or loop.ticket != ticket:
                return
            loop.entry = None
            loop.parked_until = None
        self._expire()
        self._queue_poll(loop)

    def _queue_poll(self, loop: _Loop) -> None:
        """Queue the next poll for a worker; if the renew deadline comes while it waits or
        runs, the timer steps down then (:meth:`_overdue`).

        A leader's poll is a renewal: in a store's renew group, it goes out in a batch
        with the renewals of that store due soon (:mod:`mongoelector._sync.batches`).
        """
        batched = loop.batched
        if batched is not None:
            if batched.group is not None and batched.timing() is not None:
                batched.group.due(batched)
                return
            if batched.read_group is not None and batched.read_timing() is not None:
                batched.read_group.due(batched)
                return
        ticket = self._enqueue_poll(loop)
        if ticket is not None:
            scheduler.submit(lambda: self._poll_on_worker(loop, ticket))

    def _enqueue_poll(self, loop: _Loop, *, parked_only: bool = False) -> int | None:
        """Mark ``loop``'s next poll queued, the renew deadline armed; its ticket.

        ``None`` if the loop was stopped (it has ended), or, with ``parked_only``, if it
        was not waiting for its next poll (it is left as it was).
        """
        with self._machine_lock:
            holding = self._machine.holding
        deadline = holding.valid_until if holding is not None else math.inf
        with self._state:
            if loop.done or (parked_only and loop.phase is not _Phase.PARKED):
                return None
            if loop.stopped:
                self._end_locked(loop)
                return None
            loop.phase = _Phase.QUEUED
            loop.parked_until = None
            ticket = self._rearm_locked(loop, deadline, self._overdue)
            self._state.notify_all()
        return ticket

    def _overdue(self, loop: _Loop, ticket: int) -> None:
        """In the timer thread: the renew deadline came while poll ``ticket`` waited for a
        worker or ran (its store call maybe hung): record the step-down now.

        Also after ``stop()`` was called, which may be waiting for that store
        call: the deadline holds all the same.
        """
        with self._state:
            if loop.ticket != ticket or loop.phase is _Phase.PARKED or loop.done:
                return
            loop.entry = None
        self._expire()

    def _arm_deadline(self, loop: _Loop) -> None:
        """On a worker, after the poll's store call: the renew deadline it set or moved (a
        win, a renewal) is the one the timer holds while the rest of the poll (the status
        report) runs or hangs; the one armed when the poll was queued may be gone or past."""
        with self._machine_lock:
            holding = self._machine.holding
        deadline = holding.valid_until if holding is not None else math.inf
        with self._state:
            if loop.done or loop.phase is not _Phase.POLLING:
                return
            self._cancel_entry_locked(loop)
            if deadline != math.inf:
                ticket = loop.ticket
                loop.entry = scheduler.call_at(
                    self._clock, deadline, lambda: self._overdue(loop, ticket)
                )

    def _expire(self) -> None:
        """Record the step-down if the renew deadline has passed (no I/O, no user code: the
        reports and ``on_leader_loss`` go to the callback thread)."""
        with self._machine_lock:
            step = self._machine.expire(self._clock.monotonic())
            if step.notifications:
                self._reports_wait = True
                try:
                    self._notify(step)
                finally:
                    self._reports_wait = False
        if step.notifications:
            self._hand_callbacks()

    def _poll_on_worker(self, loop: _Loop, ticket: int) -> None:
        """On a worker: the poll (store calls), then its callbacks to the callback thread and
        the next poll to the timer."""
        with self._state:
            if loop.done or loop.phase is not _Phase.QUEUED or loop.ticket != ticket:
                return  # ended, or stopped while queued
            loop.phase = _Phase.POLLING  # the deadline entry stays armed
        try:
            self._poll_cycle(loop)
        except Exception:
            self._crashed(loop)
            return
        self._hand_callbacks()
        self._park(loop)

    def _crashed(self, loop: _Loop) -> None:
        """On a worker: a poll raised (a bug): stop this loop and step down for good."""
        logger.exception("elector loop for %r crashed; stepping down", self._key)
        try:
            with self._state:
                crashed = self._loop is loop
                if crashed:
                    self._loop = None
                loop.stopped = True
                starts = self._starts
            if crashed:
                self._step_down_for_good(starts, callbacks_here=False)
        finally:
            self._hand_callbacks()
            with self._state:
                self._end_locked(loop)

    def _hand_callbacks(self) -> None:
        """Have the callback thread run this elector's queued callbacks, if any."""
        if self._queue.waiting():
            scheduler.submit_callback(self._run_queued_callbacks)

    def _run_queued_callbacks(self) -> None:
        self._run_callbacks(None)

    def _halt(self) -> None:
        """At interpreter exit: no poll of the scheduled loop after this returns (it waits for
        one in flight); the lease is not released."""
        with self._state:
            loop = self._loop
            if loop is None or loop.blocking:
                return
            self._loop = None
            loop.stopped = True
            if loop.phase is not _Phase.POLLING:
                self._end_locked(loop)
            self._state.wait_for(lambda: loop.done)

    def _rearm_locked(self, loop: _Loop, at: float, fire: Callable[[_Loop, int], None]) -> int:
        """Void ``loop``'s entry and ticket; run ``fire(loop, ticket)`` at ``at`` (never if
        infinite). The new ticket, under ``_state``."""
        loop.ticket += 1
        ticket = loop.ticket
        self._cancel_entry_locked(loop)
        if at != math.inf:
            loop.entry = scheduler.call_at(self._clock, at, _Fire(fire, loop, ticket))
        return ticket

    def _cancel_entry_locked(self, loop: _Loop) -> None:
        entry, loop.entry = loop.entry, None
        if entry is not None:
            scheduler.cancel(entry)

    def _end_locked(self, loop: _Loop) -> None:
        """The scheduled ``loop`` has ended (under ``_state``)."""
        if loop.done:
            return
        loop.done = True
        loop.parked_until = None
        self._cancel_entry_locked(loop)
        self._state.notify_all()
        if loop.batched is not None:
            loop.batched.leave()
        if self._loop is None:
            with _running_guard:
                _running.discard(self)

    # --- one poll, and stepping down --------------------------------------------------

    def _poll_cycle(self, loop: _Loop | None) -> None:
        """One poll cycle, its callbacks queued; by ``loop``, none once it was stopped."""
        self._check_fork()  # a loop copied into a forked child polls nothing there
        with self._poll_lock:
            if loop is not None and loop.stopped:
                return
            action = self._begin_poll()
            if action is not None:
                self._carry_out(action)
                if loop is not None and not loop.blocking:
                    self._arm_deadline(loop)
            self._end_poll()
        self._wake_listeners()

    def _begin_poll(self, *, read_first: bool = False) -> Action | None:
        """Under the poll lock: the machine's decision for this poll (its reports queued)."""
        with self._machine_lock:
            step = self._machine.begin_poll(self._clock.monotonic(), read_first=read_first)
            self._notify(step)
        return step.action

    def _end_poll(self) -> None:
        """Under the poll lock, after the poll's store call: the status report if due, and
        ``on_loop``."""
        with self._machine_lock:
            status_due = self._polled()
        if status_due and not self._status_to_group():
            self._send_status(running=self.running)
        self._notify_loop()

    def _status_to_group(self) -> bool:
        """Hand the status report due to the started loop's status group, which sends it
        with the reports of its store due soon (:mod:`mongoelector._sync.status`), on a
        worker; ``False`` if there is no such group (the caller sends it itself)."""
        loop = self._loop
        batched = loop.batched if loop is not None else None
        if batched is None or batched.status_group is None:
            return False
        batched.status_group.due(batched)
        return True

    # --- a leader's poll in its store's renew batch (see mongoelector._sync.batches) -----

    def _begin_batched_poll(
        self, loop: _Loop, ticket: int, *, read_first: bool = False
    ) -> Renew | Observe | None:
        """On a batch's worker: begin the poll queued as ``ticket``; the renewal to send in
        a renew batch (the read, with ``read_first``, in a read batch), the poll lock then
        held until :meth:`_end_batched_poll` (:meth:`_end_batched_read`).

        ``None`` when there is nothing to send in the batch: the poll was voided (stopped,
        replaced); or, the machine deciding something else by now (it stepped down at its
        deadline, it has a holding of its own to release), it was made here in full as an
        ordinary poll; or a caller holds the poll lock, and it goes on a worker of its own.
        """
        with self._state:
            if loop.done or loop.phase is not _Phase.QUEUED or loop.ticket != ticket:
                return None
            loop.phase = _Phase.POLLING  # the deadline entry stays armed
        try:
            self._check_fork()
            if not self._poll_lock.acquire(blocking=False):
                # A caller's poll, release or stop is under way (its store call may hang):
                # the batch does not wait for it; this poll goes after it on a worker.
                with self._state:
                    if loop.ticket == ticket and loop.phase is _Phase.POLLING:
                        loop.phase = _Phase.QUEUED
                scheduler.submit(lambda: self._poll_on_worker(loop, ticket))
                return None
            try:
                if not loop.stopped:
                    action = self._begin_poll(read_first=read_first)
                    if isinstance(action, Observe if read_first else Renew):
                        assert isinstance(action, (Renew, Observe))
                        loop.in_batch = True
                        return action
                    if action is not None:
                        self._carry_out(action)
                        self._arm_deadline(loop)
                    self._end_poll()
            finally:
                if not loop.in_batch:
                    self._poll_lock.release()
            self._wake_listeners()
        except Exception:
            self._crashed(loop)
            return None
        self._hand_callbacks()
        self._park(loop)
        return None

    def _end_batched_poll(
        self, loop: _Loop, step: Renew, started_at: float, outcome: Outcome
    ) -> None:
        """On the batch's worker: the renewal ``step`` (sent at ``started_at``) came back
        with ``outcome``, exactly what its own ``renew`` would have; end the poll as
        :meth:`_poll_cycle` ends it.

        Without a store call of its own: a status report due now goes out on a worker of
        its own (:meth:`_report_after_batch`), never on the batch's, where the holdings
        after this one wait for their outcomes and their next renewals.
        """

        def settle() -> bool:
            with self._machine_lock:
                self._notify(self._settle(step, started_at, outcome))
                status_due = self._polled()
            self._arm_deadline(loop)
            return status_due

        self._end_batched(loop, settle)

    def _end_batched(self, loop: _Loop, settle: Callable[[], bool]) -> None:
        """On a batch's worker: ``settle`` feeds ``loop``'s outcome to the machine and says
        whether a status report is due; end the poll as :meth:`_poll_cycle` ends it, the
        report on a worker of its own (:meth:`_report_after_batch`)."""
        status_due = False
        try:
            try:
                status_due = settle()
                if status_due and self._status_to_group():
                    status_due = False  # the group sends it: nothing left of the poll
                if not status_due:
                    self._notify_loop()
            finally:
                self._leave_batch(loop)
            self._wake_listeners()
        except Exception:
            self._crashed(loop)
            return
        if status_due:
            scheduler.submit(functools.partial(self._report_after_batch, loop))
            return
        self._hand_callbacks()
        self._park(loop)

    def _report_after_batch(self, loop: _Loop) -> None:
        """On a worker: the rest of a poll whose renewal went out in a batch, with a status
        report due (``stop()`` may have come meanwhile: it reports for itself)."""
        try:
            with self._poll_lock:
                if not loop.stopped:
                    self._end_poll()
            self._wake_listeners()
        except Exception:
            self._crashed(loop)
            return
        self._hand_callbacks()
        self._park(loop)

    def _end_batched_read(
        self, loop: _Loop, started_at: float, outcome: Observed | Failure
    ) -> None:
        """On the read batch's worker: the follower's record (and the store's time), or the
        read's failure; try at once if the machine says so, then end the poll as
        :meth:`_poll_cycle` ends it (a status report due goes out on a worker of its own,
        as after a batched renewal: :meth:`_report_after_batch`)."""

        def settle() -> bool:
            with self._machine_lock:
                step = self._settle_observed(started_at, outcome)
                self._notify(step)
            if step.action is not None:
                self._carry_out(step.action)  # the try, by compare_and_set
            self._arm_deadline(loop)
            with self._machine_lock:
                return self._polled()

        self._end_batched(loop, settle)

    def _leave_batch(self, loop: _Loop) -> None:
        """Let go of the poll lock held for ``loop``'s renewal in a batch, if held."""
        if loop.in_batch:
            loop.in_batch = False
            self._poll_lock.release()

    def _step_down_for_good(self, starts: int, *, callbacks_here: bool = True) -> None:
        """Stop taking part and free the lease, unless ``start()`` ran since its call ``starts``.

        Runs the callbacks it caused first if ``callbacks_here`` (and none
        runs elsewhere), else leaves them to the callback thread. Then it sends
        the last status report, which waits for a batch in flight with this
        node's report (so that it lands after it); the step-down, its callbacks
        and the release do not: a hung status batch delays none of them.
        """
        with self._poll_lock:
            stopping = self._starts == starts
            if stopping:
                self._confirm_before_stop()
                with self._machine_lock:
                    self._let_go(self._machine.stop(self._clock.monotonic()))
        self._wake_listeners()
        self._end_callbacks(callbacks_here)
        self._send_releases()
        if stopping and self._report_status:
            with self._poll_lock:
                if self._starts == starts:
                    self._send_status(running=False)
            self._end_callbacks(callbacks_here)  # its store_error event, if it failed

    def _end_callbacks(self, here: bool) -> None:
        """Run the queued callbacks in this thread if ``here``, else on the callback thread."""
        if here:
            self._run_callbacks(None)
        else:
            self._hand_callbacks()

    # --- plumbing -----------------------------------------------------------------------

    def _defers_reports(self) -> bool:
        """Monitor reports wait their turn among the callbacks when they reach user code
        (event listeners), and always when the timer makes them."""
        return self._reports_wait or self._monitor.has_listeners()

    def _confirm_before_stop(self) -> None:
        """Read the record first if an acquire of unknown outcome may have left it ours."""
        with self._machine_lock:
            confirmation = self._confirmation_before_stop()
        if confirmation is not None:
            self._carry_out(confirmation)

    def _send_releases(self) -> None:
        """Free in the store every lease this node gave up and has not freed yet."""
        with self._poll_lock:
            while True:
                with self._machine_lock:
                    release = self._next_unsent()
                if release is None:
                    return
                self._carry_out(release)

    def _carry_out(self, action: Action) -> None:
        """Make ``action``'s store call (under the poll lock), then feed the machine its
        outcome and queue what that reports."""
        started_at = self._clock.monotonic()
        outcome = perform(self._backend, self._request, action)
        with self._machine_lock:
            self._notify(self._settle(action, started_at, outcome))

    def _run_callbacks(self, loop: _Loop | None) -> None:
        """Run the queued callbacks still due, unless they already run elsewhere.

        ``loop`` is the blocking loop whose thread this is, if any: ``stop()``
        stops waiting for that thread while it is inside a callback.
        """
        me = threading.current_thread()
        if not self._queue.claim(me):
            return
        try:
            while (call := self._next_callback(me)) is not None:
                self._in_callback(loop, True)
                try:
                    run_callback(call.callback, call.name, *call.args)
                finally:
                    self._in_callback(loop, False)
        finally:
            self._queue.give_up(me)
            with self._state:
                self._state.notify_all()  # wait_idle() may be waiting for the callbacks

    def _in_callback(self, loop: _Loop | None, inside: bool) -> None:
        if loop is None:
            return
        with self._state:
            loop.in_callback = inside
            self._state.notify_all()

    def _send_status(self, *, running: bool) -> None:
        """Send this node's status report now, by itself. A running node's report is
        skipped while one of its status group's batches is sending one (the report it
        sends is as new); the last report (``running=False``) waits for that batch, so
        that it lands after it."""
        backend = self._backend
        if Capability.MEMBER_STATUS not in backend.capabilities or not isinstance(
            backend, MemberStatusBackend
        ):
            return
        if not self._status_lock.acquire(blocking=not running):
            return
        try:
            with self._machine_lock:
                member, at = self._member_record(running=running)
            error: BackendError | None = None
            try:
                backend.report_member(member)
            except BackendError as caught:
                error = caught
            with self._machine_lock:
                self._status_sent(member, at, error)
        finally:
            self._status_lock.release()

    def fenced(
        self, collection: Collection[DocT], *, field: str = "_fence"
    ) -> FencedCollection[DocT]:
        """``collection`` with its writes fenced by the current term's token (docs/locks.md).

        Raises :class:`~mongoelector.errors.NotLeader` if this node does not
        lead now. Its writes raise :class:`~mongoelector.errors.LockLost`,
        before anything is sent, once that term is over, even if a later term
        has begun: call ``fenced()`` again for the new term.
        """
        from mongoelector.fencing import FencedCollection  # noqa: PLC0415 - pymongo on use
        from mongoelector.fencing._tokens import term_token  # noqa: PLC0415

        return FencedCollection(collection, term_token(self), key=self._key, field=field)

    def __enter__(self) -> LeaderElector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Batched(BatchedLoop["LeaderElector", _Loop]):
    """A started elector's scheduled loop as a member of its store's renew, read and status
    groups.

    While the elector leads, its next poll is a renewal of its lease: the renew
    group (``renew_many``) sends it together with the renewals of the other holdings of
    that store (locks, electors) that fall due soon, in one ``renew_many`` call, and
    the outcome comes back to the elector's machine exactly as its own ``renew``'s
    would (a refusal steps it down, a failure is retried, the renew deadline is kept
    by the timer meanwhile). While it follows, the read group (``get_many``) reads its
    record with those of the other followers due soon, in one ``get_many``
    (:mod:`mongoelector._sync.reads`). Its status reports go out with those of the other
    started electors of that store due soon, in one ``report_members``, on a worker the
    poll does not wait for (:mod:`mongoelector._sync.status`).
    """

    __slots__ = ()

    group: batches.RenewGroup | None
    read_group: reads.ReadGroup | None
    status_group: status.StatusGroup | None

    def __init__(
        self,
        elector: LeaderElector,
        loop: _Loop,
        *,
        renew_many: bool,
        get_many: bool,
        report_many: bool = False,
    ) -> None:
        super().__init__(elector, loop)
        backend: RenewManyBackend = elector._backend  # type: ignore[assignment]
        clock = elector._clock
        self.group = batches.enter(self, backend, clock) if renew_many else None
        self.read_group = reads.enter(self, elector._backend, clock) if get_many else None
        self.status_group = status.enter(self, elector._backend, clock) if report_many else None

    # --- in the status group ----------------------------------------------------------

    def status_timing(self, now: float) -> RenewTiming | None:
        with self._elector._machine_lock:
            return super().status_timing(now)

    def _claim_status(self) -> bool:
        """Mark the loop's report queued; ``False`` if it is already, or the loop ended."""
        elector, loop = self._elector, self._loop
        with elector._state:
            if loop.done or loop.stopped or loop.status_queued:
                return False
            loop.status_queued = True
            return True

    def _may_join_status(self) -> bool:
        loop = self._loop
        return not (loop.status_queued or loop.stopped or loop.done)

    def _status_begin(self) -> tuple[MemberRecord, float] | None:
        """On the batch's worker: the report to send, the elector's status lock then held
        until :meth:`_status_end`; ``None`` (the claim settled) if the loop was stopped
        (its stop reports for itself) or a report of its own is being sent."""
        elector, loop = self._elector, self._loop
        if elector._status_lock.acquire(blocking=False):
            with elector._state:
                ended = loop.stopped or loop.done
            if not ended:
                with elector._machine_lock:
                    return elector._member_record(running=True)
            elector._status_lock.release()
        self._settle_claim()
        return None

    def _status_end(self, member: MemberRecord, at: float, error: BackendError | None) -> None:
        """On the batch's worker: the report ``member`` (made at ``at``) was sent, or failed
        with ``error`` (then retried after a later poll). Another report due now goes out
        for the elector's started loop, which is a new one if it was started again while
        this report was in flight (it skipped its own meanwhile)."""
        elector, loop = self._elector, self._loop
        try:
            with elector._state:
                stale = loop.stopped
            with elector._machine_lock:
                again = elector._status_landed(member, at, error, stale=stale)
        finally:
            elector._status_lock.release()
            self._settle_claim()
        if again:
            elector._status_to_group()  # now, not a poll later: the started loop's, if any
        elector._hand_callbacks()

    def _unclaim_status(self) -> None:
        """The report claimed is not to be sent after all (it is not due any more)."""
        self._settle_claim()

    def _settle_claim(self) -> None:
        with self._elector._state:
            self._loop.status_queued = False
            self._elector._state.notify_all()

    # --- in the renew and read groups -----------------------------------------------------

    @property
    def _rules(self) -> _Batched:
        return self

    def timing(self, now: float | None = None) -> RenewTiming | None:
        """When the term must next be renewed; ``None`` unless the elector leads (trusted)."""
        with self._elector._machine_lock:
            return self._elector._renew_timing(now)

    def read_timing(self, now: float | None = None) -> RenewTiming | None:
        """When the follower's next poll falls due; ``None`` unless it would read first."""
        with self._elector._machine_lock:
            return self._elector._read_timing(now)

    def _may_join_read(self, now: float) -> bool:
        """Whether the loop waits for its next poll, due soon enough to join a read batch at
        ``now`` (a quick, racy read: :meth:`read_timing` and :meth:`_join` decide)."""
        loop = self._loop
        return loop.phase is _Phase.PARKED and self._elector._due_to_join(
            loop.parked_until, now, read=True
        )

    def _poll_alone(self, ticket: int) -> None:
        """Nobody joined the read: the poll queued as ``ticket`` is an ordinary one."""
        elector, loop = self._elector, self._loop
        scheduler.submit(lambda: elector._poll_on_worker(loop, ticket))

    def _read_step(self, ticket: int) -> Observe | None:
        action = self._elector._begin_batched_poll(self._loop, ticket, read_first=True)
        assert action is None or isinstance(action, Observe)
        return action

    def _observed(self, started_at: float, outcome: Observed | Failure) -> None:
        self._elector._end_batched_read(self._loop, started_at, outcome)

    def _may_join(self, now: float) -> bool:
        """Whether the loop waits for its next poll, due soon enough to join a batch at
        ``now`` (a quick, racy read: :meth:`timing` and :meth:`_join` decide)."""
        loop = self._loop
        return loop.phase is _Phase.PARKED and self._elector._due_to_join(
            loop.parked_until, now, read=False
        )

    def _enqueue(self) -> int | None:
        return self._elector._enqueue_poll(self._loop)

    def _join(self) -> int | None:
        return self._elector._enqueue_poll(self._loop, parked_only=True)

    def _batch_step(self, ticket: int) -> Renew | None:
        action = self._elector._begin_batched_poll(self._loop, ticket)
        assert action is None or isinstance(action, Renew)
        return action

    def _may_go_on(self) -> bool:
        return True  # the poll lock is held: a stop waits for the renewal in flight

    def _renew(self, step: Renew) -> Outcome:
        """Nobody joined: the store's own ``renew``."""
        outcome = perform(self._elector._backend, self._elector._request, step)
        assert outcome is None or isinstance(outcome, (LeaseRecord, Failure))
        return outcome

    def _batch_renewed(
        self, step: Renew, started_at: float, outcome: Outcome, answered_at: float
    ) -> None:
        self._elector._end_batched_poll(self._loop, step, started_at, outcome)

    def _finish(self) -> None:
        """The batch crashed before this renewal's outcome was fed back: the loop crashes
        (it steps down for good, as a poll that raised)."""
        self._elector._leave_batch(self._loop)
        self._elector._crashed(self._loop)
