"""Testing your own on_leader code deterministically: no threads, no sleeps, no database.

Run with pytest; the fixtures ``fake_clock``, ``memory_backend`` and
``elector_group`` come from mongoelector's pytest plugin, which pytest loads
automatically once mongoelector is installed.
"""

from __future__ import annotations

from mongoelector import LeaderElector
from mongoelector.backends import MemoryBackend, StorageBackend
from mongoelector.clock import Clock
from mongoelector.testing import ElectorGroup, FakeClock


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
