"""``Lock``: a distributed lock over any storage backend (the sync driver)."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any

from mongoelector._common.lock_base import LockBase
from mongoelector._sync.calls import perform
from mongoelector.backends.protocol import StorageBackend, require_backend
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.lock_machine import WaitThenCall
from mongoelector.errors import BackendError

__all__ = ["Lock"]


class Lock(LockBase[StorageBackend]):
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
        super().__init__(
            key, require_backend(backend), ttl=ttl, clock=clock, renew_deadline=renew_deadline
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
        run = self._begin_acquire(blocking, timeout, step, force)
        while (call := run.pending) is not None:
            if isinstance(call, WaitThenCall):
                self._clock.sleep(call.until - self._clock.monotonic())
            started_at = self._clock.monotonic()
            run.feed(call.action, started_at, perform(self._backend, self._request(), call.action))
        return run.finish()

    def release(self, force: bool = False) -> bool:
        """Free the lock; return ``True`` if a live holding ended in the store.

        Without ``force`` only this object's own holding is released (a no-op
        returning ``False`` when it holds nothing). ``force`` frees the lock
        whoever holds it. This object stops trusting its holding before the
        store is asked, so even if the call fails it no longer acts as holder.
        """
        plan = self._plan_release(force)
        if plan is None:
            return False
        try:
            return self._backend.release(self._key, plan.owner, token=plan.token, force=plan.force)
        except BackendError:
            self._release_failed(plan)
            raise

    def touch(self) -> datetime | None:
        """Renew the holding for another ``ttl``; the new expiry (server time), or ``None``.

        ``None`` means this object holds nothing, or the store no longer has its
        holding (it expired and was taken, or was force-released).
        """
        holding = self._holding_to_touch()
        if holding is None:
            return None
        started_at = self._clock.monotonic()
        try:
            record = self._backend.renew(self._key, self._uuid, holding.token, self._ttl)
        except BackendError:
            self._touch_failed()
            raise
        return self._touched(holding, started_at, record)

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
        return self._status(owned=self.owned())

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
