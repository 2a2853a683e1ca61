"""``Lock``: a distributed lock over any storage backend (the sync driver)."""

from __future__ import annotations

import threading
from datetime import datetime
from types import TracebackType
from typing import Any

from mongoelector._identity import local_host, local_pid, new_owner_id
from mongoelector._sync.calls import Failure, perform
from mongoelector._validation import check_key, check_seconds
from mongoelector.backends.protocol import (
    LeaseRecord,
    LeaseRequest,
    StorageBackend,
    require_backend,
)
from mongoelector.clock import Clock, SystemClock
from mongoelector.core import status as status_docs
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
from mongoelector.errors import AcquireTimeout, AmbiguousOutcome, BackendError, LockExists
from mongoelector.timing import LeaseTiming

__all__ = ["Lock"]


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
    """

    def __init__(
        self,
        key: str,
        backend: StorageBackend,
        *,
        ttl: float = 600,
        clock: Clock | None = None,
        renew_deadline: float | None = None,
    ) -> None:
        self._key = check_key(key)
        self._backend = require_backend(backend)
        self._ttl = check_seconds(ttl, name="ttl")
        self._timing = LeaseTiming.for_ttl(self._ttl, renew_deadline=renew_deadline)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._uuid = new_owner_id()
        self._host = local_host()
        self._pid = local_pid()
        self._mutex = threading.RLock()
        self._keeper = LeaseKeeper(
            renew_deadline=self._timing.renew_deadline, renew_interval=self._timing.retry_period
        )
        self._maybe_held = False

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
                with self._mutex:
                    self._keeper.hold(decision.holding.record, decision.holding.started_at)
                    self._maybe_held = False
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
        """
        with self._mutex:
            holding = self._keeper.drop()
            maybe_held, self._maybe_held = self._maybe_held, False
        if force:
            return self._backend.release(self._key, None, force=True)
        if holding is None and not maybe_held:
            return False
        token = holding.token if holding is not None else None
        try:
            return self._backend.release(self._key, self._uuid, token=token)
        except BackendError:
            with self._mutex:
                self._maybe_held = True
            raise

    def touch(self) -> datetime | None:
        """Renew the holding for another ``ttl``; the new expiry (server time), or ``None``.

        ``None`` means this object holds nothing it may trust: it held nothing,
        the store no longer has its holding (it expired and was taken, or was
        force-released), or the reply came after the renew deadline.
        """
        with self._mutex:
            holding = self._keeper.holding
        if holding is None:
            return None
        started_at = self._clock.monotonic()
        try:
            record = self._backend.renew(self._key, self._uuid, holding.token, self._ttl)
        except BackendError:
            with self._mutex:
                self._keeper.on_renew_failed(self._clock.monotonic())
            raise
        with self._mutex:
            if self._keeper.holding is None or self._keeper.holding.token != holding.token:
                return None
            if not self._keeper.on_renewed(started_at, record):
                return None
            if not self._keeper.is_valid(self._clock.monotonic()):
                return None
        assert record is not None
        return record.expires_at

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
