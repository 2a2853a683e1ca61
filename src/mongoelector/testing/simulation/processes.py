"""The programs simulated nodes run, and how their beliefs are recorded.

An :class:`ElectorProcess` is a real :class:`~mongoelector.LeaderElector`
driven by :meth:`~mongoelector.LeaderElector.poll`, whose callbacks may call
``release()`` or ``stop()``; a :class:`LockProcess` is a real
:class:`~mongoelector.Lock` used by one or two callers (non-blocking acquire,
touch, release, forced takeover), which behave like real callers: some never
re-send a failed release, some acquire again right after one, two may share
the object. No thread runs: the world calls :meth:`Process.act` when
:meth:`Process.wake_at` (the node's own monotonic time) comes, and lets a
second caller of a shared lock act while the first waits for the store
(:meth:`Process.interleave`).

A node *believes* it holds a key while its ``holding`` is trusted (for an
elector, while ``is_leader``). The belief is a function of the node's
monotonic time, so it ends by itself at the holding's ``valid_until``; a
:class:`BeliefTracker` turns the node's state, sampled after everything it
does, into exact true-time intervals.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

from mongoelector._sync.elector import LeaderElector
from mongoelector._sync.lock import Lock
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    StorageBackend,
)
from mongoelector.core.lease import Holding
from mongoelector.core.lock_machine import NON_BLOCKING_CALL_LIMIT
from mongoelector.errors import BackendError, LockExists
from mongoelector.testing.simulation.clocks import NodeClock
from mongoelector.testing.simulation.history import Belief
from mongoelector.testing.simulation.scenario import (
    ELECTION_KEY,
    LOCK_KEY,
    Callback,
    LockBehaviour,
    ReleaseHabit,
)
from mongoelector.timing import LeaseTiming

__all__ = [
    "ACQUIRE_CALL_LIMIT",
    "BeliefTracker",
    "CountingBackend",
    "ElectorProcess",
    "Host",
    "LockProcess",
    "Process",
]

_T = TypeVar("_T")

#: A lock user gives up re-sending a failed release after this many tries.
RELEASE_TRIES = 3
#: The most store calls one ``acquire(blocking=False)`` may make (the library's
#: promise, copied here so that a change to the library cannot move the bar).
ACQUIRE_CALL_LIMIT = NON_BLOCKING_CALL_LIMIT


class Host(Protocol):
    """What a process needs from the world around it."""

    def now(self) -> int:
        """The current true time, in microseconds."""
        ...

    def true_time_of(self, clock: NodeClock, reading: float) -> int:
        """The first true microsecond at which ``clock`` reads ``reading`` or more."""
        ...

    def notice(self, node: str, message: str) -> None:
        """Record that ``node`` told its user something its own state contradicts."""
        ...

    def event(self, node: str, kind: str, detail: str = "") -> None:
        """Record something ``node`` did on its own that the checkers treat as a fault."""
        ...


class BeliefTracker:
    """Turns samples of one node's holding into :class:`Belief` intervals.

    Between samples a belief can only end by itself, at its deadline; so
    sampling after every action (and inside every leadership callback) makes
    the intervals exact.
    """

    def __init__(self, *, key: str, holder: str, sink: Callable[[Belief], None]) -> None:
        self._key = key
        self._holder = holder
        self._sink = sink
        # token, acquisition, start, deadline
        self._open: tuple[int, int, int, int] | None = None

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def key(self) -> str:
        return self._key

    def sample(self, now: int, token: int | None, deadline: int, acquisition: int = 0) -> None:
        """At ``now`` the node holds ``token`` (``None``: nothing) until ``deadline``, as
        its ``acquisition``-th holding."""
        if self._open is not None:
            held, count, start, until = self._open
            if until <= now:
                self._emit(held, count, start, until)
            elif (token, acquisition) != (held, count):
                self._emit(held, count, start, now)
            else:
                self._open = (held, count, start, max(until, deadline))
        if token is not None and self._open is None:
            self._open = (token, acquisition, now, deadline)

    def close(self, at: int) -> None:
        """Stop believing at ``at`` at the latest (released, crashed, or the run ended)."""
        if self._open is not None:
            held, count, start, until = self._open
            self._emit(held, count, start, min(until, at))

    def _emit(self, token: int, acquisition: int, start: int, end: int) -> None:
        self._open = None
        if end > start:
            self._sink(
                Belief(
                    key=self._key,
                    holder=self._holder,
                    token=token,
                    start=start,
                    end=end,
                    acquisition=acquisition,
                )
            )


class CountingBackend:
    """``backend``, telling ``count`` about every call before making it.

    It has only the protocol's per-key calls, so it declares no batch capability
    (``RENEW_MANY``, ``GET_MANY``, ``REPORT_MANY``), whatever ``backend`` declares.
    """

    def __init__(self, backend: StorageBackend, count: Callable[[], None]) -> None:
        self._backend = backend
        self._count = count

    @property
    def capabilities(self) -> frozenset[Capability]:
        # Only the calls counted here: no batch calls, whatever the wrapped backend has.
        return frozenset(self._backend.capabilities) - {
            Capability.RENEW_MANY,
            Capability.GET_MANY,
            Capability.REPORT_MANY,
        }

    def server_time(self) -> datetime:
        self._count()
        return self._backend.server_time()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        self._count()
        return self._backend.compare_and_set(request, force=force)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        self._count()
        return self._backend.renew(key, owner, token, ttl)

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        self._count()
        return self._backend.release(key, owner, token=token, force=force)

    def get(self, key: str) -> LeaseRecord | None:
        self._count()
        return self._backend.get(key)


#: Where simulated nodes log (their story is in the report): quiet unless asked for, e.g.
#: ``logging.getLogger("mongoelector.simulation.nodes").propagate = True``.
NODE_LOG = logging.getLogger("mongoelector.simulation.nodes")
NODE_LOG.addHandler(logging.NullHandler())
NODE_LOG.propagate = False


def quiet(participant: LeaderElector | Lock) -> None:
    """Send ``participant``'s log lines to :data:`NODE_LOG` instead of the usual loggers."""
    participant._monitor._log = NODE_LOG


