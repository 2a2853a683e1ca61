"""An elector's settings, identity and local knowledge, shared by both drivers (no I/O).

A driver subclasses :class:`ElectorBase` with the backend type it calls, and
adds the polling loop, the store calls and the way it runs callbacks. Routing
store results into the :class:`~mongoelector.core.elector_machine.ElectorMachine`,
turning its notifications into queued callbacks, deciding at each callback's
turn whether it is still due, and building status reports all happen here, once.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from mongoelector._common.batches import Observed
from mongoelector._common.callback_queue import CallbackQueue, Kind, Pending
from mongoelector._common.monitor import operation_of
from mongoelector._common.outcomes import Failure, Result, request_for
from mongoelector._common.participant import Participant
from mongoelector._identity import new_acquisition_id
from mongoelector._listeners import ELECTOR, EventListener
from mongoelector._sync.callbacks import check_callback
from mongoelector._validation import check_key
from mongoelector.backends.protocol import CasResult, LeaseRecord, MemberRecord, RenewItem
from mongoelector.clock import Clock
from mongoelector.core import status as status_docs
from mongoelector.core.batching import JOIN_FRACTION, RenewTiming
from mongoelector.core.elector_machine import ElectorMachine, Role, Step
from mongoelector.core.events import (
    Action,
    Inspect,
    LeaderChanged,
    LeaderInfo,
    LeadershipGained,
    LeadershipLost,
    LossReason,
    Observe,
    Release,
    Renew,
    SlowRoundTrips,
    TryAcquire,
)
from mongoelector.core.lease import Holding
from mongoelector.errors import BackendError
from mongoelector.timing import LeaseTiming

__all__ = ["BatchedLoop", "ElectorBase"]

BackendT = TypeVar("BackendT")

#: How many past terms' loss reasons an elector remembers (for leadership scopes).
_REMEMBERED_LOSSES = 16


class ElectorBase(Participant[BackendT]):
    """What an elector knows without asking the store, and how it reacts to what the store says.

    Subclasses provide :attr:`running`. Listeners added with
    :meth:`_add_listener` are called (from whichever thread or task drives
    the elector) whenever leadership may have changed: after every poll, and
    as soon as a loss is known, before ``on_leader_loss`` runs.
    """

    __slots__ = (
        "_announced",
        "_app_version",
        "_last_poll",
        "_listeners",
        "_listeners_lock",
        "_loss_reasons",
        "_machine",
        "_on_leader",
        "_on_leader_loss",
        "_on_loop",
        "_on_new_leader",
        "_queue",
        "_report_status",
        "_request",
        "_unsent",
    )

    def __init__(
        self,
        key: str,
        backend: BackendT,
        *,
        ttl: float,
        renew_deadline: float | None,
        retry_period: float | None,
        follower_poll: float | None = None,
        clock: Clock | None,
        on_leader: Callable[[], Any] | None,
        on_leader_loss: Callable[[], Any] | None,
        on_loop: Callable[[], Any] | None,
        on_new_leader: Callable[[LeaderInfo], Any] | None,
        app_version: str | None,
        report_status: bool,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        key = check_key(key)
        timing = LeaseTiming.for_ttl(
            ttl,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            follower_poll=follower_poll,
        )
        super().__init__(
            key,
            backend,
            timing=timing,
            clock=clock,
            kind=ELECTOR,
            event_listeners=event_listeners,
        )
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
        self._machine = ElectorMachine(
            owner=self._uuid, timing=self._timing, new_acquisition=new_acquisition_id
        )
        self._request = request_for(self._key, self._uuid, self._timing.ttl, self._host, self._pid)
        self._last_poll: datetime | None = None
        self._loss_reasons: dict[int, LossReason] = {}
        self._listeners: list[Callable[[], object]] = []
        self._listeners_lock = threading.Lock()
        self._queue = CallbackQueue()
        # Terms whose on_leader ran (or was due with no callback set): their loss is due.
        self._announced: set[int] = set()
        # Releases decided but not yet sent: sent after the callbacks they caused, if those
        # run at once, by whichever release()/stop() comes first (see _let_go).
        self._unsent: list[Release] = []

    def _after_fork(self) -> None:
        self._machine = ElectorMachine(
            owner=self._uuid, timing=self._timing, new_acquisition=new_acquisition_id
        )
        self._request = request_for(self._key, self._uuid, self._timing.ttl, self._host, self._pid)
        self._loss_reasons = {}
        self._listeners = []  # the parent's waiters: their threads are not in the child
        self._listeners_lock = threading.Lock()
        self._queue = CallbackQueue()
        self._announced = set()
        self._unsent = []

    # --- batches (a started loop in its store's renew and read groups) ---------------

    def _renew_timing(self, now: float | None) -> RenewTiming | None:
        """When the term must next be renewed; ``None`` unless the elector leads (trusted)."""
        when = self._clock.monotonic() if now is None else now
        return self._machine.renew_timing(when, key=self._key)

    def _read_timing(self, now: float | None) -> RenewTiming | None:
        """When the follower's next poll falls due; ``None`` unless it would read first."""
        when = self._clock.monotonic() if now is None else now
        return self._machine.read_timing(when, key=self._key)

    def _due_to_join(self, until: float | None, now: float, *, read: bool) -> bool:
        """Whether a loop that waits until ``until`` (``None``: it does not wait) is due soon
        enough at ``now`` to join a batch: within :data:`JOIN_FRACTION` of its
        ``follower_period`` for a batch of follower reads (``read``), of its
        ``retry_period`` for a batch of renewals."""
        period = self._timing.follower_period if read else self._timing.retry_period
        return until is not None and until <= now + period * JOIN_FRACTION

    def _renew_item(self, step: Renew) -> RenewItem:
        """The term's renewal ``step`` as one item of a ``renew_many`` call."""
        request = self._request
        return RenewItem(key=request.key, owner=request.owner, token=step.token, ttl=request.ttl)

    # --- settings ------------------------------------------------------------------

    @property
    def retry_period(self) -> float:
        return self._timing.retry_period

    @property
    def timing(self) -> LeaseTiming:
        return self._timing

    @property
    def app_version(self) -> str | None:
        return self._app_version

    @property
    def poll_wait(self) -> float:
        """Seconds between polls while nothing goes wrong.

        ``retry_period`` while leading, ``follower_poll`` (default ``retry_period``)
        while following, like 1.x's leader/follower cadence.
        """
        self._check_fork()
        if self._machine.is_leader(self._clock.monotonic()):
            return self._timing.retry_period
        return self._timing.follower_period

    # --- what this node knows (no backend call) ------------------------------------

    @property
    def running(self) -> bool:
        """True while the polling loop runs and no stop was requested."""
        raise NotImplementedError

    @property
    def is_leader(self) -> bool:
        """True while this node leads and its renew deadline has not passed."""
        self._check_fork()
        return self._machine.is_leader(self._clock.monotonic())

    @property
    def token(self) -> int | None:
        """The fencing token of this node's current term, ``None`` unless leading."""
        self._check_fork()
        return self._machine.token(self._clock.monotonic())

    @property
    def holding(self) -> Holding | None:
        """The current term's holding while this node leads, else ``None``.

        Like ``Lock.holding``: ``holding.valid_until`` is the monotonic time
        (this elector's clock) at which leadership ends unless renewed.
        """
        self._check_fork()
        holding = self._machine.holding
        if holding is None or not holding.is_valid(self._clock.monotonic()):
            return None
        return holding

    @property
    def leader(self) -> LeaderInfo | None:
        """Who leads, as far as this node knows from its latest poll."""
        self._check_fork()
        leader = self._machine.leader
        if leader is not None and leader.uuid == self._uuid and not self.is_leader:
            return None
        return leader

    @property
    def leader_exists(self) -> bool:
        """True if this node leads, or its latest polls saw a live leader."""
        self._check_fork()
        return self._machine.leader_exists(self._clock.monotonic())

    @property
    def next_poll_at(self) -> float:
        """The clock's monotonic time at which the loop polls next (``inf``: stopped)."""
        self._check_fork()
        return self._machine.wake_at()

    @property
    def role(self) -> Role:
        self._check_fork()
        return self._machine.role

    @property
    def node_status(self) -> dict[str, Any]:
        """This node's 1.x ``node_status`` dict, from local knowledge."""
        self._check_fork()
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

    # --- reacting to the store (the drivers call these around their I/O) ------------

    def _settle(self, action: Action, started_at: float, outcome: Result | Failure) -> Step:
        """Feed the machine what ``action`` (sent at ``started_at``) returned or raised."""
        now = self._clock.monotonic()
        holding = self._machine.holding
        margin = holding.valid_until - now if holding is not None else None
        if isinstance(outcome, Failure):
            token = action.token if isinstance(action, (Renew, Release)) else None
            operation = operation_of(action)
            self._tell(
                None,
                self._monitor.store_error,
                operation,
                outcome.error,
                token=token,
                margin=margin,
            )
            return self._machine.on_failure(action, now, ambiguous=outcome.ambiguous)
        if isinstance(action, TryAcquire):
            assert isinstance(outcome, CasResult)
            return self._machine.on_acquire_result(started_at, now, outcome)
        if isinstance(action, Renew):
            assert outcome is None or isinstance(outcome, LeaseRecord)
            leading = self._machine.role is Role.LEADER
            step = self._machine.on_renew_result(started_at, now, outcome)
            if leading and margin is not None and self._machine.token(now) == action.token:
                self._tell(
                    None,
                    self._monitor.renewed,
                    action.token,
                    latency=now - started_at,
                    margin=margin,
                )
            return step
        if isinstance(action, Inspect):
            assert outcome is None or isinstance(outcome, LeaseRecord)
            return self._machine.on_inspect_result(now, outcome)
        assert isinstance(action, Release)
        return Step()

    def _settle_observed(self, started_at: float, outcome: Observed | Failure) -> Step:
        """Feed the machine what a follower's read (an ``Observe``, sent at ``started_at``,
        alone or in a batch) came back with: the record and the store's time after it, or
        a failure (reported as a failed read). The step may hold the try to make now."""
        if isinstance(outcome, Failure):
            return self._settle(Observe(), started_at, outcome)
        record, server_now = outcome
        return self._machine.on_observe_result(self._clock.monotonic(), record, server_now)

    def _confirmation_before_stop(self) -> Inspect | None:
        """The read to make before stopping or releasing, so that it can release by token.

        After an acquire of unknown outcome this node may hold the lease
        without knowing its token; the machine then lets it lapse rather than
        release without a token. Reading the record first (an ``Inspect``)
        tells whether it is ours and with which token, so the stop releases it.
        """
        if self._machine.role is not Role.CONFIRMING:
            return None
        action = self._machine.begin_poll(self._clock.monotonic()).action
        return action if isinstance(action, Inspect) else None

    def _interrupted(self, action: Action) -> None:
        """``action`` was abandoned mid-call (its task was cancelled): it may have applied."""
        self._machine.on_failure(action, self._clock.monotonic(), ambiguous=True)

    def _notify(self, step: Step) -> None:
        """Report ``step``'s notifications (log, listeners); queue the callbacks they call for."""
        self._queue.put(self._callbacks(step))

    def _let_go(self, step: Step) -> None:
        """Queue the callbacks of a step-down (``release()``/``stop()``) and keep its release.

        The release is sent by :meth:`_next_unsent`'s caller after the caller
        has run the callbacks it could run at once (``on_leader_loss`` first,
        then the lease is freed), or at once if they must wait for a callback
        running elsewhere.
        """
        self._notify(step)
        if isinstance(step.action, Release):
            self._unsent.append(step.action)

    def _next_unsent(self) -> Release | None:
        """A release decided and not sent yet, for the caller to send now (under its lock)."""
        return self._unsent.pop(0) if self._unsent else None

    def _abandoned(self, release: Release) -> None:
        """``release`` (from :meth:`_next_unsent`) was abandoned mid-call (its task was
        cancelled): it goes out again first, from the next caller that sends releases
        (``start()``, ``release()``, ``stop()``). By its token, so it frees nothing else:
        if the abandoned one landed, it is a no-op."""
        self._unsent.insert(0, release)

    def _notify_loop(self) -> None:
        """Queue ``on_loop`` (a poll just finished), if set."""
        if self._on_loop is not None:
            self._queue.put([Pending(kind=Kind.LOOP, callback=self._on_loop)])

    def _tell(
        self,
        calls: list[Pending] | None,
        report: Callable[..., None],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Make a monitor ``report`` (its log line, the event listeners): ``report(*args, ...)``.

        At once, unless :meth:`_defers_reports` says it waits its turn among
        the callbacks: then it is appended to ``calls`` (the callbacks being
        gathered for a step), or queued now when ``calls`` is ``None``.
        """
        if not self._defers_reports():
            report(*args, **kwargs)
            return
        pending = Pending(kind=Kind.EVENT, callback=functools.partial(report, *args, **kwargs))
        if calls is None:
            self._queue.put([pending])
        else:
            calls.append(pending)

    def _defers_reports(self) -> bool:
        """Whether monitor reports run with the callbacks, in their order (the driver says)."""
        return False

    def _callbacks(self, step: Step) -> list[Pending]:
        """Report ``step``'s notifications (log, listeners); the callbacks due, in order."""
        calls: list[Pending] = []
        lost = False
        now = self._clock.monotonic()
        for note in step.notifications:
            if isinstance(note, LeadershipGained):
                holding = self._machine.holding
                began = holding.started_at if holding is not None else now
                self._tell(calls, self._monitor.gained, note.token, latency=now - began, now=now)
                calls.append(Pending(kind=Kind.LEADER, callback=self._on_leader, token=note.token))
            elif isinstance(note, LeadershipLost):
                self._tell(calls, self._monitor.lost, note.token, note.reason, now=now)
                self._loss_reasons[note.token] = note.reason
                while len(self._loss_reasons) > _REMEMBERED_LOSSES:
                    del self._loss_reasons[next(iter(self._loss_reasons))]
                lost = True
                calls.append(
                    Pending(kind=Kind.LOSS, callback=self._on_leader_loss, token=note.token)
                )
            elif isinstance(note, LeaderChanged):
                self._tell(calls, self._monitor.leader_changed, note.leader)
                if self._on_new_leader is not None:
                    calls.append(
                        Pending(
                            kind=Kind.NEW_LEADER, callback=self._on_new_leader, args=(note.leader,)
                        )
                    )
            elif isinstance(note, SlowRoundTrips):
                self._tell(calls, self._monitor.slow_round_trips, note)
        if lost:
            self._wake_listeners()
        return calls

    def _next_callback(self, runner: object) -> Pending | None:
        """The next queued callback that is still due, for ``runner`` to run; ``None``: none left.

        ``None`` also when ``runner`` is not (or no longer) the queue's runner.
        Callbacks whose news is stale by their turn are dropped here.
        """
        while (call := self._queue.take(runner)) is not None:
            if self._still_due(call):
                return call
        return None

    def _still_due(self, call: Pending) -> bool:
        """Whether ``call`` still tells the truth now that its turn has come.

        ``on_leader`` runs only while its term lasts; ``on_leader_loss`` only
        for a term whose ``on_leader`` ran (the two always pair up);
        ``on_new_leader`` only while the leader it names is still the one this
        node knows of (never this node once it stopped leading); ``on_loop``
        and monitor reports always.
        """
        if call.kind is Kind.LEADER:
            assert call.token is not None
            if self._machine.token(self._clock.monotonic()) != call.token:
                return False
            self._announced.add(call.token)
            return True
        if call.kind is Kind.LOSS:
            if call.token not in self._announced:
                return False
            self._announced.discard(call.token)
            return True
        if call.kind is Kind.NEW_LEADER:
            return bool(self.leader == call.args[0])
        return True

    def _polled(self) -> bool:
        """Record that a poll finished; ``True`` if a status report is due now."""
        self._last_poll = self._clock.now()
        return self._report_status and self._machine.status_due(self._clock.monotonic())

    def _member_record(self, *, running: bool) -> tuple[MemberRecord, float]:
        """This node's status report, and the monotonic time it describes."""
        now = self._clock.monotonic()
        member = MemberRecord(
            key=self._key,
            uuid=self._uuid,
            host=self._host,
            pid=self._pid,
            is_leader=self._machine.is_leader(now),
            elector_running=running,
            ttl=self._timing.ttl,
            token=self._machine.token(now),
            app_version=self._app_version,
        )
        return member, now

    def _status_sent(self, member: MemberRecord, at: float, error: BackendError | None) -> None:
        if error is not None:
            self._tell(None, self._monitor.store_error, "status report", error)
            return
        self._machine.status_reported(at, leading=member.is_leader)

    def _status_landed(
        self, member: MemberRecord, at: float, error: BackendError | None, *, stale: bool
    ) -> bool:
        """Record how a batched report ``member`` (made at ``at``) ended; ``True`` if another
        report is due already: its leadership changed while this one was in flight (a poll
        found the new report due but could not queue it). Only after a success: a failed
        report waits for a poll, so that a store that is down is not pressed.

        ``stale``: the loop that made it was stopped while it was in flight. It is then not
        this node's latest report: the stop sends that one after it, or, started again
        first, the new loop, whose report (due since the restart, and skipped while this
        one was in flight) is due still.
        """
        if stale:
            if error is not None:
                self._tell(None, self._monitor.store_error, "status report", error)
        else:
            self._status_sent(member, at, error)
        return error is None and self._machine.status_due(self._clock.monotonic())

    def _cluster_detail(
        self, members: Sequence[MemberRecord], record: LeaseRecord | None, server_now: datetime
    ) -> dict[str, Any]:
        live = record if record is not None and record.is_held(server_now) else None
        return status_docs.cluster_detail(list(members), live, server_now)

    # --- listeners and leadership terms -----------------------------------------------

    def _add_listener(self, listener: Callable[[], object]) -> None:
        self._check_fork()  # the parent's listener lock may be held for good in a child
        with self._listeners_lock:
            self._listeners.append(listener)

    def _remove_listener(self, listener: Callable[[], object]) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @contextlib.contextmanager
    def _listening(self, listener: Callable[[], object]) -> Iterator[None]:
        """Call ``listener`` on every possible change of leadership while in the block."""
        self._add_listener(listener)
        try:
            yield
        finally:
            self._remove_listener(listener)

    def _wake_listeners(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def _term_loss(self, token: int) -> LossReason | None:
        """Why the term with fencing ``token`` is over, or ``None`` while this node still leads it.

        A term whose end no poll has reported yet ended at its renew deadline. In a
        forked child no term of the parent's lasts (``leadership()`` terms and
        ``fenced()`` entered before the fork read it here).
        """
        self._check_fork()
        reason = self._loss_reasons.get(token)
        if reason is not None:
            return reason
        if self._machine.token(self._clock.monotonic()) == token:
            return None
        return LossReason.DEADLINE

    def _refused_by_check(self, token: int, started_at: float) -> Step | None:
        """The store, read at ``started_at``, no longer has the lease of term ``token``.

        For ``fenced_transaction``, whose failed check was followed by a read
        of the lease record showing it is not this term's: the step a refused
        renew of the term gives (the term ends, taken over), for the driver to
        notify under its poll lock. ``None`` (nothing changes) unless ``token``
        is the term this node leads now.
        """
        if self._machine.token(self._clock.monotonic()) != token:
            return None
        return self._settle(Renew(token=token), started_at, None)

    def _term_valid_until(self, token: int) -> float:
        """The monotonic time until which the term with ``token`` is trusted (so far)."""
        self._check_fork()
        holding = self._machine.holding
        if holding is None or holding.token != token:
            return self._clock.monotonic()
        return holding.valid_until

    def __repr__(self) -> str:
        self._check_fork()  # read first in a forked child: the child's own
        return (
            f"{type(self).__name__}(key={self._key!r}, uuid={self._uuid!r}, "
            f"role={self._machine.role.value}, token={self.token!r})"
        )


class _Group(Protocol):
    def leave(self, member: Any, /) -> None: ...


ElectorT = TypeVar("ElectorT", bound=ElectorBase[Any])
LoopT = TypeVar("LoopT")


class BatchedLoop(Generic[ElectorT, LoopT]):
    """A started elector's loop as a member of its store's renew group (``group``, while it
    leads), read group (``read_group``, while it follows) and status group
    (``status_group``, its status reports), in either driver: what the groups ask of it
    that is the elector's, not the driver's."""

    __slots__ = ("_elector", "_loop", "group", "read_group", "status_group")

    group: _Group | None
    read_group: _Group | None
    status_group: _Group | None

    def __init__(self, elector: ElectorT, loop: LoopT) -> None:
        self._elector = elector
        self._loop = loop
        self.status_group = None  # a driver that sends reports together sets it

    def leave(self) -> None:
        """The loop ended: it leaves its groups."""
        if self.group is not None:
            self.group.leave(self)
        if self.read_group is not None:
            self.read_group.leave(self)
        if self.status_group is not None:
            self.status_group.leave(self)

    def status_timing(self, now: float) -> RenewTiming | None:
        """When the elector's next status report falls due (for choosing a batch of reports:
        :func:`~mongoelector.core.batching.renew_together`); ``None`` if it reports none."""
        if not self._elector._report_status:
            return None
        elector = self._elector
        return elector._machine.status_timing(now, key=elector._uuid)

    @property
    def key(self) -> str:
        return self._elector._key

    def _renew_item(self, step: Renew) -> RenewItem:
        return self._elector._renew_item(step)

    def __repr__(self) -> str:
        return f"_Batched({self._elector!r})"
