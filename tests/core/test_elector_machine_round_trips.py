"""The elector machine teaches its keeper every reply's round trip (pure: bare inputs only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.backends import CasResult, LeaseRecord
from mongoelector.core.elector_machine import ElectorMachine, Role
from mongoelector.core.events import LeadershipGained, Renew, SlowRoundTrips, TryAcquire
from mongoelector.timing import LeaseTiming

# Renew every 8 s, trust each write for 10 s: a round trip over 4/3 s leaves no margin.
TIMING = LeaseTiming(ttl=15, renew_deadline=10, retry_period=8)
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
SLOW = SlowRoundTrips(round_trip=3.0, renew_deadline=10, retry_period=8)


def rec(owner: str, token: int = 1) -> LeaseRecord:
    return LeaseRecord(
        key="k", owner=owner, token=token, acquired_at=T0, expires_at=T0 + timedelta(seconds=15)
    )


def test_refused_acquires_teach_a_follower_the_round_trip_it_leads_with() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=lambda: "a1")
    assert machine.begin_poll(0.0).action == TryAcquire(acquisition="a1")
    step = machine.on_acquire_result(0.0, 3.0, CasResult(acquired=False, record=rec("other")))
    assert step.notifications[0] == SLOW
    assert machine.role is Role.FOLLOWER

    machine.begin_poll(machine.wake_at())
    start = machine.wake_at()
    step = machine.on_acquire_result(start, start + 0.1, CasResult(acquired=True, record=rec("me")))

    assert LeadershipGained(token=1) in step.notifications
    assert SLOW not in step.notifications  # once, not at every reply
    # Renew 1.5 * 3 s before the deadline, not retry_period (8 s) after the acquire.
    assert machine.wake_at() == pytest.approx(start + 10 - 4.5)


def test_a_leaders_slow_renewal_moves_its_next_renewal_ahead() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=lambda: "a1")
    machine.begin_poll(0.0)
    machine.on_acquire_result(0.0, 0.1, CasResult(acquired=True, record=rec("me")))
    assert machine.wake_at() == 8.0
    assert machine.begin_poll(8.0).action == Renew(token=1)

    step = machine.on_renew_result(8.0, 9.9, rec("me"))  # 1.9 s: 1.5 * 1.9 > 10 - 8

    assert step.notifications == (
        SlowRoundTrips(round_trip=pytest.approx(1.9), renew_deadline=10, retry_period=8),
    )
    assert machine.is_leader(9.9)
    assert machine.wake_at() == pytest.approx(8.0 + 10 - 1.5 * 1.9)


def test_a_failed_call_teaches_nothing() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=lambda: "a1")
    machine.begin_poll(0.0)
    machine.on_acquire_result(0.0, 0.1, CasResult(acquired=True, record=rec("me")))
    action = machine.begin_poll(8.0).action
    assert action == Renew(token=1)

    step = machine.on_failure(action, 9.9, ambiguous=False)

    assert step.notifications == ()
    # Retried at the deadline at the latest, as before: nothing slow was learned.
    assert machine.wake_at() == 10.0
