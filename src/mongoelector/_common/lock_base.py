"""The state of a lease lock and every decision about it, shared by ``Lock`` and ``AsyncLock``.

A driver subclasses :class:`LockBase` with the backend type it calls, and
adds only the I/O: calling the store, and waiting between tries. What one
``acquire()`` does next is :class:`AcquireRun`'s (around the pure
:class:`~mongoelector.core.lock_machine.AcquireAttempt`); the life of a
holding (trusted, renewed, released, or lost) is the base class's, kept with
the pure :class:`~mongoelector.core.renewal.Renewal` rules.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from mongoelector._common.monitor import operation_of
from mongoelector._common.outcomes import Failure, Result, request_for
from mongoelector._common.participant import Participant
from mongoelector._identity import new_acquisition_id
from mongoelector._listeners import LOCK, EventListener
from mongoelector._sync.callbacks import check_callback
from mongoelector._validation import check_key, check_seconds
from mongoelector._value import Value
from mongoelector.backends.protocol import LeaseRecord, LeaseRequest
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.events import Action, LossReason, Release, TryAcquire
from mongoelector.core.lease import Holding, LeaseKeeper
from mongoelector.core.lock_machine import (
    AcquireAttempt,
    Call,
    Decision,
    Fail,
    GiveUp,
    GiveUpReason,
    Succeed,
    WaitThenCall,
)
from mongoelector.core.renewal import Lost, Renewal
from mongoelector.errors import (
    AcquireTimeout,
    AmbiguousOutcome,
    BackendError,
    LockExists,
    LockLost,
)
from mongoelector.timing import LeaseTiming

__all__ = ["AcquireRun", "LockBase", "ReleasePlan", "describe_holder"]

#: Guards the making of every lock's ``lost`` Event (see ``LockBase.lost``); held briefly.
_LOST_GUARD = threading.Lock()


def _after_fork_in_child() -> None:
    global _LOST_GUARD  # noqa: PLW0603 - a fresh lock for the child
    _LOST_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)

BackendT = TypeVar("BackendT")


@functools.lru_cache(maxsize=64, typed=True)
def _shared_timing(ttl: float, renew_deadline: float | None) -> LeaseTiming:
    return LeaseTiming.for_ttl(ttl, renew_deadline=renew_deadline)


def _timing_for(ttl: float, renew_deadline: float | None) -> LeaseTiming:
    """The lease timing of a lock with these settings: one (immutable) object shared by
    the locks of the same ``ttl`` and ``renew_deadline``, as a process keeping thousands
    of locks mostly has them."""
    if type(ttl) in (int, float) and type(renew_deadline) in (int, float, type(None)):
        return _shared_timing(ttl, renew_deadline)
    return LeaseTiming.for_ttl(ttl, renew_deadline=renew_deadline)


def _held_by(holder: LeaseRecord) -> str:
    expires = holder.expires_at.isoformat() if holder.expires_at is not None else "unknown"
    return (
        f"held by {holder.owner} on host {holder.host!r} "
        f"(pid {holder.pid}, token {holder.token}, expires {expires} server time)"
    )


def describe_holder(key: str, holder: LeaseRecord | None) -> str:
    """A sentence naming who holds lock ``key`` (for ``LockExists``)."""
    if holder is None or holder.owner is None:
        return f"lock {key!r} is held"
    return f"lock {key!r} is {_held_by(holder)}"


class ReleasePlan(Value):
    """The ``release`` store call a lock's ``release(force)`` must make.

    Without ``force``, a ``token`` of ``None`` means an acquire of unknown
    outcome: the driver reads the record first and releases only the token it
    finds there (see :meth:`LockBase._token_in`), since a release without a
    token could free a later holding if it landed late.
    """

    __slots__ = ("force", "owner", "token")

    def __init__(self, *, owner: str | None, token: int | None, force: bool) -> None:
        self.owner = owner
        self.token = token
        self.force = force


class AcquireRun:
    """One ``acquire()`` call: the machine's plan, the last store error, and the outcome.

    The driver makes each call that :attr:`decision` asks for (waiting first
    for a :class:`WaitThenCall`), but only after :meth:`claim` says this run
    may use the lock object; it feeds the outcome to :meth:`feed`, and once
    the decision is neither a call nor a wait, :meth:`finish` returns ``True``
    or raises what the caller must see. :meth:`close` (always, in a
    ``finally``) lets the next caller of the object in.
    """

    def __init__(self, lock: LockBase[Any], attempt: AcquireAttempt, timeout: float | None) -> None:
        self._lock = lock
        self._attempt = attempt
        self._timeout = timeout
        self._error: BackendError | None = None
        #: The monotonic time the last reply was handled at (``None`` before one).
        self.answered_at: float | None = None
        self.decision: Decision = attempt.first()

    @property
    def pending(self) -> Call | WaitThenCall | None:
        """The call still to make (after waiting, for a ``WaitThenCall``), or ``None`` when done."""
        decision = self.decision
        return decision if isinstance(decision, (Call, WaitThenCall)) else None

    def claim(self) -> bool:
        """Make this run the lock object's only acquirer; ``False`` (and the machine told)
        if another caller of the object holds it or is acquiring it.

        A forced run replaces a holding the object still trusts: before its
        first store call the object stops trusting that holding, as
        :meth:`release` would (reported as released, never as lost), and
        remembers that the store still has it until the run settles it.
        """
        if self._lock._claim(self, force=self._attempt.force):
            call = self.pending
            if call is not None and isinstance(call.action, Release):
                self._lock._give_up_holding(call.action.token)
            elif self._attempt.force:
                self._lock._give_up_holding(None)
            return True
        self.decision = self._attempt.on_busy(self._lock.clock.monotonic())
        return False

    def owns(self, record: LeaseRecord) -> bool:
        """True if ``record`` was written by one of this run's tries."""
        return self._attempt.is_mine(record)

    @property
    def maybe_held(self) -> bool:
        """True if a write of this run may be in the store, or still land, unconfirmed."""
        return self._attempt.maybe_held

    def feed(self, action: Action, started_at: float, outcome: Result | Failure) -> None:
        """Record what ``action`` (sent at ``started_at``) returned or raised."""
        now = self.answered_at = self._lock._clock.monotonic()
        if isinstance(outcome, Failure):
            self._error = outcome.error
            self._lock._monitor.store_error(operation_of(action), outcome.error)
            self.decision = self._attempt.on_failure(action, now, ambiguous=outcome.ambiguous)
            return
        self.decision = self._attempt.on_result(action, started_at, now, outcome)

    def finish(self) -> bool:
        """``True`` once held; otherwise raise ``LockExists``, ``AcquireTimeout`` or the error."""
        decision = self.decision
        lock = self._lock
        if isinstance(decision, Succeed):
            lock._took(decision.holding, run=self)
            return True
        self.close()
        if isinstance(decision, GiveUp):
            if decision.reason is GiveUpReason.HELD:
                raise LockExists(describe_holder(lock.key, decision.holder))
            if decision.reason is GiveUpReason.BUSY:
                token = lock.token
                if token is not None:
                    raise LockExists(
                        f"lock {lock.key!r} is already held by this {type(lock).__name__} "
                        f"(token {token})"
                    )
                raise LockExists(
                    f"lock {lock.key!r} is being acquired by another caller "
                    f"of this {type(lock).__name__}"
                )
            holder = decision.holder
            who = (
                f": it is {_held_by(holder)}"
                if holder is not None and holder.owner is not None
                else ""
            )
            raise AcquireTimeout(
                f"lock {lock.key!r} not acquired within timeout={self._timeout!r} seconds{who}"
            )
        assert isinstance(decision, Fail)
        error = self._error
        if decision.maybe_held and not isinstance(error, AmbiguousOutcome):
            cause = f": {error}" if error is not None else ""
            raise AmbiguousOutcome(
                f"lock {lock.key!r} may be held by this {type(lock).__name__}; "
                f"gave up before confirming{cause} (release() frees it)",
                original=error,
            ) from error
        assert error is not None
        raise error

    def close(self) -> None:
        """Let the next caller in; a write of this run that may have landed is remembered."""
        lock = self._lock
        # Read without the mutex, as _unclaim does first: once the run is no longer the
        # acquirer (its holding taken), nothing is left to do.
        if lock._acquirer is self:
            lock._unclaim(self, maybe_held=self._attempt.maybe_held)


