"""The renew rules of one auto-renewed holding (pure: no clock, no thread, no store)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.backends.protocol import LeaseRecord
from mongoelector.core.events import LossReason, Renew
from mongoelector.core.lease import LeaseKeeper
from mongoelector.core.renewal import Ended, Lost, Renewal, SleepUntil

DEADLINE = 10.0
INTERVAL = 2.0
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def record(token: int = 7) -> LeaseRecord:
    return LeaseRecord(
        key="job",
        owner="me",
        token=token,
        acquired_at=T0,
        expires_at=T0 + timedelta(seconds=15),
    )


@pytest.fixture
def keeper() -> LeaseKeeper:
    keeper = LeaseKeeper(renew_deadline=DEADLINE, renew_interval=INTERVAL)
    keeper.hold(record(), started_at=100.0)
    return keeper


@pytest.fixture
def renewal(keeper: LeaseKeeper) -> Renewal:
    return Renewal(keeper, 7)


class TestSchedule:
    def test_sleeps_until_the_keepers_next_renewal(self, renewal: Renewal) -> None:
        assert renewal.next_step(100.0) == SleepUntil(until=100.0 + INTERVAL)
        assert renewal.next_step(101.9) == SleepUntil(until=100.0 + INTERVAL)

    def test_renews_the_holdings_token_when_due(self, renewal: Renewal) -> None:
        assert renewal.next_step(102.0) == Renew(token=7)

    def test_a_successful_renew_moves_trust_and_schedule_forward(
        self, renewal: Renewal, keeper: LeaseKeeper
    ) -> None:
        assert renewal.on_renewed(102.0, 102.5, record()) is None
        assert keeper.holding is not None
        assert keeper.holding.valid_until == 102.0 + DEADLINE
        assert renewal.next_step(102.5) == SleepUntil(until=102.0 + INTERVAL)

    def test_a_failed_renew_is_retried_after_the_interval(self, renewal: Renewal) -> None:
        renewal.on_failed(102.5)
        assert renewal.next_step(103.0) == SleepUntil(until=102.5 + INTERVAL)
        assert renewal.next_step(104.5) == Renew(token=7)

    def test_a_retry_due_after_the_deadline_wakes_at_the_deadline(self, renewal: Renewal) -> None:
        renewal.on_failed(109.0)
        assert renewal.next_step(109.0) == SleepUntil(until=100.0 + DEADLINE)


class TestLoss:
    def test_the_deadline_loses_the_holding_once(
        self, renewal: Renewal, keeper: LeaseKeeper
    ) -> None:
        assert renewal.current(109.999) is None
        assert renewal.next_step(110.0) == Lost(token=7, reason=LossReason.DEADLINE)
        assert keeper.holding is None
        assert renewal.next_step(110.0) == Ended(token=7)
        assert renewal.current(111.0) == Ended(token=7)

    def test_failures_until_the_deadline_lose_the_holding(self, renewal: Renewal) -> None:
        now = 102.0
        steps = []
        while True:
            step = renewal.next_step(now)
            steps.append(step)
            if isinstance(step, Renew):
                renewal.on_failed(now)
            elif isinstance(step, SleepUntil):
                now = step.until
            else:
                break
        assert steps.count(Renew(token=7)) == 4  # at 102, 104, 106, 108
        assert steps[-1] == Lost(token=7, reason=LossReason.DEADLINE)
        assert now == 100.0 + DEADLINE

    def test_a_refused_renew_loses_the_holding_once(
        self, renewal: Renewal, keeper: LeaseKeeper
    ) -> None:
        assert renewal.on_renewed(102.0, 102.1, None) == Lost(token=7, reason=LossReason.TAKEN_OVER)
        assert keeper.holding is None
        assert renewal.on_renewed(102.0, 102.1, None) is None
        assert renewal.next_step(102.1) == Ended(token=7)

    def test_a_renew_answered_after_the_deadline_cannot_revive_the_holding(
        self, renewal: Renewal, keeper: LeaseKeeper
    ) -> None:
        assert renewal.on_renewed(109.0, 110.5, record()) == Lost(
            token=7, reason=LossReason.DEADLINE
        )
        assert keeper.holding is None
        assert renewal.on_renewed(109.0, 110.5, record()) is None


class TestEnd:
    def test_a_released_holding_ends_quietly(self, renewal: Renewal, keeper: LeaseKeeper) -> None:
        keeper.drop()
        assert renewal.next_step(200.0) == Ended(token=7)
        assert renewal.on_renewed(102.0, 102.1, None) is None
        assert not renewal.kept()

    def test_a_replaced_holding_ends_and_its_late_replies_change_nothing(
        self, renewal: Renewal, keeper: LeaseKeeper
    ) -> None:
        keeper.hold(replace(record(), token=8), started_at=150.0)
        assert renewal.next_step(150.0) == Ended(token=7)
        assert renewal.on_renewed(149.0, 150.1, None) is None
        renewal.on_failed(150.2)
        assert keeper.holding is not None
        assert keeper.holding.token == 8
        assert Renewal(keeper, 8).next_step(150.2) == SleepUntil(until=150.0 + INTERVAL)
