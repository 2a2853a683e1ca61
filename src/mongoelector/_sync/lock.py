"""``Lock``: a distributed lock over any storage backend (the sync driver)."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

from mongoelector._identity import local_host, local_pid, new_owner_id
from mongoelector._sync.callbacks import check_callback, run_callback
from mongoelector._sync.calls import Failure, perform
from mongoelector._sync.renewer import Renewer
from mongoelector._validation import check_key, check_seconds
from mongoelector.backends.protocol import (
    LeaseRecord,
    LeaseRequest,
    StorageBackend,
    require_backend,
)
from mongoelector.clock import Clock, SystemClock
from mongoelector.core import status as status_docs
from mongoelector.core.events import LossReason, Renew
from mongoelector.core.lease import Holding, LeaseKeeper
from mongoelector.core.lock_machine import (
    AcquireAttempt,
    Call,
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

__all__ = ["Lock"]

logger = logging.getLogger("mongoelector.lock")


def _describe_holder(key: str, holder: LeaseRecord | None) -> str:
    if holder is None or holder.owner is None:
        return f"lock {key!r} is held"
    expires = holder.expires_at.isoformat() if holder.expires_at is not None else "unknown"
    return (
        f"lock {key!r} is held by {holder.owner} on host {holder.host!r} "
        f"(pid {holder.pid}, token {holder.token}, expires {expires} server time)"
    )


class Lock:
    """A lease lock on ``key`` in ``backend``, held for ``ttl`` seconds unless renewed.

    The holder trusts its holding for ``renew_deadline`` seconds (default
    ``ttl * 2/3``) from the start of its last successful acquire or
    :meth:`touch`; after that :attr:`token` is ``None`` even if the store has
    not expired the lease yet. Every acquisition gets a fencing token greater
    than any earlier one for this key. A lock object is not tied to a thread:
    any thread may release what another acquired.

    With ``auto_renew=True`` a background thread renews the holding every
    ``retry_period`` (``ttl * 2/15`` by default) from acquire until release,
    retrying failed renewals until the renew deadline. If the holding ends
    without :meth:`release` (the deadline passed, or the store no longer has
    it) the :attr:`lost` event is set and ``on_lost()`` is called once, with
    no arguments; a callback that raises is logged.
    """

    def __init__(
        self,
        key: str,
        backend: StorageBackend,
        *,
        ttl: float = 600,
        clock: Clock | None = None,
        renew_deadline: float | None = None,
        auto_renew: bool = False,
        on_lost: Callable[[], Any] | None = None,
    ) -> None:
        self._key = check_key(key)
        self._backend = require_backend(backend)
        self._ttl = check_seconds(ttl, name="ttl")
        self._timing = LeaseTiming.for_ttl(self._ttl, renew_deadline=renew_deadline)
        self._clock: Clock = clock if clock is not None else SystemClock()
        if not isinstance(auto_renew, bool):
            raise TypeError(f"auto_renew must be a bool, got {auto_renew!r}")
        self._auto_renew = auto_renew
        self._on_lost = check_callback(on_lost, name="on_lost")
        self._uuid = new_owner_id()
        self._host = local_host()
        self._pid = local_pid()
        self._mutex = threading.RLock()
        self._keeper = LeaseKeeper(
            renew_deadline=self._timing.renew_deadline, renew_interval=self._timing.retry_period
        )
        self._maybe_held = False
        self._maybe_token: int | None = None
        # The latest holding: its renew rules, its renewer, and how it ended.
        self._renewal: Renewal | None = None
        self._renewer: Renewer | None = None
        self._ending: str | None = None
        self._lost = threading.Event()

    # --- identity and settings --------------------------------------------------

    @property
    def key(self) -> str:
        return self._key

    @property
    def backend(self) -> StorageBackend:
        return self._backend

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def renew_deadline(self) -> float:
        return self._timing.renew_deadline

    @property
    def retry_period(self) -> float:
        """Seconds between automatic renewals, and between retries of a failed one."""
        return self._timing.retry_period

    @property
    def auto_renew(self) -> bool:
        return self._auto_renew

    @property
    def uuid(self) -> str:
        """This lock object's owner id in the store."""
        return self._uuid

    @property
    def host(self) -> str:
        return self._host

    @property
    def pid(self) -> int:
        return self._pid

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
        with self._mutex:
            holding = self._keeper.holding
            return holding.remaining(self._clock.monotonic()) if holding is not None else 0.0

    @property
    def lost(self) -> threading.Event:
        """Set when the latest holding ended without :meth:`release`; cleared by the next acquire.

        With ``auto_renew`` the renewer sets it as soon as the holding ends (at
        the renew deadline at the latest). Without it, nothing watches in the
        background: it is set when :meth:`touch`, :meth:`ensure` or
        :meth:`acquire` finds the holding lost.
        """
        return self._lost

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
            ending = self._ending or "was never acquired"
        raise LockLost(f"lock {self._key!r} is not held by this Lock: {ending}")

    # --- operations ---------------------------------------------------------------

    def _request(self) -> LeaseRequest:
        return LeaseRequest(
            key=self._key, owner=self._uuid, ttl=self._ttl, host=self._host, pid=self._pid
        )

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
        :meth:`release` still frees it.
        """
        self._trusted_renewal()
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
                f"lock {self._key!r} is already held by this Lock (token {self.token})"
            )
        request = self._request()
        decision: Call | WaitThenCall | Succeed | GiveUp | Fail = attempt.first()
        error: BackendError | None = None
        while True:
            if isinstance(decision, Succeed):
                self._begin_holding(decision.holding)
                return True
            if isinstance(decision, GiveUp):
                if decision.reason is GiveUpReason.HELD:
                    raise LockExists(_describe_holder(self._key, decision.holder))
                raise AcquireTimeout(
                    f"lock {self._key!r} not acquired within timeout={timeout!r} seconds"
                )
            if isinstance(decision, Fail):
                assert error is not None
                self._maybe_held = self._maybe_held or decision.maybe_held
                if decision.maybe_held and not isinstance(error, AmbiguousOutcome):
                    raise AmbiguousOutcome(
                        f"lock {self._key!r} may be held by this Lock: {error}", original=error
                    ) from error
                raise error
            if isinstance(decision, WaitThenCall):
                self._clock.sleep(decision.until - self._clock.monotonic())
            action = decision.action
            started_at = self._clock.monotonic()
            outcome = perform(self._backend, request, action)
            now = self._clock.monotonic()
            if isinstance(outcome, Failure):
                error = outcome.error
                decision = attempt.on_failure(action, now, ambiguous=outcome.ambiguous)
            else:
                assert not isinstance(outcome, bool)
                decision = attempt.on_result(action, started_at, now, outcome)

    def release(self, force: bool = False) -> bool:
        """Free the lock; return ``True`` if a live holding ended in the store.

        Without ``force`` only this object's own holding is released (a no-op
        returning ``False`` when it holds nothing). ``force`` frees the lock
        whoever holds it. This object stops trusting its holding before the
        store is asked, so even if the call fails it no longer acts as holder.

        Any thread may call it, not only the one that acquired. The renewer (with
        ``auto_renew``) has ended when it returns; an ``on_lost`` callback may
        call it too. Releasing never sets :attr:`lost`.
        """
        with self._mutex:
            holding = self._keeper.drop()
            maybe_held, self._maybe_held = self._maybe_held, False
            maybe_token, self._maybe_token = self._maybe_token, None
            renewer, self._renewer = self._renewer, None
            if holding is not None:
                self._ending = f"token {holding.token} was released"
        if renewer is not None:
            renewer.stop()
        if force:
            return self._backend.release(self._key, None, force=True)
        if holding is None and not maybe_held:
            return False
        token = holding.token if holding is not None else maybe_token
        try:
            if token is None:
                # An acquire of unknown outcome: learn which holding, if any, is ours. A
                # release without a token could free a later holding if it landed late.
                record = self._backend.get(self._key)
                if record is None or record.owner != self._uuid:
                    return False
                token = record.token
            return self._backend.release(self._key, self._uuid, token=token)
        except BackendError:
            with self._mutex:
                self._maybe_held, self._maybe_token = True, token
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
        except BackendError:
            with self._mutex:
                renewal.on_failed(self._clock.monotonic())
            raise
        with self._mutex:
            lost = renewal.on_renewed(started_at, self._clock.monotonic(), record)
            renewed = lost is None and record is not None and renewal.kept()
        if lost is not None:
            self._holding_lost(renewal, lost)
        return record.expires_at if renewed and record is not None else None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the renewer has caught up with the clock; for tests with a fake clock.

        After ``clock.advance(...)``, this returns once the renewer has done
        everything that time calls for (renewed, or given the holding up and
        ended) and sleeps again, so a test can then assert on the outcome.
        Returns ``True`` at once when no renewer runs, and ``False`` only if
        ``timeout`` (real seconds) passed first.
        """
        with self._mutex:
            renewer = self._renewer
        return True if renewer is None else renewer.wait_idle(timeout)

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
        record = self._backend.get(self._key)
        return record is not None and record.is_held_by(self._uuid, self._backend.server_time())

    @property
    def status(self) -> dict[str, Any]:
        """The 1.x status dict (``uuid, key, ttl, timestamp, host, pid, lock_owned, ...``)."""
        holding = self.holding
        return status_docs.lock_status(
            uuid=self._uuid,
            key=self._key,
            ttl=self._ttl,
            timestamp=self._clock.now(),
            host=self._host,
            pid=self._pid,
            holding=holding.record if holding is not None else None,
            owned=self.owned(),
        )

    # --- the holding's life cycle ---------------------------------------------------

    def _begin_holding(self, holding: Holding) -> None:
        with self._mutex:
            previous, self._renewer = self._renewer, None
        if previous is not None:
            previous.stop()
        with self._mutex:
            self._keeper.hold(holding.record, holding.started_at)
            self._renewal = Renewal(self._keeper, holding.token)
            self._maybe_held = False
            self._ending = None
            self._lost.clear()
            if self._auto_renew:
                self._renewer = Renewer(
                    key=self._key,
                    clock=self._clock,
                    mutex=self._mutex,
                    renewal=self._renewal,
                    renew=self._renew,
                    on_lost=functools.partial(self._holding_lost, self._renewal),
                )
                self._renewer.start()

    def _renew(self, action: Renew) -> LeaseRecord | Failure | None:
        outcome = perform(self._backend, self._request(), action)
        assert outcome is None or isinstance(outcome, (LeaseRecord, Failure))
        return outcome

    def _trusted_renewal(self) -> Renewal | None:
        """The latest holding's rules while it is trusted, else ``None``.

        A loss found on the way (the deadline passed unnoticed) is reported.
        """
        with self._mutex:
            renewal = self._renewal
            verdict = renewal.current(self._clock.monotonic()) if renewal is not None else None
        if isinstance(verdict, Lost):
            assert renewal is not None
            self._holding_lost(renewal, verdict)
        return renewal if verdict is None else None

    def _holding_lost(self, renewal: Renewal, lost: Lost) -> None:
        """Set :attr:`lost`, stop the renewer and fire ``on_lost``: once per holding."""
        with self._mutex:
            if renewal is not self._renewal:
                return  # a newer holding replaced it meanwhile
            if lost.reason is LossReason.DEADLINE:
                self._maybe_held = True  # the store may still have it: release() frees it
            self._ending = f"token {lost.token} was lost ({lost.reason.value})"
            self._lost.set()
            renewer = self._renewer
        logger.warning(
            "lock %r lost by %s (token %d): %s",
            self._key,
            self._uuid,
            lost.token,
            lost.reason.value,
        )
        if renewer is not None:
            renewer.stop()
        run_callback(self._on_lost, "on_lost", log=logger, carrying_on="the lock stays lost")

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

    def __repr__(self) -> str:
        return f"Lock(key={self._key!r}, uuid={self._uuid!r}, token={self.token!r})"
