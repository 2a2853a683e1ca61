"""Testing your own on_leader code deterministically: no threads, no sleeps, no database.

Run with pytest; the fixtures ``fake_clock``, ``memory_backend`` and
``elector_group`` come from mongoelector's pytest plugin, which pytest loads
automatically once mongoelector is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mongoelector import AcquireTimeout, BackendUnavailable, LeaderElector, Lock
from mongoelector.backends import MemoryBackend, StorageBackend
from mongoelector.clock import Clock
from mongoelector.testing import ElectorGroup, FakeClock
from mongoelector.testing.simulation import FaultInjectingBackend


class ReportScheduler:
    """The code under test: schedules the nightly report, but only on the leader."""

    def __init__(self, backend: StorageBackend, *, clock: Clock | None = None) -> None:
        self.scheduling = False
        self.tokens: list[int | None] = []
        self.elector = LeaderElector(
            "report-scheduler",
            backend,
            ttl=15,
            clock=clock,
            on_leader=self.start_scheduling,
            on_leader_loss=self.stop_scheduling,
        )

    def start_scheduling(self) -> None:
        self.scheduling = True
        # Pass the fencing token to whatever the job writes to.
        self.tokens.append(self.elector.token)

    def stop_scheduling(self) -> None:
        self.scheduling = False


def three_instances(
    memory_backend: MemoryBackend, fake_clock: FakeClock, group: ElectorGroup
) -> list[ReportScheduler]:
    instances = [ReportScheduler(memory_backend, clock=fake_clock) for _ in range(3)]
    for instance in instances:
        group.add(instance.elector)
    return instances


def test_exactly_one_instance_schedules_the_report(
    memory_backend: MemoryBackend, fake_clock: FakeClock, elector_group: ElectorGroup
) -> None:
    instances = three_instances(memory_backend, fake_clock, elector_group)

    elector_group.run_for(60)  # one virtual minute, polled exactly as a service would

    assert [i.scheduling for i in instances] == [True, False, False]
    assert instances[0].tokens == [1]


def test_a_frozen_leader_is_replaced_and_stops_when_it_wakes_up(
    memory_backend: MemoryBackend, fake_clock: FakeClock, elector_group: ElectorGroup
) -> None:
    first, second, third = three_instances(memory_backend, fake_clock, elector_group)
    elector_group.step()
    assert first.scheduling

    # The leader's process freezes (a long GC or VM pause): nobody polls it.
    elector_group.remove(first.elector)
    took_over = elector_group.run_until(lambda: second.scheduling or third.scheduling, timeout=17)

    assert took_over  # within ttl + retry_period
    assert not first.elector.is_leader  # its renew deadline passed while frozen
    assert first.scheduling  # ...but its callback could not run yet

    elector_group.add(first.elector)  # the process wakes up
    elector_group.step()

    assert not first.scheduling  # the first poll after waking fires on_leader_loss
    new_leader = second if second.scheduling else third
    assert new_leader.tokens == [2]  # a greater token fences off the old leader's writes


def test_a_graceful_shutdown_hands_over_within_a_retry_period(
    memory_backend: MemoryBackend, fake_clock: FakeClock, elector_group: ElectorGroup
) -> None:
    first, second, _ = three_instances(memory_backend, fake_clock, elector_group)
    elector_group.step()

    first.elector.stop()  # releases the lease and fires on_leader_loss
    elector_group.remove(first.elector)
    elector_group.run_for(2)  # one retry period

    assert not first.scheduling
    assert second.scheduling


class Switch:
    """Routes a node's calls to the store, or fails them while ``down``."""

    def __init__(self) -> None:
        self.down = False

    def call(self, node: str, operation: str, write: bool, apply: Callable[[], Any]) -> Any:
        if self.down:
            raise BackendUnavailable(f"{operation}: store unreachable")
        return apply()


def test_a_leader_cut_off_from_the_store_stops_at_its_renew_deadline(
    memory_backend: MemoryBackend, fake_clock: FakeClock, elector_group: ElectorGroup
) -> None:
    link = Switch()
    cut_off = ReportScheduler(
        FaultInjectingBackend(memory_backend, node="a", router=link), clock=fake_clock
    )
    other = ReportScheduler(memory_backend, clock=fake_clock)
    elector_group.add(cut_off.elector)
    elector_group.add(other.elector)
    elector_group.step()
    assert cut_off.scheduling

    link.down = True
    elector_group.run_for(10)  # the renew deadline (ttl * 2/3)

    assert not cut_off.scheduling  # on_leader_loss fired, though the store was unreachable
    assert not other.scheduling  # the lease itself lasts until 15 s
    elector_group.run_for(7)
    assert other.scheduling


def test_a_second_worker_times_out_while_the_first_holds_the_lock(
    memory_backend: MemoryBackend, fake_clock: FakeClock
) -> None:
    first = Lock("migration", memory_backend, ttl=60, clock=fake_clock)
    second = Lock("migration", memory_backend, ttl=60, clock=fake_clock)
    first.acquire()

    with pytest.raises(AcquireTimeout):
        second.acquire(timeout=5)  # returns at once: its waits advance the fake clock

    assert fake_clock.monotonic() == 5.0
