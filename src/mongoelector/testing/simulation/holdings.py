"""A simulated user of several auto-renewed locks, renewed by the process's scheduler.

A :class:`HoldingsProcess` holds the keys of its
:meth:`~mongoelector.testing.simulation.scenario.LockBehaviour.lock_keys`, each with
a real ``Lock(auto_renew=True, on_lost=...)`` on the node's clock. The
renewals run on the real :mod:`~mongoelector._sync.scheduler`, with the
node's clock driven by hand (:mod:`~mongoelector._sync.manual`): no thread
runs; the world wakes the node when the scheduler's next entry for its clock
is due (or a caller's next step is), and the node runs what is due, in the
order the scheduler's threads would: the due wake-ups and deadlines, the
renewals they queued (each store call goes through the world, so time passes
inside it and faults apply), then the callbacks (``on_lost``).

Each key has one caller: it acquires with ``acquire(blocking=False)``, works
for ``hold`` while the scheduler renews, then releases (after a failed
release it follows ``after_failed_release``); after a loss it acquires again
after ``retry_every``, or at once from inside ``on_lost``. It believes it
holds a key while the lock's holding is trusted and is the one its latest
``acquire()`` got.

While one of its calls is in flight (a user's or a renewal's), the node's
scheduler timer still runs, as the timer thread would: wake-ups and renew
deadlines fire when due (a deadline that comes while the renew hangs records
the loss at once), but the renewals and callbacks they queue wait until the
call returns, as if every worker were busy with it (the node is one unit, as
other nodes are). A paused node's timer is paused too.

With ``behaviour.electors`` the node also runs *started* electors
(``LeaderElector(...).start()``, one per key of
:meth:`~mongoelector.testing.simulation.scenario.LockBehaviour.election_keys`)
on the same scheduler and store link: a leading one's renewals go out in the
node's renew batches with its locks' (``renew_many``), following ones read
their records together (``get_many``) and try by ``compare_and_set``. Each
believes it leads while its ``holding`` is trusted (sampled as for the locks,
and inside ``on_leader``/``on_leader_loss``); a crash ends its loop without a
word to the store, a stop calls ``stop()``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

from mongoelector._sync import manual
from mongoelector._sync.elector import LeaderElector
from mongoelector._sync.lock import Lock
from mongoelector._sync.renewer import running
from mongoelector.backends.protocol import StorageBackend
from mongoelector.errors import BackendError, LockExists
from mongoelector.testing.simulation.clocks import NodeClock
from mongoelector.testing.simulation.history import Belief
from mongoelector.testing.simulation.processes import (
    RELEASE_TRIES,
    BeliefTracker,
    Host,
    Process,
    quiet,
)
from mongoelector.testing.simulation.scenario import LockBehaviour, ReleaseHabit
from mongoelector.timing import LeaseTiming

__all__ = ["HoldingsProcess"]


class _Job:
    """One key of the node: its auto-renewed lock and the caller using it."""

    def __init__(
        self, process: HoldingsProcess, key: str, backend: StorageBackend, timing: LeaseTiming
    ) -> None:
        self.process = process
        self.key = key
        self.lock = Lock(
            key,
            backend,
            ttl=timing.ttl,
            clock=process.clock,
            renew_deadline=timing.renew_deadline,
            auto_renew=True,
            on_lost=self._on_lost,
        )
        quiet(self.lock)
        self.tracker: BeliefTracker | None = None
        self.next_try = -math.inf
        self.work_until: float | None = None
        self.token: int | None = None  # the token its latest acquire() got
        self.acquisitions = 0
        self.release_tries = 0

    @property
    def behaviour(self) -> LockBehaviour:
        return self.process.behaviour

    def wake_at(self) -> float:
        return self.work_until if self.work_until is not None else self.next_try

    def holds(self) -> bool:
        holding = self.lock.holding
        return holding is not None and self.token is not None and holding.token == self.token

    def observe(self) -> None:
        assert self.tracker is not None
        holding = self.lock.holding if self.holds() else None
        self.process.observe(holding, self.tracker, self.acquisitions)

    def step(self) -> None:
        """Do this key's next piece of work now."""
        if self.work_until is None:
            if self.release_tries:
                self.release()
            else:
                self.acquire()
        elif not self.holds():  # lost, and on_lost has not said so yet: give up the work
            self._give_up()
        elif self.process.clock.monotonic() >= self.work_until:
            self.release()

    def acquire(self, *, force: bool = False) -> None:
        process = self.process
        try:
            acquired = self.lock.acquire(blocking=False, force=force)
        except (LockExists, BackendError):
            acquired = False
        now = process.clock.monotonic()
        if not acquired:
            self.next_try = now + self.behaviour.retry_every
            return
        holding = self.lock.holding
        self.token = holding.token if holding is not None else None
        self.acquisitions += 1
        if holding is None:
            process.host.notice(process.name, f"acquire({self.key!r}) returned True, not trusted")
        self.observe()
        self.release_tries = 0
        self.work_until = now + self.behaviour.hold

    def release(self) -> None:
        assert self.tracker is not None
        process = self.process
        self.tracker.close(process.host.now())  # it stops trusting before it asks the store
        self.work_until = None
        self.token = None
        failed = False
        try:
            self.lock.release()
        except BackendError:
            failed = True
        habit = self.behaviour.after_failed_release
        if failed and habit is ReleaseHabit.RESEND:
            self.release_tries = (self.release_tries + 1) % RELEASE_TRIES
        else:
            self.release_tries = 0
        self.next_try = process.clock.monotonic() + self.behaviour.retry_every
        if failed and habit is ReleaseHabit.REACQUIRE:
            self.acquire()

    def _give_up(self) -> None:
        assert self.tracker is not None
        self.tracker.close(self.process.host.now())
        self.work_until = None
        self.token = None
        self.next_try = self.process.clock.monotonic() + self.behaviour.retry_every

    def _on_lost(self) -> None:
        """``on_lost``, on the scheduler's callback "thread" (the node's run of what is due)."""
        self.process.losses += 1
        if self.work_until is None:
            return  # already given up (or released meanwhile)
        self._give_up()
        if self.behaviour.reacquire_on_loss:
            self.acquire()


