"""``with elector.leadership() as term``: a block told (``term.lost``) when leadership ends."""

from __future__ import annotations

import threading

import pytest

from mongoelector import AcquireTimeout, LeaderElector, Lock, LockLost, NotLeader
from mongoelector.backends import MemoryBackend
from mongoelector.core.events import LossReason
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend, wait_for


def test_the_block_runs_at_once_while_leading_and_leaving_it_keeps_leadership(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    node.poll()
    with node.leadership() as term:
        assert term.token == node.token == 1
        assert not term.lost.is_set() and term.reason is None
    assert node.is_leader


def test_a_node_that_is_not_leader_and_not_running_is_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    with pytest.raises(NotLeader, match="not running"), node.leadership():
        pytest.fail("the block must not run")


def test_lost_is_set_at_the_renew_deadline_without_any_poll_and_leaving_raises(
    clock: FakeClock,
) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    node = LeaderElector("svc", flaky, clock=clock, report_status=False)
    node.poll()
    with pytest.raises(LockLost, match="renew deadline"), node.leadership() as term:
        clock.advance(9.999)
        assert not term.lost.is_set()
        calls = flaky.total_calls
        clock.advance(0.001)
        assert term.lost.is_set() and term.reason is LossReason.DEADLINE
        assert flaky.total_calls == calls


def test_release_inside_the_block_sets_lost_with_its_reason(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    node.poll()
    with pytest.raises(LockLost, match="released"), node.leadership() as term:
        node.release()
        assert term.lost.is_set() and term.reason is LossReason.RELEASED
        assert term.lost.wait(timeout=0) is True


def test_a_takeover_seen_by_the_next_poll_sets_lost(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    node.poll()
    with pytest.raises(LockLost), node.leadership() as term:
        Lock("svc", backend, ttl=60, clock=clock).acquire(blocking=False, force=True)
        assert not term.lost.is_set()  # nothing told this node yet
        clock.advance(node.retry_period)
        node.poll()
        assert term.reason is LossReason.TAKEN_OVER


def test_an_error_in_the_block_propagates(backend: MemoryBackend, clock: FakeClock) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    node.poll()
    with pytest.raises(ValueError, match="job failed"), node.leadership():
        node.release()
        raise ValueError("job failed")


def test_a_timeout_of_zero_does_not_wait(backend: MemoryBackend, clock: FakeClock) -> None:
    leader, follower = (LeaderElector("svc", backend, clock=clock) for _ in range(2))
    leader.poll()
    follower.start()
    try:
        with pytest.raises(AcquireTimeout, match="timeout=0"), follower.leadership(timeout=0):
            pytest.fail("the block must not run")
    finally:
        follower.stop()


def test_a_running_follower_waits_until_it_leads(backend: MemoryBackend, clock: FakeClock) -> None:
    leader = LeaderElector("svc", backend, clock=clock)
    follower = LeaderElector("svc", backend, clock=clock)
    leader.poll()
    follower.start()
    entered: list[int] = []

    def work() -> None:
        with follower.leadership(timeout=1000) as term:  # waits on the clock, as the loop does
            entered.append(term.token)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert wait_for(lambda: clock.waiters == 2)  # the loop and the waiting block
        assert entered == []
        leader.release()
        clock.advance(follower.retry_period)
        worker.join(timeout=10)
        assert entered == [2]
    finally:
        follower.stop()
        worker.join(timeout=10)


def test_stopping_while_a_block_waits_to_lead_raises_not_leader(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    leader, follower = (LeaderElector("svc", backend, clock=clock) for _ in range(2))
    leader.poll()
    follower.start()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with follower.leadership(timeout=1000):
                pass
        except NotLeader as error:
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    assert wait_for(lambda: clock.waiters == 2)
    follower.stop()
    worker.join(timeout=10)
    assert len(errors) == 1


def test_lost_wait_wakes_when_the_clock_reaches_the_deadline(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    node = LeaderElector("svc", flaky, clock=clock, report_status=False)
    node.poll()
    flaky.mode = "down"
    woke: list[tuple[bool, float]] = []
    with pytest.raises(LockLost), node.leadership() as term:
        waiter = threading.Thread(target=lambda: woke.append((term.lost.wait(), clock.monotonic())))
        waiter.start()
        assert wait_for(lambda: clock.waiters == 1)
        assert clock.next_deadline == 10
        clock.advance(10)
        waiter.join(timeout=10)
    assert woke == [(True, 10.0)]


def test_lost_wait_with_a_timeout_returns_false_while_leading(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    node.poll()
    with node.leadership() as term:
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(term.lost.wait(timeout=3)))
        waiter.start()
        assert wait_for(lambda: clock.waiters == 1)
        clock.advance(3)
        waiter.join(timeout=10)
        assert result == [False]
        node.poll()  # keep the term alive past the original deadline


def test_bad_timeouts_are_refused_naming_the_value(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    node = LeaderElector("svc", backend, clock=clock)
    with pytest.raises(ValueError, match="-1"):
        node.leadership(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        node.leadership(timeout="soon")  # type: ignore[arg-type]
