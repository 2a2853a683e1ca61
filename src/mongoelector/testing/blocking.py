"""Sync tools on async backends: an event loop in a thread, and a blocking view of a backend.

The conformance suite, the simulation and the sync drivers call a backend
from plain threads. :class:`BlockingBackend` lets them call an
:class:`~mongoelector.backends.async_protocol.AsyncStorageBackend`: each call
runs as a coroutine on an :class:`EventLoopThread` and the calling thread
waits for its result. Calls from several threads run concurrently on the one
loop, as the tasks of an asyncio service would.

What running a suite through it proves: the async backend keeps every
promise of the protocol, under concurrent calls on one event loop. What it
does not: how the backend behaves when its caller is *cancelled* (a blocked
thread never cancels), and how it shares a loop with other work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from mongoelector.backends.async_protocol import (
    ASYNC_CAPABILITY_PROTOCOLS,
    AsyncGetManyBackend,
    AsyncMemberStatusBackend,
    AsyncRenewManyBackend,
    AsyncReportManyBackend,
    AsyncStorageBackend,
)
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
    implemented_capabilities,
)

__all__ = ["BlockingBackend", "EventLoopThread"]

T = TypeVar("T")


class EventLoopThread:
    """An asyncio event loop running in a daemon thread until :meth:`close`.

    :meth:`run` runs a coroutine there and blocks the calling thread (any
    thread but the loop's own) until it returns. Objects bound to an event
    loop, such as pymongo's ``AsyncMongoClient``, must be created and used
    through :meth:`run`. A context manager: leaving it closes the loop.
    """

    def __init__(self, *, name: str = "event-loop-thread") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its exception).

        ``timeout`` (real seconds; ``None``: no limit) bounds the wait: when it
        passes, the coroutine is cancelled and ``TimeoutError`` is raised.
        """
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("EventLoopThread.run() called from its own loop: await instead")
        if self._closed:
            coroutine.close()
            raise RuntimeError("this EventLoopThread is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"{coroutine!r} did not finish within {timeout} s") from None

    def close(self) -> None:
        """Cancel the tasks left on the loop, stop it and wait for its thread; idempotent."""
        if self._closed:
            return
        self.run(_cancel_the_rest())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> EventLoopThread:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _cancel_the_rest() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


class BlockingBackend:
    """``backend`` (an async store) as a sync ``StorageBackend`` whose calls run on ``loop``.

    Each call blocks the calling thread until the coroutine on the loop has
    finished, and returns or raises what it did. Has the member-status and
    batch calls (and claims ``MEMBER_STATUS``, ``RENEW_MANY``, ``GET_MANY``, ``REPORT_MANY``)
    only if ``backend`` has them.
    """

    def __init__(self, backend: AsyncStorageBackend, loop: EventLoopThread) -> None:
        if not isinstance(backend, AsyncStorageBackend):
            raise TypeError(f"backend must be an AsyncStorageBackend, got {backend!r}")
        if not isinstance(loop, EventLoopThread):
            raise TypeError(f"loop must be an EventLoopThread, got {loop!r}")
        self._backend = backend
        self._loop = loop

    @property
    def wrapped(self) -> AsyncStorageBackend:
        """The async backend this view calls."""
        return self._backend

    @property
    def capabilities(self) -> frozenset[Capability]:
        return implemented_capabilities(self._backend, ASYNC_CAPABILITY_PROTOCOLS)

    def server_time(self) -> datetime:
        return self._loop.run(self._backend.server_time())

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        return self._loop.run(self._backend.compare_and_set(request, force=force))

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return self._loop.run(self._backend.renew(key, owner, token, ttl))

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        return self._loop.run(self._backend.release(key, owner, token=token, force=force))

    def get(self, key: str) -> LeaseRecord | None:
        return self._loop.run(self._backend.get(key))

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        if not isinstance(self._backend, AsyncRenewManyBackend):
            raise TypeError(f"{self._backend!r} does not renew in batches")
        return self._loop.run(self._backend.renew_many(items))

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        if not isinstance(self._backend, AsyncGetManyBackend):
            raise TypeError(f"{self._backend!r} does not read in batches")
        return self._loop.run(self._backend.get_many(keys))

    def report_member(self, member: MemberRecord) -> None:
        self._loop.run(self._member_backend().report_member(member))

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        if not isinstance(self._backend, AsyncReportManyBackend):
            raise TypeError(f"{self._backend!r} does not report status in batches")
        self._loop.run(self._backend.report_members(members))

    def members(self, key: str) -> list[MemberRecord]:
        return self._loop.run(self._member_backend().members(key))

    def _member_backend(self) -> AsyncMemberStatusBackend:
        if not isinstance(self._backend, AsyncMemberStatusBackend):
            raise TypeError(f"{self._backend!r} does not store member status")
        return self._backend

    def __repr__(self) -> str:
        return f"BlockingBackend({self._backend!r})"