class _Candidate:
    """One started elector of the node, and the beliefs it gives."""

    def __init__(
        self,
        process: HoldingsProcess,
        key: str,
        backend: StorageBackend,
        timing: LeaseTiming,
        tracker: BeliefTracker,
    ) -> None:
        self.process = process
        self.tracker = tracker
        self.elector = LeaderElector(
            key,
            backend,
            ttl=timing.ttl,
            renew_deadline=timing.renew_deadline,
            retry_period=timing.retry_period,
            clock=process.clock,
            on_leader=self._on_leader,
            on_leader_loss=self.observe,
            report_status=False,
        )
        quiet(self.elector)
        # Each term (acquisition id and token of its record) is a holding of its own.
        self._terms: dict[tuple[str | None, int], int] = {}

    def observe(self) -> None:
        holding = self.elector.holding
        term = 0
        if holding is not None:
            record = holding.record
            term = self._terms.setdefault((record.acquisition, record.token), len(self._terms) + 1)
        self.process.observe(holding, self.tracker, term)

    def _on_leader(self) -> None:
        """``on_leader``, on the scheduler's callback "thread" (the node's run of what is due)."""
        self.process.terms += 1
        self.observe()
        if not self.elector.is_leader:
            self.process.host.notice(self.process.name, "on_leader fired while is_leader is False")

    def halt(self) -> None:
        """End the started loop at once, saying nothing to the store (a crash, the run's end)."""
        elector = self.elector
        with elector._state:
            loop = elector._loop
            if loop is not None:
                elector._loop = None
                loop.stopped = True
                elector._end_locked(loop)


