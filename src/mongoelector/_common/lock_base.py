"""The state of a lease lock and every decision about it, shared by ``Lock`` and ``AsyncLock``.

A driver subclasses :class:`LockBase` with the backend type it calls, and
adds only the I/O: calling the store, and waiting between tries. What one
``acquire()`` does next is :class:`AcquireRun`'s (around the pure
:class:`~mongoelector.core.lock_machine.AcquireAttempt`); what a release or a
renew changes in the holding is the base class's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from mongoelector._common.outcomes import Failure, Result
from mongoelector._common.participant import Participant
from mongoelector._validation import check_key, check_seconds
from mongoelector.backends.protocol import LeaseRecord, LeaseRequest
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.events import Action
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
from mongoelector.errors import AcquireTimeout, AmbiguousOutcome, BackendError, LockExists
from mongoelector.timing import LeaseTiming

__all__ = ["AcquireRun", "LockBase", "ReleasePlan", "describe_holder"]

BackendT = TypeVar("BackendT")


def describe_holder(key: str, holder: LeaseRecord | None) -> str:
    """A sentence naming who holds lock ``key`` (for ``LockExists``)."""
    if holder is None or holder.owner is None:
        return f"lock {key!r} is held"
    expires = holder.expires_at.isoformat() if holder.expires_at is not None else "unknown"
    return (
        f"lock {key!r} is held by {holder.owner} on host {holder.host!r} "
        f"(pid {holder.pid}, token {holder.token}, expires {expires} server time)"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePlan:
    """The one ``release`` store call a lock's ``release(force)`` must make."""

    owner: str | None
    token: int | None
    force: bool


class AcquireRun:
    """One ``acquire()`` call: the machine's plan, the last store error, and the outcome.

    The driver makes each call that :attr:`decision` asks for (waiting first
    for a :class:`WaitThenCall`), feeds the outcome to :meth:`feed`, and once
    the decision is neither a call nor a wait, :meth:`finish` returns ``True``
    or raises what the caller must see.
    """

    def __init__(self, lock: LockBase[Any], attempt: AcquireAttempt, timeout: float | None) -> None:
        self._lock = lock
        self._attempt = attempt
        self._timeout = timeout
        self._error: BackendError | None = None
        self.decision: Decision = attempt.first()

    @property
    def pending(self) -> Call | WaitThenCall | None:
        """The call still to make (after waiting, for a ``WaitThenCall``), or ``None`` when done."""
        decision = self.decision
        return decision if isinstance(decision, (Call, WaitThenCall)) else None

    def feed(self, action: Action, started_at: float, outcome: Result | Failure) -> None:
        """Record what ``action`` (sent at ``started_at``) returned or raised."""
        now = self._lock.clock.monotonic()
        if isinstance(outcome, Failure):
            self._error = outcome.error
            self.decision = self._attempt.on_failure(action, now, ambiguous=outcome.ambiguous)
            return
        assert not isinstance(outcome, bool)
        self.decision = self._attempt.on_result(action, started_at, now, outcome)

    def finish(self) -> bool:
        """``True`` once held; otherwise raise ``LockExists``, ``AcquireTimeout`` or the error."""
        decision = self.decision
        lock = self._lock
        if isinstance(decision, Succeed):
            lock._took(decision.holding)
            return True
        if isinstance(decision, GiveUp):
            if decision.reason is GiveUpReason.HELD:
                raise LockExists(describe_holder(lock.key, decision.holder))
            raise AcquireTimeout(
                f"lock {lock.key!r} not acquired within timeout={self._timeout!r} seconds"
            )
        assert isinstance(decision, Fail)
        error = self._error
        assert error is not None
        if decision.maybe_held:
            lock._mark_maybe_held()
            if not isinstance(error, AmbiguousOutcome):
                raise AmbiguousOutcome(
                    f"lock {lock.key!r} may be held by this Lock: {error}", original=error
                ) from error
        raise error


