"""The asyncio driver's I/O glue: store calls, callbacks, and a task-reentrant lock."""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from mongoelector._common.outcomes import Failure, Result, failure_of, with_acquisition
from mongoelector.backends.async_protocol import AsyncStorageBackend
from mongoelector.backends.protocol import LeaseRequest
from mongoelector.core.events import Action, Inspect, Observe, Release, Renew, TryAcquire

__all__ = ["TaskLock", "perform", "run_callback"]

logger = logging.getLogger("mongoelector.elector")


async def perform(
    backend: AsyncStorageBackend, request: LeaseRequest, action: Action
) -> Result | Failure:
    """Await the backend call ``action`` stands for, on behalf of ``request.owner``.

    Backend errors come back as a :class:`~mongoelector._common.outcomes.Failure`;
    cancellation propagates.
    """
    try:
        if isinstance(action, TryAcquire):
            return await backend.compare_and_set(
                with_acquisition(request, action.acquisition), force=action.force
            )
        if isinstance(action, Renew):
            return await backend.renew(request.key, request.owner, action.token, request.ttl)
        if isinstance(action, (Inspect, Observe)):
            return await backend.get(request.key)
        assert isinstance(action, Release)
        return await backend.release(request.key, request.owner, token=action.token)
    except Exception as error:
        return failure_of(backend, error)


async def run_callback(
    callback: Callable[..., Any] | None,
    name: str,
    *args: Any,
    log: logging.Logger = logger,
    carrying_on: str = "the elector keeps running",
) -> None:
    """Call ``callback(*args)``, awaiting the result if it is awaitable.

    An exception is logged to ``log`` with its traceback (saying
    ``carrying_on`` about what happens next) and swallowed; cancellation
    propagates.
    """
    if callback is None:
        return
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("%s callback %r raised; %s", name, callback, carrying_on)


class TaskLock:
    """Mutual exclusion between asyncio tasks; the task holding it may take it again.

    The asyncio counterpart of :class:`threading.RLock`, so that a callback
    running inside a poll can call the elector's methods. Not bound to an
    event loop until a task has to wait.
    """

    def __init__(self) -> None:
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            self._depth += 1
            return
        while self._owner is not None:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken but leaving: pass the turn on
                raise
            finally:
                self._waiters.remove(waiter)
        self._owner = task
        self._depth = 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._wake_next()

    def _wake_next(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return
