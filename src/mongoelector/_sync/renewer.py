"""What keeps one lock holding alive (``Lock(auto_renew=True)``), on the process's scheduler.

A renewer runs the pure :class:`~mongoelector.core.renewal.Renewal` rules: it
renews when they say so, waits on the lock's clock in between (so under a
:class:`~mongoelector.testing.FakeClock` it waits until a test advances the
clock), and ends when the holding is released, replaced or lost. It has no
thread of its own: the :mod:`~mongoelector._sync.scheduler` wakes it when
due, makes its store calls on a worker thread and runs its user callbacks on
a callback thread, so a callback that blocks delays no other holding. One
renewer's steps never overlap: each starts after the previous one (and its
callbacks) ended, in the order the old renewer thread made them.

A renewer never outlives its holding: it ends on its own once the holding is
lost or ended, :meth:`Renewer.stop` ends it, and every renewer still running
when the interpreter exits is stopped by an ``atexit`` hook before the
interpreter finalizes. A stop waits for the renewer's own work (an in-flight
renew), never for a user callback it is running (an event listener,
``on_lost``): that callback may be waiting for the caller of ``stop()``.
"""

from __future__ import annotations

import atexit
import enum
import functools
import logging
import math
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from mongoelector._common.renewing import RenewalRules, StopControl
from mongoelector._sync import batches, scheduler
from mongoelector._sync.calls import Failure
from mongoelector.backends.protocol import LeaseRecord, RenewItem, RenewManyBackend
from mongoelector.clock import Clock
from mongoelector.core.batching import JOIN_FRACTION
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost, Renewal, RenewalStep, SleepUntil

if TYPE_CHECKING:
    from mongoelector._common.monitor import Monitor

__all__ = ["Holder", "Renewer", "running"]

logger = logging.getLogger("mongoelector.lock")

# Strong references: a renewer in it is running, so the scheduler (an entry, a queued
# call, a thread) refers to it anyway; it leaves the set as it ends. (A WeakSet would cost
# each holding a weak reference, about 150 bytes with its place.)
_running: set[Renewer] = set()
_running_guard = threading.Lock()


def _after_fork_in_child() -> None:
    global _running_guard  # noqa: PLW0603 - a fresh lock for the child
    _running_guard = threading.Lock()
    _running.clear()  # the parent's renewers do not run in the child


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _stop_all_at_exit() -> None:
    for renewer in running():
        renewer.stop()


def running() -> list[Renewer]:
    """The renewers of this process that have started and not ended yet."""
    with _running_guard:
        return list(_running)


class _Phase(enum.Enum):
    NEW = "new"
    PARKED = "parked"  # waiting for its time in the scheduler
    QUEUED = "queued"  # due, waiting for a worker
    WORKING = "working"  # on a worker: deciding, renewing, recording a loss
    CALLBACKS = "callbacks"  # handed to (or running on) a callback thread
    DONE = "done"


class Holder(Protocol):
    """What a renewer asks of the lock whose holding it keeps: the lock's own methods.

    The renewer keeps a reference to the lock rather than a bound method (or a
    ``functools.partial``) per call it makes: a process may keep thousands of
    holdings, and each such object costs every one of them 64 to 130 bytes.
    """

    @property
    def _monitor(self) -> Monitor: ...

    def _renew(self, action: Renew) -> LeaseRecord | Failure | None: ...

    def _renew_outcome(
        self,
        token: int,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float | None = None,
    ) -> None: ...

    def _record_loss(self, renewal: Renewal, lost: Lost) -> bool: ...

    def _report_loss(self, renewal: Renewal, lost: Lost) -> None: ...


