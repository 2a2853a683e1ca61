"""The simulated world: one true timeline, a shared store, nodes, and faults.

Everything runs in one thread, on one event queue ordered by (true time,
sequence number), so a scenario always unfolds the same way. True time is a
:class:`~mongoelector.testing.FakeClock` counted in whole microseconds; it is
the :class:`~mongoelector.backends.MemoryBackend`'s server time. Each node
reads it through its own :class:`~mongoelector.testing.simulation.clocks.NodeClock`.

Time passes *inside* a call (network latency, a call hanging in a partition,
a process paused between the store's reply and its handling) by running the
other nodes' events up to the moment the call returns, so other nodes act
while one waits. A node busy in a call is not woken, paused, crashed or
stopped until the call returns; such events wait for it. Waits nest: if a
node in a nested wait would return after the node it interrupted, its wait is
cut short to end together with the outer one.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn, TypeVar

from mongoelector._sync import manual
from mongoelector.backends.memory import MemoryBackend
from mongoelector.errors import AmbiguousOutcome, BackendError, BackendUnavailable
from mongoelector.testing.fake_clock import FakeClock
from mongoelector.testing.simulation.backend import FaultInjectingBackend
from mongoelector.testing.simulation.checkers import liveness_bound
from mongoelector.testing.simulation.clocks import NodeClock, first_tick_reaching
from mongoelector.testing.simulation.history import (
    MICROS,
    Event,
    History,
    Notice,
    StoreState,
    format_time,
)
from mongoelector.testing.simulation.holdings import HoldingsProcess
from mongoelector.testing.simulation.processes import (
    BeliefTracker,
    ElectorProcess,
    LockProcess,
    Process,
)
from mongoelector.testing.simulation.scenario import (
    ELECTION_KEY,
    LEADER,
    LOCK_KEY,
    Crash,
    Fault,
    NodeKind,
    NodeSpec,
    Partition,
    Pause,
    Resign,
    Scenario,
    Stop,
    StoreErrors,
    Takeover,
)

__all__ = ["SimulationError", "World"]

_T = TypeVar("_T")

#: A node acting more often than this at one true instant is stuck in a loop.
MAX_ACTS_PER_INSTANT = 1000
#: A partition that fails calls at once still lets this much time pass (seconds).
FAST_FAILURE = 0.001


class SimulationError(RuntimeError):
    """The simulation itself went wrong (not the system under test)."""


def micros(seconds: float) -> int:
    """``seconds`` as whole microseconds (rounded to nearest)."""
    return round(seconds * MICROS)


@dataclass(slots=True)
class _Machine:
    """One simulated machine: its clock, its current process, and its faults."""

    spec: NodeSpec
    clock: NodeClock
    process: Process | None = None
    incarnation: int = 0
    wake_generation: int = 0
    paused_until: int = 0
    partition_until: int = 0
    partition_hang: float | None = None
    errors_until: int = 0
    errors_probability: float = 0.0
    errors_late: float = 0.0
    pause_in_call: float | None = None
    acts_at: tuple[int, int] = (-1, 0)  # (instant, acts at that instant)
    timers_generation: int = 0
    timers_paused_until: int = 0  # paused inside a call: its timer with it


@dataclass(frozen=True, slots=True)
class _Wake:
    machine: str
    generation: int


@dataclass(frozen=True, slots=True)
class _Inject:
    fault: Fault
    target: str | None = None  # the resolved machine, once known


@dataclass(frozen=True, slots=True)
class _Restart:
    machine: str


@dataclass(frozen=True, slots=True)
class _LateWrite:
    node: str
    operation: str
    apply: Callable[[], object]


@dataclass(frozen=True, slots=True)
class _Timers:
    """A node's scheduler timers, due while the node waits for one of its calls."""

    machine: str
    generation: int


_Item = _Wake | _Inject | _Restart | _LateWrite | _Timers