class LockBase(Participant[BackendT]):
    """A lease lock's identity, settings and holding, as this object knows them (no I/O).

    The holding is trusted for ``renew_deadline`` seconds from the start of
    the last successful acquire or renew; after that :attr:`token` is ``None``
    even if the store has not expired the lease yet.

    In a child forked from the process that made it, the object holds
    nothing: the parent's holding stays the parent's (see
    :class:`~mongoelector._common.participant.Participant`).
    """

    __slots__ = (
        "_acquirer",
        "_auto_renew",
        "_ending",
        "_keeper",
        "_lost",
        "_lost_now",
        "_maybe_held",
        "_maybe_token",
        "_mutex",
        "_on_lost",
        "_renewal",
        "_ttl",
    )

    def __init__(
        self,
        key: str,
        backend: BackendT,
        *,
        ttl: float,
        clock: Clock | None,
        renew_deadline: float | None,
        auto_renew: bool = False,
        on_lost: Callable[[], Any] | None = None,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        key = check_key(key)
        if not isinstance(auto_renew, bool):
            raise TypeError(f"auto_renew must be a bool, got {auto_renew!r}")
        self._auto_renew = auto_renew
        self._on_lost = check_callback(on_lost, name="on_lost")
        self._ttl = check_seconds(ttl, name="ttl")
        timing = _timing_for(self._ttl, renew_deadline)
        super().__init__(
            key, backend, timing=timing, clock=clock, kind=LOCK, event_listeners=event_listeners
        )
        self._mutex = threading.RLock()
        self._keeper = LeaseKeeper(
            renew_deadline=self._timing.renew_deadline, renew_interval=self._timing.retry_period
        )
        self._maybe_held = False
        self._maybe_token: int | None = None
        # The acquire() call in progress, if any: the object is a mutex among its callers.
        self._acquirer: AcquireRun | None = None
        # The latest holding: its renew rules, and how it ended.
        self._renewal: Renewal | None = None
        # How the latest holding ended, for LockLost: a text, or (for a release, the
        # common case) its token, put into words only when ensure() raises.
        self._ending: str | int | None = None
        # ``lost``, made on first use (an Event costs each lock about 800 bytes, and most
        # locks are never asked): ``_lost_now`` says whether it is set. Both change under
        # ``_LOST_GUARD`` only, so an Event made while a loss is recorded misses nothing.
        self._lost: threading.Event | None = None
        self._lost_now = False

    def _after_fork(self) -> None:
        had = self._keeper.holding is not None or self._maybe_held
        self._mutex = threading.RLock()
        self._keeper = LeaseKeeper(
            renew_deadline=self._timing.renew_deadline, renew_interval=self._timing.retry_period
        )
        self._maybe_held = False
        self._maybe_token = None
        self._acquirer = None
        self._renewal = None
        if had:
            self._ending = "the holding stayed with the parent process of this forked child"
        self._lost = None
        self._lost_now = False

    @property
    def auto_renew(self) -> bool:
        """True if a background renewer keeps each holding alive until release."""
        return self._auto_renew

    @property
    def retry_period(self) -> float:
        """Seconds between renewals of a kept holding, and between retries of a failed one."""
        return self._timing.retry_period

    # --- the holding, as this object knows it (no backend call) -----------------

    @property
    def holding(self) -> Holding | None:
        """The current holding while it is trusted, else ``None``."""
        self._check_fork()
        with self._mutex:
            holding = self._keeper.holding
            return (
                holding
                if holding is not None and holding.is_valid(self._clock.monotonic())
                else None
            )

    @property
    def token(self) -> int | None:
        """The fencing token of the current holding, ``None`` when not held."""
        holding = self.holding
        return holding.token if holding is not None else None

    @property
    def ts_expire(self) -> datetime | None:
        """When the store expires the current holding (server time), ``None`` when not held."""
        holding = self.holding
        return holding.record.expires_at if holding is not None else None

    @property
    def valid_until(self) -> float | None:
        """The clock's monotonic time at which this object stops trusting its holding.

        That is the start of the last successful acquire or renew plus
        :attr:`renew_deadline`; ``None`` when not held.
        """
        holding = self.holding
        return holding.valid_until if holding is not None else None

    def remaining(self) -> float:
        """Seconds until :attr:`valid_until`; ``0.0`` when not held."""
        self._check_fork()
        with self._mutex:
            holding = self._keeper.holding
            return holding.remaining(self._clock.monotonic()) if holding is not None else 0.0

    @property
    def lost(self) -> threading.Event:
        """Set when the latest holding ended without a release; cleared by the next acquire.

        With a background renewer it is set as soon as the holding ends (at the
        renew deadline at the latest). Without one, nothing watches in the
        background: it is set when ``touch()``, :meth:`ensure` or ``acquire()``
        finds the holding lost.
        """
        self._check_fork()
        event = self._lost
        if event is None:
            with _LOST_GUARD:
                event = self._lost
                if event is None:
                    event = threading.Event()
                    if self._lost_now:
                        event.set()
                    self._lost = event
        return event

    def _mark_lost(self, lost: bool) -> None:
        """Set (``lost``) or clear :attr:`lost`, made or not."""
        with _LOST_GUARD:
            self._lost_now = lost
            event = self._lost
        if event is not None:
            if lost:
                event.set()
            else:
                event.clear()

    def ensure(self) -> int:
        """Return the fencing token if the holding is still trusted; else raise :class:`LockLost`.

        Meant to be called before each step of long work, passing the token on
        to the systems the step writes to. The message names the token of the
        holding that ended and how it ended.
        """
        renewal = self._trusted_renewal()
        if renewal is not None:
            return renewal.token
        with self._mutex:
            ending = self._ending
            if ending is None:
                ending = "was never acquired"
            elif isinstance(ending, int):
                ending = f"token {ending} was released"
        raise LockLost(f"lock {self._key!r} is not held by this {type(self).__name__}: {ending}")

    # --- bookkeeping the drivers call around their store calls -------------------

    def _request(self, action: Action | None = None) -> LeaseRequest:
        """Who asks, for ``action``'s store call: built for each call and not kept (a
        process may hold thousands of locks; batched renewals need none); a try's request
        carries the try's own acquisition id."""
        if isinstance(action, TryAcquire):
            return request_for(
                self._key, self._uuid, self._ttl, self._host, self._pid, action.acquisition
            )
        return request_for(self._key, self._uuid, self._ttl, self._host, self._pid)

    def _begin_acquire(
        self, blocking: bool, timeout: float | None, step: float, force: bool
    ) -> AcquireRun:
        """Check the arguments and plan one acquire (the driver then claims the object)."""
        self._check_fork()
        now = self._clock.monotonic()
        self._trusted_renewal(now)
        attempt = AcquireAttempt(
            owner=self._uuid,
            renew_deadline=self._timing.renew_deadline,
            now=now,
            new_acquisition=new_acquisition_id,
            blocking=blocking,
            timeout=timeout,
            step=step,
            force=force,
        )
        return AcquireRun(self, attempt, timeout)

    def _claim(self, run: AcquireRun, *, force: bool) -> bool:
        """Make ``run`` the object's acquirer unless another caller holds or acquires it.

        A trusted holding keeps other callers out (as ``threading.Lock`` does)
        unless ``force``, which replaces it; an acquire in progress always does.
        """
        with self._mutex:
            if self._acquirer is run:
                return True
            if self._acquirer is not None:
                return False
            holding = self._keeper.holding
            if not force and holding is not None and holding.is_valid(self._clock.monotonic()):
                return False
            self._acquirer = run
            return True

    def _unclaim(self, run: AcquireRun, *, maybe_held: bool) -> None:
        if self._acquirer is not run:
            # Read without the mutex: only ``run``'s own thread (this one) makes ``run``
            # the acquirer, and it is done claiming; once another value, it stays so.
            return
        with self._mutex:
            if self._acquirer is not run:
                return
            self._acquirer = None
            if maybe_held:
                self._maybe_held = True

    def _took(self, holding: Holding, run: AcquireRun | None = None) -> None:
        """Start keeping ``holding``, just acquired by ``run``, and let the next caller in.

        The acquire's round trip teaches the keeper when to renew, as a renew's does:
        it ended when ``run`` handled the reply.
        """
        answered_at = run.answered_at if run is not None else None
        now = answered_at if answered_at is not None else self._clock.monotonic()
        token = holding.record.token
        with self._mutex:
            slow = self._keeper.observe_round_trip(now - holding.started_at)
            self._keeper.adopt(holding)
            self._renewal = Renewal(self._keeper, token)
            # Another try of the same acquire may still land: a release() settles it.
            self._maybe_held = run is not None and run.maybe_held
            self._maybe_token = None
            self._ending = None
            if self._lost_now:
                self._mark_lost(False)
            if run is not None and self._acquirer is run:
                self._acquirer = None
        if slow is not None:
            self._monitor.slow_round_trips(slow)
        self._monitor.gained(token, latency=now - holding.started_at, now=now)

    def _mark_maybe_held(self) -> None:
        """A write of ours may be in the store: :meth:`_plan_release` must free it."""
        with self._mutex:
            self._maybe_held = True

    def _give_up_holding(self, token: int | None) -> None:
        """Stop trusting the holding of ``token`` (any holding, if ``None``), about to be
        released or replaced by a forced acquire; the store still has it until then."""
        with self._mutex:
            holding = self._keeper.holding
            if holding is None or (token is not None and holding.token != token):
                return
            token = holding.token
            self._keeper.drop()
            self._maybe_held, self._maybe_token = True, token
            self._ending = f"token {token} was replaced by a forced acquire"
        self._monitor.lost(token, LossReason.RELEASED, now=self._clock.monotonic())

    def _forget_holding(self) -> None:
        """Stop trusting any holding, and remember that the store may still have one."""
        with self._mutex:
            holding = self._keeper.drop()
            self._maybe_held = True
            if holding is not None:
                self._ending = f"token {holding.token} was given up by a cancelled acquire"
        if holding is not None:
            self._monitor.lost(holding.token, LossReason.RELEASED, now=self._clock.monotonic())

    def _leave_to_lapse(self, token: int, ttl: float) -> None:
        """Stop trusting the holding of ``token`` without releasing it: the store keeps it
        until it expires (``ttl`` seconds after the last renew, for ``mongoelector.jobs``)."""
        with self._mutex:
            holding = self._keeper.holding
            if holding is None or holding.token != token:
                return
            self._keeper.drop()
            self._ending = f"token {token} was left in the store to expire after {ttl:g} s"
        self._monitor.lost(token, LossReason.RELEASED, now=self._clock.monotonic())

    def _plan_release(self, force: bool) -> ReleasePlan | None:
        """Stop trusting the holding; the store call to make, or ``None`` if there is none."""
        token: int | None
        self._check_fork()
        with self._mutex:
            holding = self._keeper.drop()
            if holding is not None:
                # Released by its token; a write that may still land stays remembered
                # for the next release().
                maybe_held = False
                token = self._ending = holding.record.token  # "token N was released"
            else:
                maybe_held, self._maybe_held = self._maybe_held, False
                token, self._maybe_token = self._maybe_token, None
        if holding is not None:
            self._monitor.released(holding.record.token, self._clock)
        if force:
            return ReleasePlan(owner=None, token=None, force=True)
        if holding is None and not maybe_held:
            return None
        return ReleasePlan(owner=self._uuid, token=token, force=False)

    def _token_in(self, record: LeaseRecord | None) -> int | None:
        """The token to release for an acquire of unknown outcome, given ``record`` as read.

        A record of this owner is released by its token, unless an acquire in
        progress wrote it (that acquire adopts it or leaves it to a later
        release) or it is the holding this object took since the release began
        (another caller's: its own release ends it). When the read shows no
        live holding by anyone, a write of ours may still land: it stays
        remembered for the next release.
        """
        with self._mutex:
            run = self._acquirer
            if record is not None and record.owner == self._uuid:
                if run is not None and run.owns(record):
                    return None
                current = self._keeper.holding
                if current is not None and current.token == record.token:
                    return None
                return record.token
            if record is None or record.owner is None:
                self._maybe_held = True
            return None

    def _release_failed(
        self, plan: ReleasePlan, token: int | None, error: BaseException | None = None
    ) -> None:
        """The release for ``plan`` (of ``token``, if known) failed (with ``error``, if the
        store's): the store may still have it."""
        if isinstance(error, BackendError):
            self._monitor.store_error("release", error, token=token)
        if not plan.force:
            with self._mutex:
                self._maybe_held, self._maybe_token = True, token

    def _renew_outcome(
        self,
        token: int,
        started_at: float,
        outcome: LeaseRecord | Failure | None,
        answered_at: float | None = None,
    ) -> None:
        """Report a renew of ``token`` sent at ``started_at`` and answered at ``answered_at``
        (default: now), before the renewal rules see it.

        A reply (not a failure) also teaches the keeper the store's round trip
        (``answered_at - started_at``: for a batch, the call's own), so the
        renewal rules schedule the next renewal with it. The margin left is
        reckoned at now.
        """
        now = self._clock.monotonic()
        answered = now if answered_at is None else min(answered_at, now)
        slow = None
        with self._mutex:
            holding = self._keeper.holding
            if not isinstance(outcome, Failure):
                slow = self._keeper.observe_round_trip(answered - started_at)
        if slow is not None:
            self._monitor.slow_round_trips(slow)
        margin = holding.valid_until - now if holding is not None else None
        if isinstance(outcome, Failure):
            self._monitor.store_error("renew", outcome.error, token=token, margin=margin)
        elif (
            outcome is not None
            and margin is not None
            and margin > 0
            and (outcome.owner, outcome.token) == (self._uuid, token)
        ):
            self._monitor.renewed(token, latency=answered - started_at, margin=margin)

    def _touch_failed(self, renewal: Renewal, error: BackendError | None = None) -> None:
        """A ``touch()`` of ``renewal`` raised ``error``: retry after the usual interval."""
        if error is not None:
            self._renew_outcome(renewal.token, self._clock.monotonic(), Failure(error))
        with self._mutex:
            renewal.on_failed(self._clock.monotonic())

    def _touched(
        self, renewal: Renewal, started_at: float, record: LeaseRecord | None
    ) -> datetime | None:
        """Record a renew sent at ``started_at`` for ``renewal``; the new expiry, or ``None``."""
        self._renew_outcome(renewal.token, started_at, record)
        return self._renew_answered(renewal, started_at, record)

    def _renew_answered(
        self, renewal: Renewal, started_at: float, record: LeaseRecord | None
    ) -> datetime | None:
        """Feed ``renewal`` the store's answer to a renew sent at ``started_at`` (``None``:
        refused); a loss it shows is reported (:meth:`_holding_lost`). The new expiry, or
        ``None``."""
        with self._mutex:
            lost = renewal.on_renewed(started_at, self._clock.monotonic(), record)
            renewed = lost is None and record is not None and renewal.kept()
        if lost is not None:
            self._holding_lost(renewal, lost)
        return record.expires_at if renewed and record is not None else None

    def _refused_elsewhere(self, token: int, started_at: float) -> None:
        """The store, read at ``started_at``, no longer has the holding of ``token``.

        For ``fenced_transaction``, whose failed check was followed by a read
        of the lock record showing it is not this acquisition's (what a renew
        would refuse): the holding ends exactly as on a refused renew
        (:attr:`lost` set, listeners and ``on_lost`` told once, the renewer
        stopped, ``ensure()`` raising). Nothing if ``token`` is not the holding
        this object keeps (released, replaced by a newer one, already lost).
        """
        with self._mutex:
            renewal = self._renewal
        if renewal is not None and renewal.token == token:
            self._renew_answered(renewal, started_at, None)

    def _trusted_renewal(self, now: float | None = None) -> Renewal | None:
        """The latest holding's rules while it is trusted at ``now`` (default: the clock's
        time), else ``None``.

        A loss found on the way (the deadline passed unnoticed) is reported.
        """
        self._check_fork()
        with self._mutex:
            renewal = self._renewal
            if renewal is None or not renewal.kept():
                return None  # what current() says then (Ended), without building it
            verdict = renewal.current(self._clock.monotonic() if now is None else now)
        if isinstance(verdict, Lost):
            assert renewal is not None
            self._holding_lost(renewal, verdict)
        return renewal if verdict is None else None

    def _holding_lost(self, renewal: Renewal, lost: Lost) -> None:
        """Report that ``renewal``'s holding ended without a release: once per holding.

        Sets :attr:`lost`, then tells the listeners and calls :meth:`_after_loss`;
        nothing if a newer holding replaced it meanwhile.
        """
        if self._record_loss(renewal, lost):
            self._report_loss(renewal, lost)

    def _report_loss(self, renewal: Renewal, lost: Lost) -> None:
        """The user-code half of a recorded loss: the listeners, then :meth:`_after_loss`."""
        self._monitor.lost(lost.token, lost.reason, now=self._clock.monotonic())
        self._after_loss(renewal)

    def _after_loss(self, renewal: Renewal) -> None:
        """A driver's own reaction to the loss of ``renewal``'s holding (stop a renewer, ...)."""

    def _record_loss(self, renewal: Renewal, lost: Lost) -> bool:
        """Record the loss of ``renewal``'s holding (no user code); ``False`` if a newer
        holding replaced it meanwhile."""
        with self._mutex:
            if renewal is not self._renewal:
                return False
            if lost.reason is LossReason.DEADLINE:
                self._maybe_held = True  # the store may still have it: release() frees it
            self._ending = f"token {lost.token} was lost ({lost.reason.value})"
            self._mark_lost(True)
        return True

    def _status(self, *, owned: bool) -> dict[str, Any]:
        holding = self.holding
        return status_docs.lock_status(
            uuid=self._uuid,
            key=self._key,
            ttl=self._ttl,
            timestamp=self._clock.now(),
            host=self._host,
            pid=self._pid,
            holding=holding.record if holding is not None else None,
            owned=owned,
        )

    def __repr__(self) -> str:
        self._check_fork()  # read first in a forked child: the child's own
        return (
            f"{type(self).__name__}(key={self._key!r}, uuid={self._uuid!r}, token={self.token!r})"
        )
