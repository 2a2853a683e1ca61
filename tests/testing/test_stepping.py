"""ElectorGroup: several electors on one fake clock, polled in order when due."""

from __future__ import annotations

import math

import pytest

from mongoelector import LeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.testing import ElectorGroup, FakeClock


def electors(clock: FakeClock, backend: MemoryBackend, count: int = 3) -> list[LeaderElector]:
    return [
        LeaderElector("job", backend, ttl=15, clock=clock, report_status=False)
        for _ in range(count)
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def group(clock: FakeClock) -> ElectorGroup:
    return ElectorGroup(clock, electors(clock, MemoryBackend(clock=clock)))


def test_the_first_step_polls_everyone_and_the_first_added_leads(group: ElectorGroup) -> None:
    polled = group.step()

    assert polled == list(group.electors)
    assert group.leader is group.electors[0]
    assert group.clock.monotonic() == 0.0


def test_each_step_moves_the_clock_to_the_next_due_poll(group: ElectorGroup) -> None:
    group.step()

    group.step()

    assert group.clock.monotonic() == 2.0  # the retry period for ttl=15
    assert group.next_poll_at() == 4.0


def test_run_for_polls_as_due_and_ends_exactly_then(group: ElectorGroup) -> None:
    polls = group.run_for(31.0)

    assert group.clock.monotonic() == 31.0
    assert polls == 3 * 16  # at 0, 2, ..., 30
    assert group.leader is group.electors[0]


def test_a_removed_leader_is_replaced_within_ttl_and_a_retry_period(group: ElectorGroup) -> None:
    group.step()
    first = group.electors[0]
    group.remove(first)

    replaced = group.run_until(lambda: group.leader is not None, timeout=17.0)

    assert replaced
    assert group.leader is not first
    assert not first.is_leader  # its renew deadline passed while nobody polled it


def test_run_until_gives_up_at_the_timeout(group: ElectorGroup) -> None:
    assert group.run_until(lambda: False, timeout=5.0) is False
    assert group.clock.monotonic() == 5.0


def test_with_nobody_to_poll_a_step_does_nothing(clock: FakeClock) -> None:
    group = ElectorGroup(clock)

    assert group.step() == []
    assert group.next_poll_at() == math.inf
    assert group.run_for(3) == 0 and clock.monotonic() == 3.0


def test_leader_refuses_to_pick_one_of_several(clock: FakeClock) -> None:
    split = [
        LeaderElector("job", MemoryBackend(clock=clock), clock=clock, report_status=False)
        for _ in range(2)
    ]
    group = ElectorGroup(clock, split)
    group.step()

    assert group.leaders() == split
    with pytest.raises(AssertionError, match="2 electors believe they lead"):
        _ = group.leader


def test_bad_members_are_refused(clock: FakeClock, group: ElectorGroup) -> None:
    other_clock = FakeClock()
    with pytest.raises(ValueError, match="does not use this group's clock"):
        group.add(LeaderElector("job", MemoryBackend(), clock=other_clock))
    with pytest.raises(ValueError, match="already in this group"):
        group.add(group.electors[0])
    with pytest.raises(TypeError, match="expected a LeaderElector"):
        group.add("elector")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in this group"):
        group.remove(LeaderElector("job", MemoryBackend(), clock=clock))
    with pytest.raises(TypeError, match="clock must be a FakeClock"):
        ElectorGroup(object())  # type: ignore[arg-type]


def test_an_elector_that_always_wants_polling_now_is_reported(clock: FakeClock) -> None:
    class Restless(LeaderElector):
        @property
        def next_poll_at(self) -> float:
            return -math.inf

    group = ElectorGroup(clock, [Restless("job", MemoryBackend(clock=clock), clock=clock)])

    with pytest.raises(RuntimeError, match="keeps asking to be polled at once"):
        group.run_for(1.0)
