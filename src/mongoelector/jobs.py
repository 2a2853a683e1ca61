"""Singleton jobs: run a scheduled function on one node at a time (ShedLock-style).

:func:`exclusive` decorates a function (plain or ``async def``) so that each
call takes the lock ``key`` first: if it gets it, the function runs with the
lock held and auto-renewed, and its result is returned; if another holder has
the lock, the call returns ``None`` at once (or after waiting, with
``wait``), logs that at INFO on logger ``mongoelector.jobs`` and reports a
:class:`~mongoelector.monitoring.JobSkippedEvent` to the event listeners::

    from mongoelector import jobs

    @jobs.exclusive("nightly-report", db, at_most=600, at_least=30)
    def nightly_report():
        ...

* ``at_most`` is the lock's ``ttl`` (default 600 s): while the function runs
  the lock is renewed, and if the process dies the lease lapses at most
  ``at_most`` seconds after its last renewal.
* ``at_least`` (default 0): after the function returns (or raises), the lease
  stays in the store until ``at_least`` seconds after the run started, so a
  node whose clock or scheduler fires the same tick a little later skips it
  (ShedLock's ``lockAtLeastFor``). No thread is kept busy for that: the lock
  stops renewing and renews once more with the time left as its ttl (at
  least :data:`~mongoelector.timing.MIN_TTL`), then lets it expire.
* ``wait``: ``False`` (default) skips at once, ``True`` waits as long as it
  takes, a number of seconds waits at most that long.

Every call uses a new lock object with its own owner id, so two calls in one
process contend exactly as two processes would. While the function runs,
:func:`current_token` returns the holding's fencing token (a context
variable: it works in threads and in asyncio tasks). An exception from the
function propagates after the lock is released (or left until ``at_least``).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mongoelector._validation import check_key, check_non_negative_seconds, check_seconds
from mongoelector.clock import Clock
from mongoelector.errors import AcquireTimeout, BackendError, LockExists
from mongoelector.monitoring import EventListener
from mongoelector.timing import MIN_TTL

if TYPE_CHECKING:
    from mongoelector._common.lock_base import LockBase

__all__ = ["DEFAULT_AT_MOST", "current_token", "exclusive"]

logger = logging.getLogger("mongoelector.jobs")

#: ``at_most`` when none is given: the lock's ttl, in seconds (as ``Lock``'s default).
DEFAULT_AT_MOST = 600.0

_token: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "mongoelector_job_token", default=None
)


def current_token() -> int | None:
    """The fencing token of the :func:`exclusive` job running in this context, or ``None``.

    Pass it to the systems the job writes to, so that they can refuse writes
    from an earlier holder that did not notice it lost the lock.
    """
    return _token.get()


@dataclass(frozen=True, slots=True)
class _Plan:
    """The decisions shared by the sync and async drivers (no I/O here)."""

    key: str
    at_most: float
    at_least: float
    blocking: bool
    timeout: float | None

    def keep_for(self, elapsed: float) -> float | None:
        """Seconds to leave the lease in the store after a run that took ``elapsed``
        seconds; ``None``: release it now."""
        remaining = self.at_least - elapsed
        if remaining <= 0:
            return None
        return max(remaining, MIN_TTL)

    def waited(self, elapsed: float) -> float:
        return elapsed if self.blocking else 0.0


def _plan(key: object, at_most: object, at_least: object, wait: object) -> _Plan:
    checked_key = check_key(key)
    most = DEFAULT_AT_MOST if at_most is None else check_seconds(at_most, name="at_most")
    if most < MIN_TTL:
        raise ValueError(f"at_most must be at least {MIN_TTL} s (the least ttl), got {at_most!r}")
    least = check_non_negative_seconds(at_least, name="at_least")
    if least > most:
        raise ValueError(
            f"at_least ({at_least!r} s) must not be more than at_most ({most:g} s): the "
            "lease never lasts longer than at_most"
        )
    if wait is False:
        return _Plan(checked_key, most, least, blocking=False, timeout=None)
    if wait is True:
        return _Plan(checked_key, most, least, blocking=True, timeout=None)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)):
        raise TypeError(f"wait must be True, False or a number of seconds, got {wait!r}")
    timeout = check_non_negative_seconds(wait, name="wait")
    return _Plan(checked_key, most, least, blocking=True, timeout=timeout)


def _skipped(lock: LockBase[Any], job: str, error: Exception, waited: float) -> None:
    logger.info("job %s skipped: %s", job, error)
    lock._monitor.job_skipped(job, str(error), waited=waited)


def _release_failed(plan: _Plan, job: str, error: BackendError) -> None:
    """The job ran; its lock could not be released: its result (or error) still stands."""
    logger.warning(
        "job %s: could not release lock %r; it stays until its ttl (%g s) runs out: %s",
        job,
        plan.key,
        plan.at_most,
        error,
    )


def _kept_failed(plan: _Plan, job: str, error: BackendError) -> None:
    logger.warning(
        "job %s: could not shorten lock %r to its at_least; it stays until its ttl (%g s) "
        "runs out: %s",
        job,
        plan.key,
        plan.at_most,
        error,
    )


def exclusive(
    key: str,
    backend: Any,
    *,
    at_most: float | None = None,
    at_least: float = 0.0,
    wait: bool | float = False,
    clock: Clock | None = None,
    event_listeners: Iterable[EventListener] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function so that a call runs it only while holding lock ``key``.

    ``backend`` is a :class:`~mongoelector.backends.StorageBackend` or a
    pymongo ``Database`` for a plain function, an
    :class:`~mongoelector.backends.AsyncStorageBackend` or an
    ``AsyncDatabase`` for an ``async def`` one. The call returns the
    function's result, or ``None`` if it was skipped. See the module's
    documentation for ``at_most``, ``at_least`` and ``wait``; ``clock`` and
    ``event_listeners`` are passed to each call's lock. Bad arguments raise
    ``ValueError``/``TypeError`` when decorating, not when called.
    """
    plan = _plan(key, at_most, at_least, wait)
    listeners = tuple(event_listeners)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        job = getattr(fn, "__qualname__", repr(fn))
        if inspect.iscoroutinefunction(fn):
            return _async_job(fn, job, plan, backend, clock, listeners)
        return _sync_job(fn, job, plan, backend, clock, listeners)

    return decorate