class Process:
    """One incarnation of a node's program. Subclasses say what it does."""

    def __init__(self, *, name: str, clock: NodeClock, host: Host, tracker: BeliefTracker) -> None:
        self.name = name
        self.clock = clock
        self.host = host
        self.tracker = tracker
        #: Set once the process ended itself (a callback stopped it); the world retires it.
        self.finished = False

    @property
    def owner(self) -> str:
        """The owner id this process writes into lease records."""
        raise NotImplementedError

    @property
    def owners(self) -> list[str]:
        """Every owner id this process writes (one per lock object it uses)."""
        return [self.owner]

    def wake_at(self) -> float:
        """When (this node's monotonic time) :meth:`act` is due; ``inf`` never, ``-inf`` now."""
        raise NotImplementedError

    def act(self) -> None:
        """Do whatever is due now."""
        raise NotImplementedError

    def stop(self) -> None:
        """Shut down gracefully, letting go of what it holds."""
        raise NotImplementedError

    def resign(self) -> None:
        """Let go of what it holds now, and keep running."""
        raise NotImplementedError

    def interleave(self, rng: random.Random) -> None:
        """Another caller of this process may act now, while one waits for the store."""

    def before_call(self) -> None:
        """A store call of this process is about to leave: end any belief it already gave up.

        A node stops trusting a holding before it asks the store to release it
        (from inside a callback, ``on_leader_loss`` comes only afterwards), so
        its belief must end by the time that call leaves.
        """

    def take_over(self) -> None:
        """Take the lock by force, if this process uses one."""

    def crash(self) -> None:
        """Die at once: the process stops believing anything, and says nothing to the store."""
        self.close_beliefs(self.host.now())

    def close_beliefs(self, at: int) -> None:
        """Stop every belief of this process at ``at`` at the latest."""
        self.tracker.close(at)

    def timers_due_at(self) -> float:
        """When (this node's monotonic time) a timer of the process must fire even while it
        waits for a call (``inf``: it has none)."""
        return math.inf

    def fire_timers(self) -> None:
        """Fire the timers due now, while the process waits for one of its calls."""

    def halt(self) -> None:
        """The run is over: leave nothing of this process scheduled in the real process."""

    def observe(
        self,
        holding: Holding | None,
        tracker: BeliefTracker | None = None,
        acquisition: int = 0,
    ) -> None:
        """Sample the node's trusted ``holding`` at the current true time (into ``tracker``,
        the process's own by default)."""
        tracker = self.tracker if tracker is None else tracker
        now = self.host.now()
        if holding is None:
            tracker.sample(now, None, now)
        else:
            deadline = self.host.true_time_of(self.clock, holding.valid_until)
            tracker.sample(now, holding.token, deadline, acquisition)


