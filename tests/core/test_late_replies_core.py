"""A grant handled after the renew deadline is confirmed with a renew before it is trusted."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from mongoelector.backends.protocol import CasResult, LeaseRecord
from mongoelector.core.elector_machine import ElectorMachine, Role
from mongoelector.core.events import LeadershipGained, Renew, SlowRoundTrips, TryAcquire
from mongoelector.core.lock_machine import AcquireAttempt, Call, Succeed
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)
#: The first try of a machine built with :func:`counter`.
TRY = TryAcquire(acquisition="a1")


def counter() -> Callable[[], str]:
    """Acquisition ids a1, a2, ... in the order a machine asks for them."""
    numbers = itertools.count(1)
    return lambda: f"a{next(numbers)}"


T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def record(owner: str = "me", token: int = 7) -> LeaseRecord:
    return LeaseRecord(
        key="k", owner=owner, token=token, acquired_at=T0, expires_at=T0 + timedelta(seconds=15)
    )


def granted() -> CasResult:
    return CasResult(acquired=True, record=record())


class TestElectorMachine:
    def test_a_grant_handled_before_the_deadline_leads(self) -> None:
        machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
        machine.begin_poll(0.0)

        step = machine.on_acquire_result(0.0, 9.999, granted())

        assert LeadershipGained(token=7) in step.notifications
        assert machine.is_leader(9.999)

    def test_a_grant_handled_at_the_deadline_is_confirmed_before_leading(self) -> None:
        machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
        machine.begin_poll(0.0)

        step = machine.on_acquire_result(0.0, 10.0, granted())

        # No leadership: only the notice that a 10 s round trip leaves these settings no margin.
        assert step.notifications == (
            SlowRoundTrips(round_trip=10.0, renew_deadline=10.0, retry_period=2.0),
        )
        assert machine.role is Role.CONFIRMING
        assert not machine.is_leader(10.0)
        assert machine.wake_at() == 10.0
        assert machine.begin_poll(10.0).action == Renew(token=7)

    def test_the_confirming_renew_leads_from_its_own_start(self) -> None:
        machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
        machine.begin_poll(0.0)
        machine.on_acquire_result(0.0, 45.0, granted())
        machine.begin_poll(45.0)

        step = machine.on_renew_result(45.0, 45.1, record())

        assert LeadershipGained(token=7) in step.notifications
        assert machine.holding is not None and machine.holding.valid_until == 55.0

    def test_a_confirming_renew_that_is_late_too_is_confirmed_again(self) -> None:
        machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
        machine.begin_poll(0.0)
        machine.on_acquire_result(0.0, 45.0, granted())
        machine.begin_poll(45.0)

        step = machine.on_renew_result(45.0, 60.0, record())

        assert step.notifications == ()
        assert machine.role is Role.CONFIRMING
        assert machine.begin_poll(60.0).action == Renew(token=7)


class TestAcquireAttempt:
    def attempt(self) -> AcquireAttempt:
        return AcquireAttempt(
            owner="me", renew_deadline=10.0, now=0.0, blocking=False, new_acquisition=counter()
        )

    def test_a_grant_handled_before_the_deadline_succeeds(self) -> None:
        decision = self.attempt().on_result(TRY, 0.0, 9.999, granted())

        assert isinstance(decision, Succeed)

    def test_a_grant_handled_at_the_deadline_is_renewed_first(self) -> None:
        attempt = self.attempt()

        decision = attempt.on_result(TRY, 0.0, 10.0, granted())

        assert decision == Call(action=Renew(token=7))
        confirmed = attempt.on_result(Renew(token=7), 10.0, 10.1, record())
        assert isinstance(confirmed, Succeed)
        assert confirmed.holding.valid_until == 20.0

    def test_a_late_confirmation_is_renewed_again(self) -> None:
        attempt = self.attempt()
        attempt.on_result(TRY, 0.0, 10.0, granted())

        assert attempt.on_result(Renew(token=7), 10.0, 30.0, record()) == Call(
            action=Renew(token=7)
        )
