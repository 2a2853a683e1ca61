"""``AsyncLeaderElector``: leader election for asyncio code (the asyncio driver)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from mongoelector._common.elector_base import ElectorBase
from mongoelector.aio._glue import TaskLock, perform, run_callback
from mongoelector.aio._time import wait_until
from mongoelector.aio.leadership import AsyncLeadership
from mongoelector.backends.async_protocol import (
    AsyncMemberStatusBackend,
    AsyncStorageBackend,
    as_async_backend,
)
from mongoelector.backends.protocol import Capability, MemberRecord, StorageBackend
from mongoelector.clock import Clock
from mongoelector.core.elector_machine import Step
from mongoelector.core.events import Action, LeaderInfo
from mongoelector.errors import BackendError
from mongoelector.monitoring import EventListener

__all__ = ["AsyncLeaderElector"]

logger = logging.getLogger("mongoelector.elector")


class AsyncLeaderElector(ElectorBase[AsyncStorageBackend]):
    """Elects one leader among all electors of ``key``: ``LeaderElector`` for asyncio.

    Same settings, timing and promises as ``LeaderElector``, and the same
    state machine. ``backend`` is an
    :class:`~mongoelector.backends.async_protocol.AsyncStorageBackend`, or a
    sync backend that never blocks (``MemoryBackend``), called inline.

    The loop runs as an asyncio task. Callbacks run in that task (or in the
    caller's, for :meth:`poll`) and may be plain functions or coroutine
    functions, which are awaited: keep them short, since the next renew waits
    for them; long work belongs in :meth:`leadership`. A callback that raises
    is logged and the elector goes on. Cancelling the loop's task steps this
    node down (firing ``on_leader_loss``) and releases the lease, even if a
    store call was in flight.
    """

    def __init__(
        self,
        key: str,
        backend: AsyncStorageBackend | StorageBackend,
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
            as_async_backend(backend),
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
        self._poll_lock = TaskLock()
        self._looping = False
        self._stop_requested = False
        self._task: asyncio.Task[Any] | None = None
        self._wakeup: asyncio.Event | None = None
        self._first_poll: asyncio.Event | None = None
        self._loop_done: asyncio.Event | None = None

    # --- what this node knows --------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the polling loop runs and no stop was requested."""
        return self._looping and not self._stop_requested

    @property
    def task(self) -> asyncio.Task[Any] | None:
        """The task the polling loop runs in (the caller's for a blocking start), if started."""
        return self._task

    async def cluster_detail(self) -> dict[str, Any]:
        """Every member's latest report (newest first) and the current leader (reads the store)."""
        backend = self._backend
        members: list[MemberRecord] = []
        if Capability.MEMBER_STATUS in backend.capabilities and isinstance(
            backend, AsyncMemberStatusBackend
        ):
            members = await backend.members(self._key)
        record = await backend.get(self._key)
        return self._cluster_detail(members, record, await backend.server_time())

    # --- polling --------------------------------------------------------------------

    async def poll(self) -> None:
        """Run one poll cycle now: step down if due, renew or try to acquire, report status."""
        async with self._poll_lock:
            step = self._machine.begin_poll(self._clock.monotonic())
            await self._notify(step)
            if step.action is not None:
                await self._notify(await self._carry_out(step.action))
            if self._polled():
                await self._send_status(running=self.running)
            await run_callback(self._on_loop, "on_loop")
        self._wake_listeners()

    async def release(self) -> None:
        """Step down now if leading (firing ``on_leader_loss``) and free the lease."""
        async with self._poll_lock:
            await self._let_go(self._machine.release(self._clock.monotonic()))
        self._wake_listeners()

    def leadership(self, timeout: float | None = None) -> AsyncLeadership:
        """An async context manager whose block runs only while this node leads.

        ``async with elector.leadership() as term:`` enters at once if this
        node leads; otherwise it waits (up to ``timeout`` seconds of the
        elector's clock, forever when ``None``) for this running elector to
        become leader, raising :class:`~mongoelector.errors.AcquireTimeout`
        when the time is up and :class:`~mongoelector.errors.NotLeader` if the
        elector is not running or stops meanwhile. When the term ends (renew
        deadline passed, takeover observed, release, stop), the block is
        cancelled and :class:`~mongoelector.errors.LockLost` is raised out of
        it. ``term.token`` is the term's fencing token. Leaving the block
        never steps down.
        """
        return AsyncLeadership(self, timeout)

    # --- the loop ---------------------------------------------------------------------

    async def start(self, blocking: bool = False) -> None:
        """Start polling in a new task; return once its first poll is done.

        A second call while running does nothing. With ``blocking``, poll in
        the calling task instead, returning after :meth:`stop` (or raising
        the task's cancellation, after stepping down).
        """
        if self._looping:
            return
        self._looping = True
        self._stop_requested = False
        self._wakeup = asyncio.Event()
        self._first_poll = asyncio.Event()
        self._loop_done = asyncio.Event()
        self._machine.start()
        if blocking:
            self._task = asyncio.current_task()
            await self._run()
            return
        self._task = asyncio.create_task(self._run(), name=f"mongoelector-{self._key}")
        await self._first_poll.wait()

    async def stop(self) -> None:
        """Stop polling, step down and release the lease.

        Returns once the loop's in-flight store call (if any) and the release
        have finished, never after a whole poll interval. From a callback
        running in the loop's task, only asks the loop to stop.
        """
        self._stop_requested = True
        if self._wakeup is not None:
            self._wakeup.set()
        self._wake_listeners()
        if self._looping:
            if self._task is asyncio.current_task():
                return
            assert self._loop_done is not None
            await self._loop_done.wait()
            return
        await self._finish()

    async def _run(self) -> None:
        assert self._wakeup is not None and self._first_poll is not None
        assert self._loop_done is not None
        try:
            while not self._stop_requested:
                await self.poll()
                self._first_poll.set()
                if self._stop_requested:
                    break
                await wait_until(self._clock, self._machine.wake_at(), self._wakeup)
                self._wakeup.clear()
        except asyncio.CancelledError:
            logger.info("elector loop for %r cancelled; stepping down", self._key)
            raise
        except Exception:
            logger.exception("elector loop for %r crashed; stepping down", self._key)
            raise
        finally:
            try:
                await self._finish()
            finally:
                self._looping = False
                self._first_poll.set()
                self._loop_done.set()

    async def _finish(self) -> None:
        async with self._poll_lock:
            confirmation = self._confirmation_before_stop()
            if confirmation is not None:
                await self._notify(await self._carry_out(confirmation))
            await self._let_go(self._machine.stop(self._clock.monotonic()))
            if self._report_status:
                await self._send_status(running=False)
        self._wake_listeners()

    # --- plumbing -----------------------------------------------------------------------

    async def _let_go(self, step: Step) -> None:
        await self._notify(step)
        if step.action is not None:
            await self._carry_out(step.action)

    async def _carry_out(self, action: Action) -> Step:
        started_at = self._clock.monotonic()
        try:
            outcome = await perform(self._backend, self._request, action)
        except asyncio.CancelledError:
            self._interrupted(action)
            raise
        return self._settle(action, started_at, outcome)

    async def _notify(self, step: Step) -> None:
        for callback, name, args in self._callbacks(step):
            await run_callback(callback, name, *args)

    async def _send_status(self, *, running: bool) -> None:
        backend = self._backend
        if Capability.MEMBER_STATUS not in backend.capabilities or not isinstance(
            backend, AsyncMemberStatusBackend
        ):
            return
        member, at = self._member_record(running=running)
        error: BackendError | None = None
        try:
            await backend.report_member(member)
        except BackendError as caught:
            error = caught
        self._status_sent(member, at, error)

    async def __aenter__(self) -> AsyncLeaderElector:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
