"""The programs simulated nodes run, and how their beliefs are recorded.

An :class:`ElectorProcess` is a real :class:`~mongoelector.LeaderElector`
driven by :meth:`~mongoelector.LeaderElector.poll`; a :class:`LockProcess` is a
real :class:`~mongoelector.Lock` user (non-blocking acquire, touch, release).
Neither runs a thread: the world calls :meth:`Process.act` when
:meth:`Process.wake_at` (the node's own monotonic time) comes.

A node *believes* it holds a key while its ``holding`` is trusted (for an
elector, while ``is_leader``). The belief is a function of the node's
monotonic time, so it ends by itself at the holding's ``valid_until``; a
:class:`BeliefTracker` turns the node's state, sampled after everything it
does, into exact true-time intervals.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Protocol

from mongoelector._sync.elector import LeaderElector
from mongoelector._sync.lock import Lock
from mongoelector.backends.protocol import StorageBackend
from mongoelector.core.lease import Holding
from mongoelector.errors import BackendError, LockExists
from mongoelector.testing.simulation.clocks import NodeClock
from mongoelector.testing.simulation.history import Belief
from mongoelector.testing.simulation.scenario import ELECTION_KEY, LOCK_KEY, LockBehaviour
from mongoelector.timing import LeaseTiming

__all__ = ["BeliefTracker", "ElectorProcess", "Host", "LockProcess", "Process"]

#: A lock user gives up re-sending a failed release after this many tries.
RELEASE_TRIES = 3


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
        self._open: tuple[int, int, int] | None = None  # token, start, deadline

    def sample(self, now: int, token: int | None, deadline: int) -> None:
        """At ``now`` the node holds ``token`` (``None``: nothing) until ``deadline``."""
        if self._open is not None:
            held, start, until = self._open
            if until <= now:
                self._emit(held, start, until)
            elif token != held:
                self._emit(held, start, now)
            else:
                self._open = (held, start, max(until, deadline))
        if token is not None and self._open is None:
            self._open = (token, now, deadline)

    def close(self, at: int) -> None:
        """Stop believing at ``at`` at the latest (released, crashed, or the run ended)."""
        if self._open is not None:
            held, start, until = self._open
            self._emit(held, start, min(until, at))

    def _emit(self, token: int, start: int, end: int) -> None:
        self._open = None
        if end > start:
            self._sink(
                Belief(key=self._key, holder=self._holder, token=token, start=start, end=end)
            )


class Process:
    """One incarnation of a node's program. Subclasses say what it does."""

    def __init__(self, *, name: str, clock: NodeClock, host: Host, tracker: BeliefTracker) -> None:
        self.name = name
        self.clock = clock
        self.host = host
        self.tracker = tracker

    @property
    def owner(self) -> str:
        """The owner id this process writes into lease records."""
        raise NotImplementedError

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

    def crash(self) -> None:
        """Die at once: the process stops believing anything, and says nothing to the store."""
        self.tracker.close(self.host.now())

    def observe(self, holding: Holding | None) -> None:
        """Sample the node's trusted ``holding`` at the current true time."""
        now = self.host.now()
        if holding is None:
            self.tracker.sample(now, None, now)
        else:
            deadline = self.host.true_time_of(self.clock, holding.valid_until)
            self.tracker.sample(now, holding.token, deadline)


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
            on_leader_loss=self._sample,
            report_status=False,
        )

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
        self.observe(self.elector.holding)

    def _on_leader(self) -> None:
        self._sample()
        if not self.elector.is_leader:
            self.host.notice(self.name, "on_leader fired while is_leader is False")


class LockProcess(Process):
    """A user of a :class:`Lock` on :data:`LOCK_KEY`: acquire, work (touching), release."""

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
    ) -> None:
        super().__init__(name=name, clock=clock, host=host, tracker=tracker)
        self.lock = Lock(
            LOCK_KEY, backend, ttl=timing.ttl, clock=clock, renew_deadline=timing.renew_deadline
        )
        self.behaviour = behaviour
        self._next_try = -math.inf
        self._work_until: float | None = None
        self._next_touch = math.inf
        self._release_tries = 0

    @property
    def owner(self) -> str:
        return self.lock.uuid

    def wake_at(self) -> float:
        if self._work_until is not None:
            return min(self._next_touch, self._work_until)
        return self._next_try

    def act(self) -> None:
        now = self.clock.monotonic()
        if self._work_until is None:
            if self._release_tries:
                self._release()
            else:
                self._acquire()
        elif self.lock.holding is None:
            # The holding lapsed or was refused: give up this piece of work.
            self._work_until = None
            self._next_try = now + self.behaviour.retry_every
        elif now >= self._work_until:
            self._release()
        else:
            self._touch()
        self.observe(self.lock.holding)

    def stop(self) -> None:
        self._release()
        self._next_try = math.inf

    def resign(self) -> None:
        self._release()

    def _acquire(self) -> None:
        try:
            self.lock.acquire(blocking=False)
        except (LockExists, BackendError):
            # After an ambiguous failure the next acquire finds (and renews) our own record.
            self._next_try = self.clock.monotonic() + self.behaviour.retry_every
            return
        now = self.clock.monotonic()
        self.observe(self.lock.holding)
        if self.lock.holding is None:
            self.host.notice(self.name, "acquire() returned True but the holding is not trusted")
        self._work_until = now + self.behaviour.hold
        self._next_touch = now + self.behaviour.touch_every

    def _touch(self) -> None:
        with contextlib.suppress(BackendError):
            if self.lock.touch() is not None and self.lock.holding is None:
                self.host.notice(self.name, "touch() returned an expiry, holding not trusted")
        self._next_touch = self.clock.monotonic() + self.behaviour.touch_every

    def _release(self) -> None:
        # release() stops trusting the holding before it asks the store.
        self.tracker.close(self.host.now())
        self._work_until = None
        try:
            self.lock.release()
        except BackendError:
            self._release_tries += 1
            if self._release_tries >= RELEASE_TRIES:
                self._release_tries = 0
        else:
            self._release_tries = 0
        self._next_try = self.clock.monotonic() + self.behaviour.retry_every
        self.observe(self.lock.holding)
