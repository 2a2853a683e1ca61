"""``LeaderElector``: leader election over any storage backend (the sync driver)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from mongoelector._common.elector_base import ElectorBase
from mongoelector._sync.callbacks import run_callback
from mongoelector._sync.calls import perform
from mongoelector._sync.leadership import Leadership
from mongoelector.backends.protocol import (
    Capability,
    MemberRecord,
    MemberStatusBackend,
    StorageBackend,
    require_backend,
)
from mongoelector.clock import Clock
from mongoelector.core.elector_machine import Step
from mongoelector.core.events import Action, LeaderInfo
from mongoelector.errors import BackendError
from mongoelector.monitoring import EventListener

__all__ = ["LeaderElector"]

logger = logging.getLogger("mongoelector.elector")


class LeaderElector(ElectorBase[StorageBackend]):
    """Elects one leader among all electors of ``key`` sharing ``backend``.

    The leader renews its lease every ``retry_period`` and steps down
    ``renew_deadline`` seconds after the start of its last successful renew if
    it cannot renew, firing ``on_leader_loss`` then even if the store is
    unreachable. Followers try to take the lease every ``retry_period``, so a
    crashed leader is replaced within ``ttl + retry_period`` and one that
    releases within ``retry_period``.

    Callbacks run in the elector's thread (or the caller's, for :meth:`poll`):
    ``on_leader()`` and ``on_leader_loss()`` once per leadership term,
    ``on_new_leader(leader)`` with a :class:`~mongoelector.core.events.LeaderInfo`
    whenever a new term is observed (including this node's own), ``on_loop()``
    after every poll. A callback that raises is logged and the elector goes on.
    """

    def __init__(
        self,
        key: str,
        backend: StorageBackend,
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
            require_backend(backend),
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
        self._poll_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop_requested = False
        self._loop_thread: threading.Thread | None = None
        self._loop_done = threading.Event()
        self._loop_done.set()

    # --- what this node knows (no backend call) ------------------------------------

    @property
    def running(self) -> bool:
        """True while the polling loop runs and no stop was requested."""
        return not self._loop_done.is_set() and not self._stop_requested

    @property
    def cluster_detail(self) -> dict[str, Any]:
        """Every member's latest report (newest first) and the current leader (reads the store)."""
        members: list[MemberRecord] = []
        if Capability.MEMBER_STATUS in self._backend.capabilities and isinstance(
            self._backend, MemberStatusBackend
        ):
            members = self._backend.members(self._key)
        record = self._backend.get(self._key)
        return self._cluster_detail(members, record, self._backend.server_time())

    # --- polling --------------------------------------------------------------------

    def poll(self) -> None:
        """Run one poll cycle now: step down if due, renew or try to acquire, report status."""
        with self._poll_lock:
            step = self._machine.begin_poll(self._clock.monotonic())
            self._notify(step)
            if step.action is not None:
                self._notify(self._carry_out(step.action))
            if self._polled():
                self._send_status(running=self.running)
            run_callback(self._on_loop, "on_loop")
        self._wake_listeners()

    def release(self) -> None:
        """Step down now if leading (firing ``on_leader_loss``) and free the lease."""
        with self._poll_lock:
            self._let_go(self._machine.release(self._clock.monotonic()))
        self._wake_listeners()

    def leadership(self, timeout: float | None = None) -> Leadership:
        """A context manager whose block runs only while this node leads.

        ``with elector.leadership() as term:`` enters at once if this node
        leads; otherwise it waits (up to ``timeout`` seconds of the elector's
        clock, forever when ``None``) for this running elector to become
        leader, raising :class:`~mongoelector.errors.AcquireTimeout` when the
        time is up and :class:`~mongoelector.errors.NotLeader` if the elector
        is not running or stops meanwhile. ``term.token`` is the term's fencing
        token; ``term.lost`` is set once leadership ends (renew deadline,
        takeover, release or stop), and the block must stop acting then. If the
        term ends before the block does, leaving the block raises
        :class:`~mongoelector.errors.LockLost`. Leaving the block never steps down.
        """
        return Leadership(self, timeout)

    # --- the loop ---------------------------------------------------------------------

    def start(self, blocking: bool = False) -> None:
        """Start polling in a background thread, or in this thread if ``blocking``.

        A second call while running does nothing. With ``blocking``, returns
        after :meth:`stop` is called (from a callback or another thread).
        """
        with self._state_lock:
            if not self._loop_done.is_set():
                return
            self._stop_requested = False
            self._wakeup.clear()
            self._loop_done.clear()
            with self._poll_lock:
                self._machine.start()
            if not blocking:
                self._loop_thread = threading.Thread(
                    target=self._run, name=f"mongoelector-{self._key}", daemon=True
                )
                self._loop_thread.start()
                return
            self._loop_thread = threading.current_thread()
        self._run()

    def stop(self) -> None:
        """Stop polling, step down and release the lease.

        Returns once the loop's in-flight backend call (if any) and the release
        have finished, never after a whole poll interval.
        """
        with self._state_lock:
            self._stop_requested = True
            self._wakeup.set()
            loop_thread = self._loop_thread
            looping = not self._loop_done.is_set()
        self._wake_listeners()
        if looping:
            if loop_thread is not threading.current_thread():
                self._loop_done.wait()
            return
        self._finish()

    def _run(self) -> None:
        try:
            while not self._stop_requested:
                self.poll()
                if self._stop_requested:
                    break
                self._clock.wait_until(self._machine.wake_at(), self._wakeup)
                self._wakeup.clear()
        except BaseException:
            logger.exception("elector loop for %r crashed; stepping down", self._key)
            raise
        finally:
            self._finish()
            self._loop_done.set()

    def _finish(self) -> None:
        with self._poll_lock:
            confirmation = self._confirmation_before_stop()
            if confirmation is not None:
                self._notify(self._carry_out(confirmation))
            self._let_go(self._machine.stop(self._clock.monotonic()))
            if self._report_status:
                self._send_status(running=False)
        self._wake_listeners()

    # --- plumbing -----------------------------------------------------------------------

    def _let_go(self, step: Step) -> None:
        self._notify(step)
        if step.action is not None:
            self._carry_out(step.action)

    def _carry_out(self, action: Action) -> Step:
        started_at = self._clock.monotonic()
        return self._settle(action, started_at, perform(self._backend, self._request, action))

    def _notify(self, step: Step) -> None:
        for callback, name, args in self._callbacks(step):
            run_callback(callback, name, *args)

    def _send_status(self, *, running: bool) -> None:
        backend = self._backend
        if Capability.MEMBER_STATUS not in backend.capabilities or not isinstance(
            backend, MemberStatusBackend
        ):
            return
        member, at = self._member_record(running=running)
        error: BackendError | None = None
        try:
            backend.report_member(member)
        except BackendError as caught:
            error = caught
        self._status_sent(member, at, error)

    def __enter__(self) -> LeaderElector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
