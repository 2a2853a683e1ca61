"""The elector's background loop: start, stop, and waits that go through the clock."""

from __future__ import annotations

import threading

from mongoelector import LeaderElector
from mongoelector._sync import elector as elector_module
from mongoelector._sync import scheduler
from mongoelector.backends import MemoryBackend
from mongoelector.clock import SystemClock
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend, wait_for

GUARD = 10.0  # real seconds; a hang guard, not a timing assertion


def loop_ended(node: LeaderElector, clock: FakeClock) -> bool:
    """True once ``node``'s loop has ended: nothing of it is scheduled, no poll of it runs."""
    return scheduler.scheduled(clock) == 0 and node not in elector_module.running()


def test_start_twice_runs_one_loop(backend: MemoryBackend, clock: FakeClock) -> None:
    node = LeaderElector("once", backend, clock=clock)
    node.start()
    node.start()
    try:
        assert wait_for(lambda: node.is_leader)
        assert node.wait_idle(GUARD)
        assert scheduler.scheduled(clock) == 1  # one loop, waiting for its next poll
        assert node.running and elector_module.running() == [node]
    finally:
        node.stop()
    assert not node.running
    assert loop_ended(node, clock)


def test_started_elector_under_fake_clock_acts_only_when_time_is_advanced(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    lost = threading.Event()
    node = LeaderElector("fake", flaky, clock=clock, report_status=False, on_leader_loss=lost.set)
    node.start()
    try:
        assert wait_for(lambda: node.is_leader)
        assert node.wait_idle(GUARD)
        assert flaky.calls["renew"] == 0  # waits until the clock reaches its next poll
        clock.advance(2)
        assert node.wait_idle(GUARD)
        assert flaky.calls["renew"] == 1
        flaky.mode = "down"
        for _ in range(4):
            clock.advance(2)
            assert node.wait_idle(GUARD)
        assert flaky.calls["renew"] == 5
        assert node.is_leader
        clock.advance(2)  # t = 10: the renew deadline
        assert not node.is_leader
        assert lost.wait(timeout=10)
    finally:
        flaky.mode = "ok"
        node.stop()


def test_stop_returns_without_waiting_for_the_poll_interval() -> None:
    backend = MemoryBackend()
    node = LeaderElector("slow-poll", backend, ttl=3600, clock=SystemClock())
    node.start()
    assert wait_for(lambda: node.is_leader)
    stopper = threading.Thread(target=node.stop)
    stopper.start()
    stopper.join(timeout=10)  # the poll interval is 480 s; a hang guard, not a timing claim
    assert not stopper.is_alive()
    record = backend.get("slow-poll")
    assert record is not None and record.owner is None


def test_stop_waits_only_for_the_in_flight_call(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    entered, proceed = threading.Event(), threading.Event()

    def block_renew(name: str) -> None:
        if name == "renew":
            entered.set()
            proceed.wait()

    node = LeaderElector("inflight", flaky, clock=clock, report_status=False)
    node.start()
    assert wait_for(lambda: node.is_leader)
    assert node.wait_idle(GUARD)
    flaky.before_call = block_renew
    clock.advance(2)
    assert entered.wait(timeout=10)
    stopper = threading.Thread(target=node.stop)
    stopper.start()
    stopper.join(timeout=0.2)
    assert stopper.is_alive()  # still inside the renew call
    flaky.before_call = None
    proceed.set()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    assert flaky.calls["release"] == 1


def test_stop_from_a_callback_ends_the_loop(backend: MemoryBackend, clock: FakeClock) -> None:
    holder: list[LeaderElector] = []
    node = LeaderElector("selfstop", backend, clock=clock, on_leader=lambda: holder[0].stop())  # noqa: PLW0108
    holder.append(node)
    node.start()
    assert wait_for(lambda: not node.running)
    assert wait_for(lambda: loop_ended(node, clock))
    assert not node.is_leader


def test_blocking_start_runs_in_the_callers_thread_until_stopped(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    threads: list[threading.Thread] = []
    holder: list[LeaderElector] = []

    def on_leader() -> None:
        threads.append(threading.current_thread())
        holder[0].stop()

    node = LeaderElector("blocking", backend, clock=clock, on_leader=on_leader)
    holder.append(node)
    node.start(blocking=True)
    assert threads == [threading.current_thread()]
    assert not node.running


def test_restart_after_stop(backend: MemoryBackend, clock: FakeClock) -> None:
    node = LeaderElector("again", backend, clock=clock)
    with node:
        assert wait_for(lambda: node.is_leader)
    assert not node.is_leader
    with node:
        assert wait_for(lambda: node.is_leader)
        assert node.token == 2
