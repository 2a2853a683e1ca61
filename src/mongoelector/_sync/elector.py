"""``LeaderElector``: leader election over any storage backend (the sync driver)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

from mongoelector._identity import local_host, local_pid, new_owner_id
from mongoelector._sync.callbacks import check_callback, run_callback
from mongoelector._sync.calls import Failure, perform
from mongoelector._validation import check_key
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemberStatusBackend,
    StorageBackend,
    require_backend,
)
from mongoelector.clock import Clock, SystemClock
from mongoelector.core import status as status_docs
from mongoelector.core.elector_machine import ElectorMachine, Role, Step
from mongoelector.core.events import (
    Action,
    Inspect,
    LeaderChanged,
    LeaderInfo,
    LeadershipGained,
    LeadershipLost,
    Release,
    Renew,
    TryAcquire,
)
from mongoelector.core.lease import Holding
from mongoelector.errors import BackendError
from mongoelector.timing import LeaseTiming

__all__ = ["LeaderElector"]

logger = logging.getLogger("mongoelector.elector")


class LeaderElector:
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
        clock: Clock | None = None,
        on_leader: Callable[[], Any] | None = None,
        on_leader_loss: Callable[[], Any] | None = None,
        on_loop: Callable[[], Any] | None = None,
        on_new_leader: Callable[[LeaderInfo], Any] | None = None,
        app_version: str | None = None,
        report_status: bool = True,
    ) -> None:
        self._key = check_key(key)
        self._backend = require_backend(backend)
        self._timing = LeaseTiming.for_ttl(
            ttl, renew_deadline=renew_deadline, retry_period=retry_period
        )
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._on_leader = check_callback(on_leader, name="on_leader")
        self._on_leader_loss = check_callback(on_leader_loss, name="on_leader_loss")
        self._on_loop = check_callback(on_loop, name="on_loop")
        self._on_new_leader = check_callback(on_new_leader, name="on_new_leader")
        if app_version is not None and not isinstance(app_version, str):
            raise TypeError(f"app_version must be a str or None, got {app_version!r}")
        self._app_version = app_version
        if not isinstance(report_status, bool):
            raise TypeError(f"report_status must be a bool, got {report_status!r}")
        self._report_status = report_status
        self._uuid = new_owner_id()
        self._host = local_host()
        self._pid = local_pid()
        self._machine = ElectorMachine(owner=self._uuid, timing=self._timing)
        self._request = LeaseRequest(
            key=self._key, owner=self._uuid, ttl=self._timing.ttl, host=self._host, pid=self._pid
        )
        self._poll_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop_requested = False
        self._loop_thread: threading.Thread | None = None
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._last_poll: datetime | None = None

    # --- settings and identity ----------------------------------------------------

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
        return self._timing.ttl

    @property
    def renew_deadline(self) -> float:
        return self._timing.renew_deadline

    @property
    def retry_period(self) -> float:
        return self._timing.retry_period

    @property
    def timing(self) -> LeaseTiming:
        return self._timing

    @property
    def uuid(self) -> str:
        """This elector's owner id in the store."""
        return self._uuid

    @property
    def host(self) -> str:
        return self._host

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def app_version(self) -> str | None:
        return self._app_version

    @property
    def poll_wait(self) -> float:
        """Seconds between polls while nothing goes wrong (the ``retry_period``)."""
        return self._timing.retry_period

    # --- what this node knows (no backend call) ------------------------------------

    @property
    def running(self) -> bool:
        """True while the polling loop runs and no stop was requested."""
        return not self._loop_done.is_set() and not self._stop_requested

    @property
    def is_leader(self) -> bool:
        """True while this node leads and its renew deadline has not passed."""
        return self._machine.is_leader(self._clock.monotonic())

    @property
    def token(self) -> int | None:
        """The fencing token of this node's current term, ``None`` unless leading."""
        return self._machine.token(self._clock.monotonic())

    @property
    def holding(self) -> Holding | None:
        """The current term's holding while this node leads, else ``None``.

        Like :attr:`Lock.holding`: ``holding.valid_until`` is the monotonic time
        (this elector's clock) at which leadership ends unless renewed.
        """
        holding = self._machine.holding
        if holding is None or not holding.is_valid(self._clock.monotonic()):
            return None
        return holding

    @property
    def leader(self) -> LeaderInfo | None:
        """Who leads, as far as this node knows from its latest poll."""
        leader = self._machine.leader
        if leader is not None and leader.uuid == self._uuid and not self.is_leader:
            return None
        return leader

    @property
    def leader_exists(self) -> bool:
        """True if this node leads, or its latest polls saw a live leader."""
        return self._machine.leader_exists(self._clock.monotonic())

    @property
    def next_poll_at(self) -> float:
        """The clock's monotonic time at which the loop polls next (``inf``: stopped)."""
        return self._machine.wake_at()

    @property
    def role(self) -> Role:
        return self._machine.role

    @property
    def node_status(self) -> dict[str, Any]:
        """This node's 1.x ``node_status`` dict, from local knowledge."""
        now = self._clock.monotonic()
        holding = self._machine.holding
        leading = self._machine.is_leader(now)
        status = status_docs.lock_status(
            uuid=self._uuid,
            key=self._key,
            ttl=self._timing.ttl,
            timestamp=self._clock.now(),
            host=self._host,
            pid=self._pid,
            holding=holding.record if holding is not None and leading else None,
            owned=leading,
        )
        return status_docs.node_status(
            status,
            is_leader=leading,
            elector_running=self.running,
            last_poll=self._last_poll,
            app_version=self._app_version,
        )

    @property
    def cluster_detail(self) -> dict[str, Any]:
        """Every member's latest report (newest first) and the current leader (reads the store)."""
        members: list[MemberRecord] = []
        if Capability.MEMBER_STATUS in self._backend.capabilities and isinstance(
            self._backend, MemberStatusBackend
        ):
            members = self._backend.members(self._key)
        record = self._backend.get(self._key)
        server_now = self._backend.server_time()
        live = record if record is not None and record.is_held(server_now) else None
        return status_docs.cluster_detail(members, live, server_now)

    # --- polling --------------------------------------------------------------------

    def poll(self) -> None:
        """Run one poll cycle now: step down if due, renew or try to acquire, report status."""
        with self._poll_lock:
            step = self._machine.begin_poll(self._clock.monotonic())
            self._notify(step)
            if step.action is not None:
                self._notify(self._carry_out(step.action))
            self._last_poll = self._clock.now()
            if self._report_status and self._machine.status_due(self._clock.monotonic()):
                self._send_status(running=self.running)
            run_callback(self._on_loop, "on_loop")

    def release(self) -> None:
        """Step down now if leading (firing ``on_leader_loss``) and free the lease."""
        with self._poll_lock:
            self._let_go(self._machine.release(self._clock.monotonic()))

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
            self._let_go(self._machine.stop(self._clock.monotonic()))
            if self._report_status:
                self._send_status(running=False)

    # --- plumbing -----------------------------------------------------------------------

    def _let_go(self, step: Step) -> None:
        self._notify(step)
        if step.action is not None:
            self._carry_out(step.action)

    def _carry_out(self, action: Action) -> Step:
        started_at = self._clock.monotonic()
        outcome = perform(self._backend, self._request, action)
        now = self._clock.monotonic()
        if isinstance(outcome, Failure):
            logger.warning(
                "%s for %r failed%s: %s",
                type(action).__name__,
                self._key,
                " (outcome unknown)" if outcome.ambiguous else "",
                outcome.error,
            )
            return self._machine.on_failure(action, now, ambiguous=outcome.ambiguous)
        if isinstance(action, TryAcquire):
            assert isinstance(outcome, CasResult)
            return self._machine.on_acquire_result(started_at, now, outcome)
        if isinstance(action, Renew):
            assert outcome is None or isinstance(outcome, LeaseRecord)
            return self._machine.on_renew_result(started_at, now, outcome)
        if isinstance(action, Inspect):
            assert outcome is None or isinstance(outcome, LeaseRecord)
            return self._machine.on_inspect_result(now, outcome)
        assert isinstance(action, Release)
        return Step()

    def _notify(self, step: Step) -> None:
        for note in step.notifications:
            if isinstance(note, LeadershipGained):
                logger.info("%r: leader of %r with token %d", self._uuid, self._key, note.token)
                run_callback(self._on_leader, "on_leader")
            elif isinstance(note, LeadershipLost):
                logger.info(
                    "%r: lost leadership of %r (token %d): %s",
                    self._uuid,
                    self._key,
                    note.token,
                    note.reason.value,
                )
                run_callback(self._on_leader_loss, "on_leader_loss")
            elif isinstance(note, LeaderChanged):
                run_callback(self._on_new_leader, "on_new_leader", note.leader)

    def _send_status(self, *, running: bool) -> None:
        backend = self._backend
        if Capability.MEMBER_STATUS not in backend.capabilities or not isinstance(
            backend, MemberStatusBackend
        ):
            return
        now = self._clock.monotonic()
        leading = self._machine.is_leader(now)
        member = MemberRecord(
            key=self._key,
            uuid=self._uuid,
            host=self._host,
            pid=self._pid,
            is_leader=leading,
            elector_running=running,
            ttl=self._timing.ttl,
            token=self._machine.token(now),
            app_version=self._app_version,
        )
        try:
            backend.report_member(member)
        except BackendError as error:
            logger.warning("status report for %r failed: %s", self._key, error)
            return
        self._machine.status_reported(now, leading=leading)

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

    def __repr__(self) -> str:
        return (
            f"LeaderElector(key={self._key!r}, uuid={self._uuid!r}, "
            f"role={self._machine.role.value}, token={self.token!r})"
        )