class ElectorProcess(Process):
    """A :class:`LeaderElector` for :data:`ELECTION_KEY`, polled when it asks to be."""

    def __init__(
        self,
        *,
        name: str,
        clock: NodeClock,
        host: Host,
        tracker: BeliefTracker,
        backend: StorageBackend,
        timing: LeaseTiming,
        callback: Callback | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock, host=host, tracker=tracker)
        self.elector = LeaderElector(
            ELECTION_KEY,
            backend,
            ttl=timing.ttl,
            renew_deadline=timing.renew_deadline,
            retry_period=timing.retry_period,
            clock=clock,
            on_leader=self._on_leader,
            on_leader_loss=self._on_leader_loss,
            report_status=False,
        )
        quiet(self.elector)
        self._callback = callback
        self._terms = 0

    @property
    def owner(self) -> str:
        return self.elector.uuid

    def wake_at(self) -> float:
        return self.elector.next_poll_at

    def act(self) -> None:
        self.elector.poll()
        self._sample()

    def stop(self) -> None:
        self.elector.stop()
        self._sample()

    def resign(self) -> None:
        self.elector.release()
        self._sample()

    def _sample(self) -> None:
        self.observe(self.elector.holding, acquisition=self._terms)

    def before_call(self) -> None:
        if self.elector.holding is None:
            self.observe(None)

    def _on_leader(self) -> None:
        self._terms += 1
        self._sample()
        if not self.elector.is_leader:
            self.host.notice(self.name, "on_leader fired while is_leader is False")
        self._call_back(Callback.RELEASE_ON_LEADER, Callback.STOP_ON_LEADER)

    def _on_leader_loss(self) -> None:
        self._sample()
        self._call_back(Callback.RELEASE_ON_LOSS, Callback.STOP_ON_LOSS)

    def _call_back(self, release: Callback, stop: Callback) -> None:
        """Do what this node's callback does (once per process), from inside the callback."""
        action, self._callback = self._callback, None
        if action is release:
            self.host.event(self.name, "resigns", f"({action.value})")
            self.elector.release()
        elif action is stop:
            self.host.event(self.name, "stops", f"({action.value})")
            self.finished = True
            self.elector.stop()
        else:
            self._callback = action
            return
        self._sample()


class _Caller:
    """One caller (thread) of a lock user: its own plan, on the process's shared Lock."""

    def __init__(self, process: LockProcess, index: int, tracker: BeliefTracker) -> None:
        self.process = process
        self.index = index
        self.tracker = tracker
        self.next_try = -math.inf
        self.work_until: float | None = None
        self.next_touch = math.inf
        self.release_tries = 0
        self.token: int | None = None  # the token its latest acquire() got
        self.acquisitions = 0
        self.busy = False
        self.calls = 0
        self.releases = 0  # times it let go (release), to tell a holding it gave up
        self.losses = 0  # times a touch() found its holding lost

    @property
    def lock(self) -> Lock:
        return self.process.lock

    @property
    def behaviour(self) -> LockBehaviour:
        return self.process.behaviour

    def wake_at(self) -> float:
        if self.work_until is not None:
            return min(self.next_touch, self.work_until)
        return self.next_try

    def deadline(self) -> float:
        """The renew deadline of the object's holding (``-inf`` when none)."""
        holding = self.lock.holding
        return holding.valid_until if holding is not None else -math.inf

    def holds(self) -> bool:
        """True while the object's trusted holding is the one this caller acquired."""
        holding = self.lock.holding
        return holding is not None and self.token is not None and holding.token == self.token

    def observe(self) -> None:
        holding = self.lock.holding if self.holds() else None
        self.process.observe(holding, self.tracker, self.acquisitions)

    def step(self) -> None:
        """Do this caller's next piece of work now."""
        now = self.process.clock.monotonic()
        if self.work_until is None:
            if self.release_tries:
                self.release()
            else:
                self.acquire()
        elif not self.holds():
            # The holding lapsed, was refused or taken over: give up this piece of work.
            self.tracker.close(self.process.host.now())
            self.work_until = None
            self.next_try = now + self.behaviour.retry_every
        elif now >= self.work_until:
            self.release()
        else:
            self.touch()

    def acquire(self, *, force: bool = False) -> None:
        process = self.process
        self.calls = 0
        # Callers of the same object holding it now: a plain acquire must not succeed
        # while one of them still holds it (the object is a mutex, like threading.Lock).
        rivals = [
            (caller, caller.releases, caller.losses, caller.deadline())
            for caller in process.callers
            if caller is not self and caller.holds() and not force
        ]
        try:
            self.lock.acquire(blocking=False, force=force)
        except (LockExists, BackendError):
            self._count_calls()
            self.next_try = process.clock.monotonic() + self.behaviour.retry_every
            return
        self._count_calls()
        now = process.clock.monotonic()
        holding = self.lock.holding
        self.token = holding.token if holding is not None else None
        self.acquisitions += 1
        for rival, releases, losses, deadline in rivals:
            if (rival.releases, rival.losses) == (releases, losses) and now < deadline:
                process.host.notice(
                    self.tracker.holder,
                    f"acquire() returned True while {rival.tracker.holder}, a caller of the "
                    "same Lock, held it and had not let it go",
                )
        if holding is None:
            process.host.notice(
                self.tracker.holder, "acquire() returned True but the holding is not trusted"
            )
        self.observe()
        self.release_tries = 0
        self.work_until = now + self.behaviour.hold
        self.next_touch = now + self.behaviour.touch_every

    def _count_calls(self) -> None:
        if self.calls > ACQUIRE_CALL_LIMIT:
            self.process.host.notice(
                self.tracker.holder,
                f"acquire(blocking=False) made {self.calls} store calls "
                f"(at most {ACQUIRE_CALL_LIMIT} promised)",
            )

    def touch(self) -> None:
        with contextlib.suppress(BackendError):
            if self.lock.touch() is not None and self.lock.holding is None:
                self.process.host.notice(
                    self.tracker.holder, "touch() returned an expiry, holding not trusted"
                )
        if not self.holds():
            self.losses += 1
        self.next_touch = self.process.clock.monotonic() + self.behaviour.touch_every

    def release(self) -> None:
        process = self.process
        # release() stops trusting the holding before it asks the store.
        self.tracker.close(process.host.now())
        self.work_until = None
        self.token = None
        self.releases += 1
        failed = False
        try:
            self.lock.release()
        except BackendError:
            failed = True
        habit = self.behaviour.after_failed_release
        if failed and habit is ReleaseHabit.RESEND:
            self.release_tries += 1
            if self.release_tries >= RELEASE_TRIES:
                self.release_tries = 0
        else:
            self.release_tries = 0
        self.next_try = process.clock.monotonic() + self.behaviour.retry_every
        if failed and habit is ReleaseHabit.REACQUIRE:
            self.acquire()


