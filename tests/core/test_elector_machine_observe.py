"""A follower that reads first (``begin_poll(read_first=True)``): what the machine decides.

A driver that reads the records of many followers in one call (``get_many``)
asks the machine to read first; the machine then says whether to try to
acquire (``compare_and_set``) in the same poll, or to take note of the live
leader it read exactly as a refused try would have told it. No backend, no
clock, no threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from mongoelector.backends import CasResult, LeaseRecord
from mongoelector.core.elector_machine import ElectorMachine, Role
from mongoelector.core.events import LeaderChanged, Observe, Release, Renew, TryAcquire
from tests.core.test_elector_machine import T0, TIMING, counter, rec, won

#: The store's time of a read: the records of :func:`rec` expire 15 s after T0.
LIVE = T0 + timedelta(seconds=5)
EXPIRED = T0 + timedelta(seconds=15)


def follower(owner: str = "me") -> ElectorMachine:
    return ElectorMachine(owner=owner, timing=TIMING, new_acquisition=counter())


class TestReadOrTry:
    def test_a_follower_reads_first_only_when_asked(self) -> None:
        assert follower().begin_poll(0.0, read_first=True).action == Observe()
        assert follower().begin_poll(0.0).action == TryAcquire(acquisition="a1")

    def test_a_leader_renews_whatever_the_driver_asks(self) -> None:
        machine = follower()
        machine.begin_poll(0.0)
        machine.on_acquire_result(0.0, 0.0, won(1))
        assert machine.begin_poll(2.0, read_first=True).action == Renew(token=1)

    @pytest.mark.parametrize(
        "record",
        [
            None,
            rec("other", 3),  # read at EXPIRED: expired by the store's time
            replace(rec("other", 3), owner=None),  # released
            rec("me", 3, acquisition="old"),  # an earlier holding of ours, to release
        ],
        ids=["absent", "expired", "released", "ours"],
    )
    def test_it_tries_at_once_when_the_lease_is_free_or_its_own(
        self, record: LeaseRecord | None
    ) -> None:
        machine = follower()
        machine.begin_poll(0.0, read_first=True)
        step = machine.on_observe_result(0.1, record, EXPIRED if record else LIVE)
        assert step.action == TryAcquire(acquisition="a1")
        assert step.notifications == ()

    def test_the_try_after_a_read_wins_as_any_try(self) -> None:
        machine = follower()
        machine.begin_poll(0.0, read_first=True)
        step = machine.on_observe_result(0.1, None, LIVE)
        assert step.action == TryAcquire(acquisition="a1")
        machine.on_acquire_result(0.1, 0.2, won(4))
        assert machine.role is Role.LEADER and machine.token(0.2) == 4

    def test_a_live_leader_read_is_taken_as_a_refused_try_reports_it(self) -> None:
        """Same leader info, events, next poll and ``leader_exists`` as a refused CAS."""
        held = rec("other", 3)
        reading = follower()
        reading.begin_poll(0.0, read_first=True)
        read = reading.on_observe_result(0.1, held, LIVE)
        trying = follower()
        trying.begin_poll(0.0)
        tried = trying.on_acquire_result(0.1, 0.1, CasResult(acquired=False, record=held))
        assert read.action is None
        assert read.notifications == tried.notifications
        assert [type(note) for note in read.notifications] == [LeaderChanged]
        assert reading.leader == trying.leader and reading.leader is not None
        assert reading.leader.uuid == "other" and reading.leader.token == 3
        assert reading.wake_at() == trying.wake_at() == 0.1 + TIMING.follower_period
        assert reading.leader_exists(0.2) and trying.leader_exists(0.2)
        assert reading.role is trying.role is Role.FOLLOWER

    def test_the_same_leader_read_again_reports_no_new_leader(self) -> None:
        machine = follower()
        machine.begin_poll(0.0, read_first=True)
        machine.on_observe_result(0.1, rec("other", 3), LIVE)
        machine.begin_poll(2.1, read_first=True)
        assert machine.on_observe_result(2.2, rec("other", 3), LIVE).notifications == ()

    def test_a_failed_read_is_never_ambiguous(self) -> None:
        """A read changed nothing: even an 'ambiguous' error leaves the follower a follower
        (no confirming of a write it never sent), to poll again after ``retry_period``."""
        machine = follower()
        machine.begin_poll(0.0, read_first=True)
        machine.on_failure(Observe(), 0.1, ambiguous=True)
        assert machine.role is Role.FOLLOWER
        assert machine.wake_at() == 0.1 + TIMING.retry_period
        assert machine.begin_poll(2.1, read_first=True).action == Observe()

    def test_a_read_that_comes_back_after_a_stop_tries_nothing(self) -> None:
        machine = follower()
        machine.begin_poll(0.0, read_first=True)
        machine.stop(0.05)
        assert machine.on_observe_result(0.1, None, LIVE).action is None


def check_an_expired_lease_is_tried(make: Callable[[], ElectorMachine]) -> None:
    """The check the mutation below must make fail: an expired record is tried at once."""
    machine = make()
    machine.begin_poll(0.0, read_first=True)
    step = machine.on_observe_result(0.1, rec("other", 3), EXPIRED)
    assert isinstance(step.action, TryAcquire), "an expired lease was not tried"


def test_a_follower_mutated_to_skip_the_try_of_an_expired_lease_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_an_expired_lease_is_tried(follower)
    monkeypatch.setattr(LeaseRecord, "is_held", lambda self, at: self.owner is not None)
    with pytest.raises(AssertionError, match="not tried"):
        check_an_expired_lease_is_tried(follower)


class TestReadTiming:
    def test_a_follower_allowed_to_try_is_due_at_its_next_poll(self) -> None:
        machine = follower()
        machine.begin_poll(0.0, read_first=True)
        machine.on_observe_result(0.1, rec("other", 3), LIVE)
        timing = machine.read_timing(1.0, key="k")
        assert timing is not None
        assert (timing.key, timing.renew_at, timing.interval) == (
            "k",
            0.1 + TIMING.follower_period,
            TIMING.follower_period,
        )
        assert machine.renew_timing(1.0, key="k") is None

    def test_a_leader_has_no_read_timing_but_a_renew_timing(self) -> None:
        machine = follower()
        machine.begin_poll(0.0)
        machine.on_acquire_result(0.0, 0.0, won(1))
        assert machine.read_timing(1.0, key="k") is None
        timing = machine.renew_timing(1.0, key="k")
        assert timing is not None and timing.renew_at == TIMING.retry_period
        assert timing.valid_until == TIMING.renew_deadline

    def test_a_follower_with_its_own_stale_holding_to_release_does_not_read(self) -> None:
        machine = follower()
        machine.begin_poll(0.0)
        machine.on_acquire_result(0.0, 0.1, CasResult(acquired=False, record=rec("me", 2)))
        assert machine.read_timing(0.2, key="k") is None
        assert machine.begin_poll(0.2, read_first=True).action == Release(token=2)