class HoldingsProcess(Process):
    """A user of several auto-renewed locks on one node (see the module)."""

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
        sink: Callable[[Belief], None],
    ) -> None:
        super().__init__(name=name, clock=clock, host=host, tracker=tracker)
        manual.forget(clock)  # nothing of an earlier incarnation runs on
        manual.drive(clock)
        self.behaviour = behaviour
        self.losses = 0  # on_lost calls, for the summary
        self.terms = 0  # on_leader calls, for the summary
        self.jobs: list[_Job] = []
        for key in behaviour.lock_keys():
            job = _Job(self, key, backend, timing)
            job.tracker = (
                tracker if key == tracker.key else BeliefTracker(key=key, holder=name, sink=sink)
            )
            self.jobs.append(job)
        self.candidates = [
            _Candidate(self, key, backend, timing, BeliefTracker(key=key, holder=name, sink=sink))
            for key in behaviour.election_keys()
        ]
        with manual.acting_for(clock):  # their first polls queue for the node's first act
            for candidate in self.candidates:
                candidate.elector.start()

    @property
    def owner(self) -> str:
        return self.jobs[0].lock.uuid

    @property
    def owners(self) -> list[str]:
        """The owner id of every lock and elector of the process (one per key)."""
        return [job.lock.uuid for job in self.jobs] + [
            candidate.elector.uuid for candidate in self.candidates
        ]

    def leads(self) -> bool:
        """True while one of its started electors leads (a target for ``@leader`` faults)."""
        return any(candidate.elector.is_leader for candidate in self.candidates)

    def wake_at(self) -> float:
        return min(manual.next_due(self.clock), *(job.wake_at() for job in self.jobs))

    def act(self) -> None:
        manual.run_due(self.clock)
        now = self.clock.monotonic()
        with manual.acting_for(self.clock):
            for job in self.jobs:
                if job.wake_at() <= now:
                    job.step()
                    self._observe_all()
        manual.run_due(self.clock)
        self._observe_all()

    def timers_due_at(self) -> float:
        return manual.next_entry(self.clock)

    def fire_timers(self) -> None:
        """The scheduler's timer thread: wake-ups and renew deadlines (no I/O) run while the
        node waits for a call; the work and callbacks they queue wait for the node."""
        manual.run_entries(self.clock)
        self._observe_all()

    def before_call(self) -> None:
        self._observe_all()

    def take_over(self) -> None:
        with manual.acting_for(self.clock):
            self.jobs[0].acquire(force=True)
        manual.run_due(self.clock)
        self._observe_all()

    def resign(self) -> None:
        """Step down the first of its started electors leading (``release()``), else release
        the first lock it works with."""
        working = [job for job in self.jobs if job.work_until is not None]
        leading = [c for c in self.candidates if c.elector.holding is not None]
        if working or leading:
            with manual.acting_for(self.clock):
                if leading:
                    leading[0].tracker.close(self.host.now())
                    leading[0].elector.release()
                else:
                    working[0].release()
            manual.run_due(self.clock)
        self._observe_all()

    def stop(self) -> None:
        for job in self.jobs:
            assert job.tracker is not None
            job.tracker.close(self.host.now())
            job.work_until = None
            job.release_tries = 0
            job.next_try = math.inf
        for candidate in self.candidates:
            candidate.tracker.close(self.host.now())
        with manual.acting_for(self.clock):
            for job in self.jobs:
                with contextlib.suppress(BackendError):
                    job.lock.release()
            for candidate in self.candidates:
                candidate.elector.stop()  # steps down first; its release's error is logged
        self.halt()

    def crash(self) -> None:
        self.halt()  # its renewals die with it
        super().crash()

    def halt(self) -> None:
        for renewer in running():
            if renewer._clock is self.clock:
                renewer.stop()  # parked or queued (never in a call here): ends at once
        for candidate in self.candidates:
            candidate.halt()
        manual.forget(self.clock)

    def close_beliefs(self, at: int) -> None:
        for job in self.jobs:
            assert job.tracker is not None
            job.tracker.close(at)
        for candidate in self.candidates:
            candidate.tracker.close(at)

    def _observe_all(self) -> None:
        for job in self.jobs:
            job.observe()
        for candidate in self.candidates:
            candidate.observe()