def _sync_job(
    fn: Callable[..., Any],
    job: str,
    plan: _Plan,
    backend: Any,
    clock: Clock | None,
    listeners: tuple[EventListener, ...],
) -> Callable[..., Any]:
    from mongoelector._common.stores import sync_store  # noqa: PLC0415
    from mongoelector._sync.lock import Lock  # noqa: PLC0415 - load the driver on use

    store = sync_store(backend, clock=clock)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        lock = Lock(
            plan.key,
            store,
            ttl=plan.at_most,
            clock=clock,
            auto_renew=True,
            event_listeners=listeners,
        )
        begun = lock._clock.monotonic()
        try:
            lock.acquire(blocking=plan.blocking, timeout=plan.timeout)
        except (LockExists, AcquireTimeout) as error:
            _skipped(lock, job, error, plan.waited(lock._clock.monotonic() - begun))
            return None
        started = lock._clock.monotonic()
        reset = _token.set(lock.token)
        try:
            return fn(*args, **kwargs)
        finally:
            _token.reset(reset)
            keep = plan.keep_for(lock._clock.monotonic() - started)
            if keep is None:
                try:
                    lock.release()
                except BackendError as error:
                    _release_failed(plan, job, error)
            else:
                try:
                    lock._hold_until(keep)
                except BackendError as error:
                    _kept_failed(plan, job, error)

    return run


def _async_job(
    fn: Callable[..., Awaitable[Any]],
    job: str,
    plan: _Plan,
    backend: Any,
    clock: Clock | None,
    listeners: tuple[EventListener, ...],
) -> Callable[..., Awaitable[Any]]:
    from mongoelector._common.stores import async_store  # noqa: PLC0415
    from mongoelector.aio.lock import AsyncLock  # noqa: PLC0415 - load the driver on use

    store = async_store(backend, clock=clock)

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        lock = AsyncLock(
            plan.key,
            store,
            ttl=plan.at_most,
            clock=clock,
            auto_renew=True,
            event_listeners=listeners,
        )
        begun = lock._clock.monotonic()
        try:
            await lock.acquire(blocking=plan.blocking, timeout=plan.timeout)
        except (LockExists, AcquireTimeout) as error:
            _skipped(lock, job, error, plan.waited(lock._clock.monotonic() - begun))
            return None
        started = lock._clock.monotonic()
        reset = _token.set(lock.token)
        try:
            return await fn(*args, **kwargs)
        finally:
            _token.reset(reset)
            keep = plan.keep_for(lock._clock.monotonic() - started)
            if keep is None:
                try:
                    await lock.release()
                except BackendError as error:
                    _release_failed(plan, job, error)
            else:
                try:
                    await lock._hold_until(keep)
                except BackendError as error:
                    _kept_failed(plan, job, error)

    return run