class World:
    """Runs one :class:`Scenario` and records its :class:`History`.

    Use :meth:`run` once; the history is complete when it returns.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clock = FakeClock()
        self.store = MemoryBackend(clock=self.clock)
        self.history = History(scenario=scenario)
        self._start = self.clock.now()
        self._now = 0
        self._queue: list[tuple[int, int, _Item]] = []
        self._sequence = 0
        self._rng = random.Random(f"mongoelector-simulation/{scenario.seed}")
        self._frames: list[int] = []
        self._busy: set[str] = set()
        self._owners: dict[str, str] = {}
        self._store_seen: dict[str, tuple[str | None, int, int | None]] = {}
        self._bound = micros(liveness_bound(scenario))
        self._settle = micros(scenario.timing.ttl)
        extra = [key for key in scenario.all_keys() if key not in (ELECTION_KEY, LOCK_KEY)]
        self._keys = (ELECTION_KEY, LOCK_KEY, *extra)
        self._machines: dict[str, _Machine] = {}
        for spec in scenario.nodes:
            clock = NodeClock(
                self.clock,
                rate=spec.rate,
                origin=spec.origin,
                skew=spec.skew,
                sleeper=self._sleep,
            )
            self._machines[spec.name] = _Machine(spec=spec, clock=clock)

    # --- the Host interface the processes use --------------------------------------

    def now(self) -> int:
        return self._now

    def true_time_of(self, clock: NodeClock, reading: float) -> int:
        return first_tick_reaching(clock, reading)

    def notice(self, node: str, message: str) -> None:
        self.history.add(Notice(time=self._now, node=node, message=message))

    def event(self, node: str, kind: str, detail: str = "") -> None:
        self._event(node, kind, detail)
        self._quiet_after(self._now)

    # --- running ----------------------------------------------------------------------

    def run(self) -> History:
        """Run the scenario to its end and return the history."""
        # Faults first: one scheduled at 0 is in effect before anyone acts.
        for fault in self.scenario.faults:
            self._push(micros(fault.at), _Inject(fault))
        try:
            self._run()
        finally:
            for machine in self._machines.values():
                if machine.process is not None:
                    machine.process.halt()
                manual.forget(machine.clock)  # whatever a node still had scheduled
        return self.history

    def _run(self) -> None:
        for name in self._machines:
            self._start_process(name)
        while self._queue and self._queue[0][0] <= self._end():
            time, _, item = heapq.heappop(self._queue)
            self._advance_to(max(time, self._now))
            if not self._handle(item):
                raise SimulationError(f"{item!r} deferred with no call in progress")
        end = self._end()
        self._advance_to(end)
        for machine in self._machines.values():
            if machine.process is not None:
                machine.process.close_beliefs(end)
        self.history.end = end

    def _end(self) -> int:
        planned = micros(self.scenario.duration)
        return max(planned, self.history.quiet_since + self._bound + self._settle)

    def _push(self, time: int, item: _Item) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (time, self._sequence, item))

    def _advance_to(self, time: int) -> None:
        if time > self._now:
            self.clock.advance((time - self._now) / MICROS)
            self._now = time
        if round(self.clock.monotonic() * MICROS) != self._now:
            raise SimulationError("the true clock was moved outside the simulation")

    def _quiet_after(self, time: int) -> None:
        self.history.quiet_since = max(self.history.quiet_since, time)

    def _event(self, node: str, kind: str, detail: str = "", until: int | None = None) -> None:
        self.history.add(Event(time=self._now, node=node, kind=kind, detail=detail, until=until))

    # --- letting time pass inside a call -----------------------------------------

    def _pass(self, seconds: float) -> None:
        """Let ``seconds`` of true time pass for the busy node(s), running everyone else."""
        target = self._now + micros(seconds)
        if self._frames:
            target = min(target, self._frames[-1])
        self._frames.append(target)
        deferred: list[tuple[int, int, _Item]] = []
        try:
            while self._queue and self._queue[0][0] < target:
                entry = heapq.heappop(self._queue)
                self._advance_to(max(entry[0], self._now))
                if not self._handle(entry[2]):
                    deferred.append(entry)
        finally:
            self._frames.pop()
            for entry in deferred:
                heapq.heappush(self._queue, entry)
        self._advance_to(target)

    def _sleep(self, seconds: float) -> None:
        # A node that sleeps (a blocking acquire) is busy meanwhile, like a call.
        self._pass(seconds)

    # --- the CallRouter interface the backends use ---------------------------------

    def call(self, node: str, operation: str, write: bool, apply: Callable[[], _T]) -> _T:
        machine = self._machines[node]
        if machine.process is not None:
            machine.process.before_call()
            machine.timers_generation += 1
            self._push_timers(node)
        now = self._now
        name = self._name(machine)
        if machine.partition_until > now:
            hang = machine.partition_hang
            self._pass(hang if hang is not None else FAST_FAILURE)
            error: BackendError
            if hang is not None and write and self._rng.random() < 0.5:
                error = AmbiguousOutcome(f"{operation} timed out (partitioned, not applied)")
            else:
                error = BackendUnavailable(f"{operation} failed (partitioned)")
            waited = f" after hanging {hang:g}s" if hang is not None else ""
            detail = f"{operation} -> {type(error).__name__}{waited} (partitioned)"
            self.history.add(Event(time=now, node=name, kind="call", detail=detail))
            self._quiet_after(self._now)
            raise error
        there, back = self._latency()
        if write and machine.errors_until > now and self._rng.random() < machine.errors_probability:
            if machine.errors_late and self._rng.random() < machine.errors_late:
                self._fail_late(name, operation, apply, there, back)
            applied = self._rng.random() < 0.5
            self._pass(there)
            self._interleave(machine)
            if applied:
                apply()
                self._record_store(operation)
            self._pass(back)
            state = "applied" if applied else "not applied"
            self.history.add(
                Event(
                    time=now,
                    node=name,
                    kind="call",
                    detail=f"{operation} -> AmbiguousOutcome ({state}, reply lost)",
                )
            )
            self._quiet_after(self._now)
            raise AmbiguousOutcome(f"{operation}: reply lost ({state})")
        self._pass(there)
        self._interleave(machine)
        result = apply()
        if write:
            self._record_store(operation)
        if machine.pause_in_call is not None:
            duration, machine.pause_in_call = machine.pause_in_call, None
            until = self._now + micros(duration)
            machine.timers_paused_until = until  # its scheduler timer too
            self._event(name, "paused", f"inside {operation}, after it applied", until=until)
            self._pass(duration)
            self._quiet_after(self._now)
        self._pass(back)
        return result

    def _fail_late(
        self, node: str, operation: str, apply: Callable[[], object], there: float, back: float
    ) -> NoReturn:
        """Fail the call ambiguously; its write reaches the store up to a lease later."""
        now = self._now
        delay = micros(self._rng.uniform(0, self.scenario.timing.ttl))
        self._pass(there)
        self._push(now + delay, _LateWrite(node, operation, apply))
        self._pass(back)
        detail = f"{operation} -> AmbiguousOutcome (applied {format_time(delay)}s later)"
        self.history.add(Event(time=now, node=node, kind="call", detail=detail))
        self._quiet_after(max(self._now, now + delay))
        raise AmbiguousOutcome(f"{operation}: reply lost (the write is still on its way)")

    def _interleave(self, machine: _Machine) -> None:
        """Let another caller of ``machine``'s process act while this call is on its way."""
        lock = machine.spec.lock
        if machine.process is not None and lock is not None and lock.threads > 1:
            machine.process.interleave(self._rng)

    def _latency(self) -> tuple[float, float]:
        latency = self.scenario.latency
        if latency == 0:
            return 0.0, 0.0
        there = self._rng.uniform(0, latency / 2)
        return there, self._rng.uniform(0, latency / 2)

    def _record_store(self, operation: str = "") -> None:
        forced = operation.startswith("forced")
        for key in self._keys:
            record = self.store.get(key)
            if record is None:
                continue
            owner = None if record.owner is None else self._owners.get(record.owner, "?")
            expires = None
            if record.expires_at is not None:
                expires = (record.expires_at - self._start) // timedelta(microseconds=1)
            state = (owner, record.token, expires)
            if self._store_seen.get(key) != state:
                self._store_seen[key] = state
                self.history.add(
                    StoreState(
                        time=self._now,
                        key=key,
                        owner=owner,
                        token=record.token,
                        expires=expires,
                        forced=forced,
                    )
                )

    # --- the queue's items ----------------------------------------------------------

    def _handle(self, item: _Item) -> bool:
        """Carry out ``item`` now; ``False`` if it must wait for a busy node."""
        if isinstance(item, _Wake):
            machine = self._machines[item.machine]
            if machine.process is None or item.generation != machine.wake_generation:
                return True
            if item.machine in self._busy:
                return False
            if machine.paused_until > self._now:
                self._schedule(item.machine)
                return True
            self._act(item.machine, machine.process.act)
            return True
        if isinstance(item, _Timers):
            self._fire_timers(item)
            return True
        if isinstance(item, _Restart):
            if self._machines[item.machine].process is None:
                self._start_process(item.machine)
            return True
        if isinstance(item, _LateWrite):
            item.apply()
            self._record_store(item.operation)
            self._event(item.node, "late write", f"{item.operation} applied")
            return True
        return self._inject(item)

    def _push_timers(self, name: str, *, after: int = -1) -> None:
        """Fire ``name``'s scheduler timers when due (later than ``after``), while it waits
        for a call."""
        machine = self._machines[name]
        if machine.process is None:
            return
        local = machine.process.timers_due_at()
        if local == math.inf:
            return
        time = max(first_tick_reaching(machine.clock, local), self._now)
        self._push(max(time, after + 1), _Timers(name, machine.timers_generation))

    def _fire_timers(self, item: _Timers) -> None:
        machine = self._machines[item.machine]
        process = machine.process
        if process is None or item.generation != machine.timers_generation:
            return
        if item.machine not in self._busy:
            return  # not waiting for a call: its wake runs everything due
        paused_until = max(machine.paused_until, machine.timers_paused_until)
        if paused_until > self._now:  # a paused process's timer is paused too
            self._push(paused_until, item)
            return
        process.fire_timers()
        self._push_timers(item.machine, after=self._now)

    def _act(self, name: str, action: Callable[[], None]) -> None:
        machine = self._machines[name]
        instant, count = machine.acts_at
        count = count + 1 if instant == self._now else 1
        if count > MAX_ACTS_PER_INSTANT:
            raise SimulationError(f"{name} acted {count} times at one instant")
        machine.acts_at = (self._now, count)
        self._busy.add(name)
        try:
            action()
        finally:
            self._busy.discard(name)
        process = machine.process
        if process is not None and process.finished:
            self._retire(name, process)
        self._schedule(name)

    def _retire(self, name: str, process: Process) -> None:
        """``process`` ended itself (a callback stopped it): a fresh one starts a retry later."""
        machine = self._machines[name]
        process.close_beliefs(self._now)
        machine.process = None
        machine.wake_generation += 1
        restart = self._now + micros(self.scenario.timing.retry_period)
        self._push(restart, _Restart(name))
        self._quiet_after(restart)

    def _schedule(self, name: str) -> None:
        machine = self._machines[name]
        machine.wake_generation += 1
        if machine.process is None:
            return
        local = machine.process.wake_at()
        if local == math.inf:
            return
        time = self._now if local == -math.inf else first_tick_reaching(machine.clock, local)
        time = max(time, self._now, machine.paused_until)
        self._push(time, _Wake(name, machine.wake_generation))

    def _start_process(self, name: str) -> None:
        machine = self._machines[name]
        machine.incarnation += 1
        incarnation = name if machine.incarnation == 1 else f"{name}#{machine.incarnation}"
        spec = machine.spec
        key = ELECTION_KEY if spec.kind is NodeKind.ELECTOR else LOCK_KEY
        tracker = BeliefTracker(key=key, holder=incarnation, sink=self.history.add)
        backend = FaultInjectingBackend(self.store, node=name, router=self)
        # A node's callback acts in its first process only (a restarted one is plain).
        callback = spec.callback if machine.incarnation == 1 else None
        make: Callable[..., Process] = functools.partial(ElectorProcess, callback=callback)
        if spec.lock is not None:
            kind = HoldingsProcess if spec.lock.auto_renew else LockProcess
            make = functools.partial(kind, behaviour=spec.lock, sink=self.history.add)
        process = make(
            name=incarnation,
            clock=machine.clock,
            host=self,
            tracker=tracker,
            backend=backend,
            timing=self.scenario.timing,
        )
        for owner in process.owners:
            self._owners[owner] = incarnation
        machine.process = process
        if machine.incarnation > 1:
            self._event(incarnation, "started")
        self._schedule(name)

    def _name(self, machine: _Machine) -> str:
        return machine.process.name if machine.process is not None else machine.spec.name

    # --- faults -----------------------------------------------------------------------

    def _resolve(self, node: str) -> str | None:
        if node != LEADER:
            return node
        electors = [
            name
            for name, machine in self._machines.items()
            if isinstance(machine.process, ElectorProcess)
        ]
        # Nodes whose started electors lead (only in schedules that have them) are as
        # good a target as a hand-polled leader.
        started = [
            name
            for name, machine in self._machines.items()
            if isinstance(machine.process, HoldingsProcess) and machine.process.leads()
        ]
        for name in electors:
            process = self._machines[name].process
            assert isinstance(process, ElectorProcess)
            if process.elector.is_leader:
                return self._rng.choice([name, *started]) if started else name
        if started:
            return self._rng.choice(started)
        return self._rng.choice(electors) if electors else None

    def _inject(self, item: _Inject) -> bool:
        fault = item.fault
        target = item.target if item.target is not None else self._resolve(fault.node)
        if target is None:
            self._event(fault.node, "fault skipped", f"(no such node now) {fault!r}")
            return True
        machine = self._machines[target]
        acts = isinstance(fault, (Crash, Stop, Resign, Takeover)) or (
            isinstance(fault, Pause) and not fault.in_call
        )
        if acts and target in self._busy:
            if item.target is None:
                # Remember whom "the leader" meant, then wait for the call to end.
                self._push(self._now, _Inject(fault, target))
                return True
            return False
        name = self._name(machine)
        now = self._now
        if isinstance(fault, Pause):
            end = now + micros(fault.duration)
            if fault.in_call:
                machine.pause_in_call = fault.duration
                self._event(name, "will pause", f"{fault.duration:g}s in its next call")
            else:
                machine.paused_until = max(machine.paused_until, end)
                self._event(name, "paused", until=end)
            self._quiet_after(end)
        elif isinstance(fault, Partition):
            end = now + micros(fault.duration)
            machine.partition_until = max(machine.partition_until, end)
            machine.partition_hang = fault.hang
            hang = "fail at once" if fault.hang is None else f"hang {fault.hang:g}s"
            self._event(name, "partitioned", f"(calls {hang})", until=end)
            self._quiet_after(end)
        elif isinstance(fault, StoreErrors):
            end = now + micros(fault.duration)
            machine.errors_until = max(machine.errors_until, end)
            machine.errors_probability = fault.probability
            machine.errors_late = fault.late
            self._event(name, "store errors", f"(p={fault.probability!r} per write)", until=end)
            self._quiet_after(end)
        elif isinstance(fault, Resign):
            self._quiet_after(now)
            if machine.process is not None:
                self._event(name, "resigns")
                self._act(target, machine.process.resign)
        elif isinstance(fault, Takeover):
            self._quiet_after(now)
            if machine.process is not None:
                self._event(name, "takes over", "(acquire(force=True))")
                self._act(target, machine.process.take_over)
        else:
            self._end_process(target, fault)
        return True

    def _end_process(self, name: str, fault: Crash | Stop) -> None:
        machine = self._machines[name]
        process = machine.process
        if process is None:
            self._event(name, "fault skipped", f"(not running) {fault!r}")
            return
        restart = None
        if fault.restart_after is not None:
            restart = self._now + micros(fault.restart_after)
        if isinstance(fault, Crash):
            self._event(process.name, "crashed", until=restart)
            process.crash()
        else:
            self._event(process.name, "stops", until=restart)
            self._busy.add(name)
            try:
                process.stop()
            finally:
                self._busy.discard(name)
            process.close_beliefs(self._now)
        machine.process = None
        machine.wake_generation += 1
        self._quiet_after(self._now)
        if restart is not None:
            self._push(restart, _Restart(name))
            self._quiet_after(restart)