class LockProcess(Process):
    """Users of a :class:`Lock` on :data:`LOCK_KEY`: acquire, work (touching), release.

    With ``behaviour.threads == 2`` two callers share the one ``Lock`` object;
    each has its own beliefs (holder ``n5/1``, ``n5/2``): a caller believes it
    holds the lock from the moment its ``acquire()`` returned ``True``, while
    the object's trusted holding is the one it acquired, until it releases.
    """

    def __init__(
        self,
        *,
        name: str,
        clock: NodeClock,
        host: Host,
        tracker: BeliefTracker,
        backend: StorageBackend,
        timing: LeaseTiming,
        behaviour: LockBehaviour,
        sink: Callable[[Belief], None] | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock, host=host, tracker=tracker)
        self._active: list[_Caller] = []
        self.lock = Lock(
            LOCK_KEY,
            CountingBackend(backend, self._count),
            ttl=timing.ttl,
            clock=clock,
            renew_deadline=timing.renew_deadline,
        )
        quiet(self.lock)
        self.behaviour = behaviour
        if behaviour.threads == 1:
            self.callers = [_Caller(self, 0, tracker)]
        else:
            assert sink is not None, "a shared lock needs a sink for its callers' beliefs"
            self.callers = [
                _Caller(
                    self,
                    index,
                    BeliefTracker(key=LOCK_KEY, holder=f"{name}/{index + 1}", sink=sink),
                )
                for index in range(behaviour.threads)
            ]

    @property
    def owner(self) -> str:
        return self.lock.uuid

    def wake_at(self) -> float:
        return min(caller.wake_at() for caller in self.callers)

    def act(self) -> None:
        now = self.clock.monotonic()
        for caller in self.callers:
            if caller.wake_at() <= now:
                self._run(caller, caller.step)
        self._observe_all()

    def interleave(self, rng: random.Random) -> None:
        idle = [caller for caller in self.callers if not caller.busy]
        if len(self.callers) < 2 or not idle or rng.random() < 0.5:
            return
        caller = idle[0] if len(idle) == 1 else rng.choice(idle)
        self._run(caller, caller.step)
        self._observe_all()

    def take_over(self) -> None:
        caller = self.callers[0]
        self._run(caller, lambda: caller.acquire(force=True))
        self._observe_all()

    def stop(self) -> None:
        for caller in self.callers:
            caller.tracker.close(self.host.now())
            caller.work_until = None
            caller.release_tries = 0
            caller.next_try = math.inf
        with contextlib.suppress(BackendError):
            self.lock.release()

    def resign(self) -> None:
        working = [caller for caller in self.callers if caller.work_until is not None]
        if working:
            self._run(working[0], working[0].release)
        else:
            self._run(self.callers[0], self.callers[0].release)
        self._observe_all()

    def close_beliefs(self, at: int) -> None:
        for caller in self.callers:
            caller.tracker.close(at)

    def _run(self, caller: _Caller, action: Callable[[], None]) -> None:
        caller.busy = True
        self._active.append(caller)
        try:
            action()
        finally:
            self._active.pop()
            caller.busy = False

    def _count(self) -> None:
        # Trust changes only in the Lock's own code, between its store calls:
        # sampling before every call (and after every action) keeps beliefs exact.
        self._observe_all()
        if self._active:
            self._active[-1].calls += 1

    def _observe_all(self) -> None:
        for caller in self.callers:
            caller.observe()