class LockBase(Participant[BackendT]):
    """A lease lock's identity, settings and holding, as this object knows them (no I/O).

    The holding is trusted for ``renew_deadline`` seconds from the start of
    the last successful acquire or renew; after that :attr:`token` is ``None``
    even if the store has not expired the lease yet.
    """

    def __init__(
        self,
        key: str,
        backend: BackendT,
        *,
        ttl: float,
        clock: Clock | None,
        renew_deadline: float | None,
    ) -> None:
        key = check_key(key)
        self._ttl = check_seconds(ttl, name="ttl")
        timing = LeaseTiming.for_ttl(self._ttl, renew_deadline=renew_deadline)
        super().__init__(key, backend, timing=timing, clock=clock)
        self._mutex = threading.RLock()
        self._keeper = LeaseKeeper(
            renew_deadline=self._timing.renew_deadline, renew_interval=self._timing.retry_period
        )
        self._maybe_held = False

    # --- the holding, as this object knows it (no backend call) -----------------

    @property
    def holding(self) -> Holding | None:
        """The current holding while it is trusted, else ``None``."""
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

    # --- bookkeeping the drivers call around their store calls -------------------

    def _request(self) -> LeaseRequest:
        return LeaseRequest(
            key=self._key, owner=self._uuid, ttl=self._ttl, host=self._host, pid=self._pid
        )

    def _begin_acquire(
        self, blocking: bool, timeout: float | None, step: float, force: bool
    ) -> AcquireRun:
        """Check the arguments and plan one acquire; ``LockExists`` if already held (no force)."""
        attempt = AcquireAttempt(
            owner=self._uuid,
            renew_deadline=self._timing.renew_deadline,
            now=self._clock.monotonic(),
            blocking=blocking,
            timeout=timeout,
            step=step,
            force=force,
        )
        if self.holding is not None and not force:
            raise LockExists(
                f"lock {self._key!r} is already held by this {type(self).__name__} "
                f"(token {self.token})"
            )
        return AcquireRun(self, attempt, timeout)

    def _took(self, holding: Holding) -> None:
        with self._mutex:
            self._keeper.hold(holding.record, holding.started_at)
            self._maybe_held = False

    def _mark_maybe_held(self) -> None:
        """A write of ours may be in the store: :meth:`_plan_release` must free it."""
        with self._mutex:
            self._maybe_held = True

    def _forget_holding(self) -> None:
        """Stop trusting any holding, and remember that the store may still have one."""
        with self._mutex:
            self._keeper.drop()
            self._maybe_held = True

    def _plan_release(self, force: bool) -> ReleasePlan | None:
        """Stop trusting the holding; the store call to make, or ``None`` if there is none."""
        with self._mutex:
            holding = self._keeper.drop()
            maybe_held, self._maybe_held = self._maybe_held, False
        if force:
            return ReleasePlan(owner=None, token=None, force=True)
        if holding is None and not maybe_held:
            return None
        token = holding.token if holding is not None else None
        return ReleasePlan(owner=self._uuid, token=token, force=False)

    def _release_failed(self, plan: ReleasePlan) -> None:
        """The release call for ``plan`` failed: the store may still have our holding."""
        if not plan.force:
            self._mark_maybe_held()

    def _holding_to_touch(self) -> Holding | None:
        with self._mutex:
            return self._keeper.holding

    def _touch_failed(self) -> None:
        with self._mutex:
            self._keeper.on_renew_failed(self._clock.monotonic())

    def _touched(
        self, holding: Holding, started_at: float, record: LeaseRecord | None
    ) -> datetime | None:
        """Record a renew of ``holding`` sent at ``started_at``; the new expiry or ``None``."""
        with self._mutex:
            if self._keeper.holding is None or self._keeper.holding.token != holding.token:
                return None
            if not self._keeper.on_renewed(started_at, record):
                return None
        assert record is not None
        return record.expires_at

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
        return (
            f"{type(self).__name__}(key={self._key!r}, uuid={self._uuid!r}, token={self.token!r})"
        )