class Renewer(RenewalRules):
    """Renews one holding of lock ``key`` on the process's scheduler until it is lost or ended.

    ``mutex`` guards the keeper behind ``renewal`` (it is shared with the lock);
    it is never held during a backend call or a callback. ``holder`` is the
    lock: its ``_renew`` performs a ``Renew`` action (the store call alone);
    its ``_renew_outcome(token, started_at, outcome, answered_at)`` then tells
    the lock's listeners about it, unless the renewer was stopped meanwhile;
    it runs on a callback thread when the lock's monitor ``has_listeners()``
    (user code will see it), else on the worker. If the holding is lost, its
    ``_record_loss(renewal, lost)`` records it (no user code; ``False`` if it
    was no longer the lock's latest holding) and ``_report_loss(renewal,
    lost)`` runs the user callbacks, once, on a callback thread.

    With ``batch_with`` (the lock's backend, when it renews in batches), and
    ``owner`` and ``ttl`` (what the lock's renewals send), the renewer
    belongs to that backend's :class:`~mongoelector._sync.batches.RenewGroup`
    while it runs: its renewals go out together with those of the other
    holdings of that store that fall due soon (``renew_many``), and each
    outcome comes back to it as its own ``renew``'s would.

    A process may keep many thousands of renewers, so each is lean: slots, its
    state guarded by the lock's ``mutex``, and a condition variable only while
    someone waits for it (:meth:`stop` for a renew in flight, :meth:`wait_idle`).
    It is its holding's :class:`~mongoelector._common.renewing.RenewalRules`
    (``_rules`` is itself) and the action of its wake-up entry (calling it is
    :meth:`_due`): no object of its own for either.
    """

    __slots__ = (
        "_batch_with",
        "_control",
        "_entry",
        "_group",
        "_holder",
        "_loss_pending",
        "_loss_reporter",
        "_owner",
        "_parked_until",
        "_phase",
        "_ticket",
        "_ttl",
        "_waiters",
        "_waiting",
    )

    def __init__(
        self,
        *,
        key: str,
        clock: Clock,
        mutex: threading.RLock,
        renewal: Renewal,
        holder: Holder,
        batch_with: RenewManyBackend | None = None,
        owner: str | None = None,
        ttl: float | None = None,
    ) -> None:
        if batch_with is not None and (owner is None or ttl is None):
            raise TypeError("batch_with needs the owner and ttl of the renewals")
        super().__init__(key=key, clock=clock, mutex=mutex, renewal=renewal)
        self._holder = holder
        # Made over ``_guard`` by the first of the threads waiting for a change of state
        # (see _wait_locked), dropped when the last of them is done.
        self._waiters: threading.Condition | None = None
        self._waiting = 0
        self._control = StopControl()
        self._phase = _Phase.NEW
        self._parked_until: float | None = None
        # the wake-up (parked), or the renew deadline (queued, working, in callbacks)
        self._entry: scheduler.Entry | None = None
        self._ticket = 0  # which queued step (and deadline) counts: a later one voids the earlier
        self._loss_pending = False  # a loss the timer recorded is still being reported
        self._loss_reporter: int | None = None  # the thread reporting it (see request_stop)
        self._batch_with = batch_with
        self._owner = owner  # with ttl, what a renewal sends besides key and token
        self._ttl = ttl
        self._group: batches.RenewGroup | None = None  # while running, with batch_with

    @property
    def _rules(self) -> RenewalRules:
        """The holding's renew rules: the renewer itself."""
        return self

    @property
    def _key(self) -> str:
        return self.key

    @property
    def _guard(self) -> threading.RLock:
        """Guards the renewer's state: the lock's own mutex (no lock object of its own),
        never held during a store call or user code. Nobody waits for the renewer
        (``stop``, ``wait_idle``) while holding it: a wait releases it, however deeply
        it is held."""
        return self._mutex

    def __call__(self) -> None:
        """The action of its wake-up entry: :meth:`_due`."""
        self._due()

    # --- the lock's side: what the holding's calls and losses go to ---------------------

    def _renew(self, step: Renew) -> LeaseRecord | Failure | None:
        """The store call of ``step`` alone (the lock's ``_renew``)."""
        return self._holder._renew(step)

    def _record_loss(self, lost: Lost) -> bool:
        """Record the loss (no user code); ``False`` if no longer the lock's latest holding."""
        return self._holder._record_loss(self._rules.renewal, lost)

    def _report_loss(self, lost: Lost) -> None:
        """Run the user callbacks of a recorded loss."""
        self._holder._report_loss(self._rules.renewal, lost)

    def _wait_locked(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Under ``_guard``: wait until ``predicate()`` (checked under it) holds; ``False``
        if ``timeout`` real seconds passed first. Every change of state that a waiter may
        be waiting for is followed, under ``_guard``, by :meth:`_notify_locked`."""
        if predicate():
            return True
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = threading.Condition(self._guard)
        self._waiting += 1
        try:
            return waiters.wait_for(predicate, timeout)
        finally:  # ``_guard`` is held again here, even if the wait raised
            self._waiting -= 1
            if self._waiting == 0:
                self._waiters = None

    def _notify_locked(self) -> None:
        """Under ``_guard``: wake the threads waiting for a change of state, if any."""
        waiters = self._waiters
        if waiters is not None:
            waiters.notify_all()

    @property
    def name(self) -> str:
        return f"mongoelector-renew-{self._key}"

    def start(self) -> None:
        """Begin renewing: the first wait is decided at once, anything else goes to a worker."""
        with _running_guard:
            _running.add(self)
        try:
            if self._batch_with is not None:
                self._group = batches.enter(self, self._batch_with, self._clock)
            step = self._rules.next_step()
            if isinstance(step, SleepUntil):
                self._park(step.until)
                return
            self._queue(step)
        except BaseException:
            self._finish()  # leaves the running set and the group: nothing keeps it
            raise

    @property
    def ended(self) -> bool:
        """True once the renewer has finished its last step."""
        with self._guard:
            return self._control.done

    def stop(self) -> None:
        """Stop renewing: no store call of this renewer is in flight or starts after it returns.

        Waits for an in-flight renew (its reply is then ignored) and for the
        recording of a loss the renewer found, never for a user callback:
        if it runs (or is about to run) one, it is left to finish it and then
        ends. Otherwise the renewer has ended when this returns. Called from
        the renewer's own callback, it only asks.
        """
        with self._guard:
            if self._stop_locked():
                return
            self._wait_locked(self._control.settled)

    def request_stop(self) -> None:
        """Ask the renewer to stop, without waiting for a renew in flight.

        Nothing more is decided or sent; a renew in flight (maybe hung in the
        store) is not waited for: its reply is ignored and the renewer ends
        when it returns. For ``on_lost`` of a loss found at the renew deadline
        while the renewer's own renew was in flight (:attr:`reporting_loss_here`).
        """
        with self._guard:
            self._stop_locked()

    @property
    def reporting_loss_here(self) -> bool:
        """True in the callback reporting a loss found at the deadline while a renew was in
        flight or a listener ran: the renewer's own work may be stuck, so do not wait for it."""
        with self._guard:
            return self._loss_reporter == threading.get_ident()

    def _stop_locked(self) -> bool:
        """Request the stop (no deadline action after it); whether the renewer has ended."""
        self._control.request_stop()
        self._cancel_entry_locked()
        if self._phase in (_Phase.NEW, _Phase.PARKED, _Phase.QUEUED):
            self._finish_locked()
        return self._control.done

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the renewer has caught up with the clock, or has ended.

        Caught up means waiting for a time the clock has not reached yet.
        Returns ``False`` if ``timeout`` (real seconds) passed first.
        """
        with self._guard:
            return self._wait_locked(self._is_idle, timeout)

    def _is_idle(self) -> bool:
        if self._loss_pending:
            return False  # on_lost of a loss the timer recorded has not run yet
        if self._control.done:
            return True
        return (
            self._phase is _Phase.PARKED
            and self._parked_until is not None
            and self._parked_until > self._clock.monotonic()
        )

    # --- the steps, on the scheduler's threads -----------------------------------------

    def _step(self, first: RenewalStep | None = None) -> None:
        """On a worker: decide, renew, and go on until a wait, callbacks or the end.

        ``first`` is a step already decided (it must be carried out: a
        ``Lost`` is reported by the rules only once).
        """
        try:
            self._steps(first)
        except BaseException:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._key)
            self._finish()

    def _steps(self, first: RenewalStep | None) -> None:
        while True:
            if not self._may_go_on():
                return
            step, first = first if first is not None else self._rules.next_step(), None
            if isinstance(step, Ended):
                self._finish()
                return
            if isinstance(step, Lost):
                self._lost(step)
                return
            if isinstance(step, SleepUntil):
                self._park(step.until)
                return
            if self._group is not None:
                self._group.due(self)  # with the holdings of this store that join it
                return
            if not self._may_go_on():
                return
            started_at = self._clock.monotonic()
            outcome = self._renew(step)
            if not self._after_renew(step, started_at, outcome, self._clock.monotonic()):
                return

    def _after_renew(
        self,
        step: Renew,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float,
    ) -> bool:
        """On a worker: feed back what ``step`` came back with; whether to decide on here."""
        if not self._may_go_on():
            return False  # stopped meanwhile: the reply is ignored
        if self._holder._monitor.has_listeners():
            self._to_callbacks(self._reported, step, started_at, outcome, answered_at)
            return False
        self._holder._renew_outcome(step.token, started_at, outcome, answered_at)  # logging only
        lost = self._rules.renewed(step, started_at, outcome)
        if lost is not None:
            self._lost(lost)
            return False
        return True

    # --- in a batch (see mongoelector._sync.batches) -------------------------------------

    def _renew_item(self, step: Renew) -> RenewItem:
        """``step`` as one item of a ``renew_many`` batch (what the lock's ``renew`` sends)."""
        assert self._owner is not None and self._ttl is not None
        return RenewItem(key=self._key, owner=self._owner, token=step.token, ttl=self._ttl)

    def _may_join(self, now: float) -> bool:
        """Whether the renewer waits for its own time, due soon enough to join a batch at
        ``now`` (a quick, racy read, never excluding one that may join: :meth:`_join` and
        the holding's own timing decide)."""
        until = self._parked_until
        return (
            self._phase is _Phase.PARKED
            and until is not None
            and until <= now + self._rules.renewal.renew_interval * JOIN_FRACTION
        )

    def _join(self) -> int | None:
        """Leave the wait to renew in another holding's batch; the ticket, or ``None`` if the
        renewer no longer waits (it woke, was stopped or ended meanwhile)."""
        return self._enqueue(parked_only=True)

    def _batch_step(self, ticket: int) -> Renew | None:
        """On a worker: take the step queued as ``ticket``; the renewal to send, or ``None``
        (taken by the timer at the deadline, stopped, lost or ended: already handled)."""
        with self._guard:
            if self._phase is not _Phase.QUEUED or self._ticket != ticket:
                return None
            self._phase = _Phase.WORKING  # the deadline stays armed (see _overdue)
        try:
            if not self._may_go_on():
                return None
            step = self._rules.renew_now()  # ahead of its own time, if it joined
            if isinstance(step, Ended):
                self._finish()
                return None
            if isinstance(step, Lost):
                self._lost(step)
                return None
            return step
        except BaseException:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._key)
            self._finish()
            return None

    def _batch_renewed(
        self,
        step: Renew,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float,
    ) -> None:
        """On a worker: the batch's call (sent at ``started_at``, answered at
        ``answered_at``) returned ``outcome`` for this holding; go on."""
        try:
            if self._after_renew(step, started_at, outcome, answered_at):
                self._steps(None)
        except BaseException:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._key)
            self._finish()

    def _reported(
        self,
        step: Renew,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float,
    ) -> None:
        """On a callback thread: tell the listeners about a renew, then go on."""
        if not self._may_go_on():
            return  # stopped before the listeners were told: the reply is ignored
        if not self._in_callbacks(
            self._holder._renew_outcome, step.token, started_at, outcome, answered_at
        ):
            return
        lost = self._rules.renewed(step, started_at, outcome)
        if lost is not None:
            if self._record_loss(lost):
                self._in_callbacks(self._report_loss, lost)
            self._finish()
            return
        self._queue()

    def _may_go_on(self) -> bool:
        """On a worker: ``False`` (and the renewer ended) once stopped."""
        with self._guard:
            if self._control.may_go_on():
                return True
            self._finish_locked()
            return False

    def _lost(self, lost: Lost) -> None:
        if self._record_loss(lost):
            self._to_callbacks(self._report_lost, lost)
        else:
            self._finish()

    def _report_lost(self, lost: Lost) -> None:
        self._in_callbacks(self._report_loss, lost)
        self._finish()

    def _to_callbacks(self, then: Callable[..., None], *args: object) -> None:
        """Hand the renewer to a callback thread: from now on a stop need not wait for it."""
        with self._guard:
            self._control.enter_callbacks()
            self._phase = _Phase.CALLBACKS
            self._notify_locked()
        scheduler.submit_callback(lambda: self._on_callback_thread(then, *args))

    def _on_callback_thread(self, then: Callable[..., None], *args: object) -> None:
        try:
            then(*args)
        except BaseException:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._key)
            self._finish()

    def _in_callbacks(self, callbacks: Callable[..., None], *args: object) -> bool:
        """Run user code (a stop does not wait for it); whether to go on afterwards."""
        with self._guard:
            self._control.enter_callbacks()
            self._phase = _Phase.CALLBACKS
            self._notify_locked()
        try:
            callbacks(*args)
        finally:
            with self._guard:
                go_on = self._control.leave_callbacks()
                if go_on:
                    self._phase = _Phase.WORKING
                else:
                    self._finish_locked()
                self._notify_locked()
        return go_on

    def _park(self, deadline: float) -> None:
        """Wait in the scheduler until the clock reaches ``deadline``."""
        with self._guard:
            if not self._control.may_go_on():
                self._finish_locked()
                return
            self._phase = _Phase.PARKED
            self._parked_until = deadline
            self._ticket += 1  # voids the deadline entry of an earlier queued step
            self._cancel_entry_locked()
            self._entry = scheduler.call_at(self._clock, deadline, self)  # calls _due
            self._notify_locked()

    def _due(self) -> None:
        """In the timer thread: a wake-up time came; decide what to do, if the renewer's
        wait is due.

        A wake-up that fired just as a batch took the renewer out of that wait
        (:meth:`_join`) may run once the renewer waits again, for a later time:
        it does nothing then (that wait has its own wake-up, left armed).
        """
        with self._guard:
            until = self._parked_until
            if self._phase is not _Phase.PARKED or until is None:
                return
            if until > self._clock.monotonic():
                return  # a stale wake-up: the renewer waits for a later time now
            self._phase = _Phase.WORKING
            self._parked_until = None
            self._cancel_entry_locked()  # this wake-up (a no-op once fired), or a due later one
        self._decide()

    def _overdue(self, ticket: int) -> None:
        """In the timer thread: the renew deadline of the step queued as ``ticket`` came.

        Still queued (no worker took it): the timer decides. Taken by a worker
        (its renew in flight, maybe hung in the store) or in callbacks (a
        listener that blocks): the timer records the loss itself, so it waits
        for neither, and leaves the phase alone: the worker's late reply meets
        a holding no longer kept (it is not trusted) and the renewer ends.
        """
        with self._guard:
            if self._ticket != ticket or not self._control.may_go_on():
                return  # a later wait or step replaced this deadline, or stopped
            if self._phase not in (_Phase.QUEUED, _Phase.WORKING, _Phase.CALLBACKS):
                return
            self._entry = None
            queued = self._phase is _Phase.QUEUED
            if queued:
                self._phase = _Phase.WORKING
            else:
                self._loss_pending = True
        if queued:
            self._decide()
            return
        try:
            verdict = self._rules.current()  # drops the holding and says Lost at most once
            if isinstance(verdict, Lost) and self._record_loss(verdict):
                scheduler.submit_callback(lambda: self._report_overdue_loss(verdict))
                return
        except BaseException:
            logger.exception("renewer of lock %r crashed at its deadline", self._key)
        self._loss_reported()

    def _report_overdue_loss(self, lost: Lost) -> None:
        """On a callback thread: run the user callbacks of a loss the timer recorded."""
        with self._guard:
            self._loss_reporter = threading.get_ident()
        try:
            self._report_loss(lost)
        except BaseException:
            logger.exception("reporting the loss of lock %r crashed", self._key)
        finally:
            self._loss_reported()

    def _loss_reported(self) -> None:
        with self._guard:
            self._loss_pending = False
            self._loss_reporter = None
            self._notify_locked()

    def _decide(self) -> None:
        """In the timer thread: the decision alone (no I/O, no user code).

        A loss is recorded here, so the deadline holds however busy the
        workers are; ``on_lost`` goes to a callback thread, a renewal to a worker.
        """
        try:
            if not self._may_go_on():
                return
            step = self._rules.next_step()
            if isinstance(step, Ended):
                self._finish()
            elif isinstance(step, Lost):
                self._lost(step)
            elif isinstance(step, SleepUntil):
                self._park(step.until)
            elif self._group is not None:
                self._group.due(self)  # with the holdings of this store that join it
            else:
                self._queue()  # the worker decides afresh when it gets there
        except BaseException:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._key)
            self._finish()

    def _queue(self, first: RenewalStep | None = None) -> None:
        """Queue the next step for a worker; if none takes it by the renew deadline, the
        timer thread records the loss (:meth:`_overdue`).

        ``first`` is a step already decided (a ``Lost`` or ``Ended`` must be
        carried out by the worker: the rules report each only once).
        """
        ticket = self._enqueue()
        if ticket is not None:
            scheduler.submit(functools.partial(Renewer._run_queued, self, ticket, first))

    def _enqueue(self, *, parked_only: bool = False) -> int | None:
        """Mark the renewer queued, its renew deadline armed (:meth:`_overdue`); its ticket.

        ``None`` if it was stopped (it has ended), or, with ``parked_only``, if it
        was not waiting for its time (it is left as it was).
        """
        with self._guard:
            deadline = self._rules.deadline()
            if parked_only and self._phase is not _Phase.PARKED:
                return None
            if not self._control.may_go_on():
                self._finish_locked()
                return None
            self._phase = _Phase.QUEUED
            self._parked_until = None
            self._ticket += 1
            ticket = self._ticket
            self._cancel_entry_locked()
            if deadline != math.inf:
                # A partial of the plain function: half the bytes of a closure, and a batch
                # arms one for each of up to thousands of holdings at once.
                self._entry = scheduler.call_at(
                    self._clock, deadline, functools.partial(Renewer._overdue, self, ticket)
                )
            self._notify_locked()
        return ticket

    def _run_queued(self, ticket: int, first: RenewalStep | None = None) -> None:
        with self._guard:
            if self._phase is not _Phase.QUEUED or self._ticket != ticket:
                return  # stopped, or taken by the timer at the deadline, while queued
            self._phase = _Phase.WORKING  # the deadline stays armed (see _overdue)
        self._step(first)

    def _cancel_entry_locked(self) -> None:
        entry, self._entry = self._entry, None
        if entry is not None:
            scheduler.cancel(entry)

    def _finish(self) -> None:
        with self._guard:
            self._finish_locked()

    def _finish_locked(self) -> None:
        if self._phase is _Phase.DONE:
            return
        self._phase = _Phase.DONE
        self._parked_until = None
        self._cancel_entry_locked()
        self._control.finish()
        self._notify_locked()
        with _running_guard:
            _running.discard(self)
        if self._group is not None:
            self._group.leave(self)

    def __repr__(self) -> str:
        return (
            f"Renewer(key={self._key!r}, token={self._rules.renewal.token}, "
            f"phase={self._phase.value})"
        )
