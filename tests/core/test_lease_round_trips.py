"""LeaseKeeper learns the store's round trip and renews early enough for a reply that slow.

Pure: times are plain numbers, round trips are fed in by hand.
The keeper plans for ``lead = 1.5 * longest recent round trip`` before the deadline.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from mongoelector.backends import LeaseRecord
from mongoelector.core.events import SlowRoundTrips
from mongoelector.core.lease import ROUND_TRIP_MARGIN, ROUND_TRIP_WINDOW, LeaseKeeper

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
DEADLINE = 10.0
INTERVAL = 6.0  # DEADLINE - INTERVAL = 4: the margin a round trip may use


def record(token: int = 1) -> LeaseRecord:
    return LeaseRecord(key="k", owner="me", token=token, acquired_at=T0, expires_at=T0)


def keeper(*round_trips: float) -> LeaseKeeper:
    keeper = LeaseKeeper(renew_deadline=DEADLINE, renew_interval=INTERVAL)
    for seconds in round_trips:
        keeper.observe_round_trip(seconds)
    return keeper


def next_renew(keeper: LeaseKeeper) -> float:
    """The time the keeper next asks for a renewal (its wake time before the deadline)."""
    assert keeper.holding is not None
    assert keeper.wake_at() < keeper.holding.valid_until
    assert not keeper.renew_due(keeper.wake_at() - 1e-9)
    assert keeper.renew_due(keeper.wake_at())
    return keeper.wake_at()


class TestSchedule:
    def test_without_round_trips_renewals_come_every_interval(self) -> None:
        k = keeper()
        k.hold(record(), started_at=100.0)
        assert next_renew(k) == 106.0
        assert k.on_renewed(106.0, record())
        assert next_renew(k) == 112.0

    def test_a_round_trip_within_the_margin_changes_nothing(self) -> None:
        # 1.5 * 2 = 3 <= 10 - 6: a renewal sent at +6 is answered by +8, before +10.
        k = keeper(2.0)
        k.hold(record(), started_at=100.0)
        assert next_renew(k) == 106.0
        assert not k.slow

    def test_a_slow_round_trip_moves_the_renewal_ahead_of_the_interval(self) -> None:
        # 1.5 * 4 = 6 > 10 - 6: the renewal goes out at 110 - 6 = 104, so that a
        # reply taking 4 s arrives at 108, with 2 s (half a round trip) to spare.
        k = keeper(4.0)
        k.hold(record(), started_at=100.0)
        assert next_renew(k) == pytest.approx(104.0)
        assert k.renew_lead == pytest.approx(4.0 * (1 + ROUND_TRIP_MARGIN))
        assert k.slow

    def test_after_a_renewal_the_early_rule_counts_from_its_new_deadline(self) -> None:
        k = keeper(4.0)
        k.hold(record(), started_at=100.0)
        k.observe_round_trip(4.0)
        assert k.on_renewed(104.0, record())
        assert k.holding is not None and k.holding.valid_until == 114.0
        assert next_renew(k) == pytest.approx(108.0)

    def test_it_plans_for_the_longest_recent_round_trip(self) -> None:
        k = keeper(4.0, 1.0, 0.5)
        assert k.expected_round_trip == 4.0
        k.hold(record(), started_at=100.0)
        assert next_renew(k) == pytest.approx(104.0)

    def test_old_round_trips_are_forgotten_after_the_window(self) -> None:
        k = keeper(4.0, *[1.0] * (ROUND_TRIP_WINDOW - 1))
        assert k.expected_round_trip == 4.0
        k.observe_round_trip(1.0)
        assert k.expected_round_trip == 1.0
        k.hold(record(), started_at=100.0)
        assert next_renew(k) == 106.0

    def test_a_round_trip_as_long_as_the_deadline_means_renewing_at_once(self) -> None:
        k = keeper(DEADLINE)
        k.hold(record(), started_at=100.0)
        assert k.renew_due(100.0)  # the best it can do: one renewal always in flight

    def test_a_negative_round_trip_counts_as_zero(self) -> None:
        k = keeper(-1.0)
        assert k.expected_round_trip == 0.0


class TestRetries:
    def test_a_failed_renewal_is_retried_after_the_interval_when_that_is_soon_enough(
        self,
    ) -> None:
        k = keeper(1.0)  # lead 1.5: the last useful send is at 110 - 1.5 = 108.5
        k.hold(record(), started_at=100.0)
        k.on_renew_failed(102.0)
        assert next_renew(k) == 108.0

    def test_a_retry_that_would_be_answered_too_late_goes_out_earlier(self) -> None:
        k = keeper(1.0)
        k.hold(record(), started_at=100.0)
        k.on_renew_failed(106.0)  # 106 + 6 = 112 is past the deadline; 108.5 is not
        assert next_renew(k) == pytest.approx(108.5)

    def test_no_retry_at_once_when_even_the_last_useful_send_has_passed(self) -> None:
        # Calls that fail instantly must not make the driver loop: the retry waits.
        k = keeper(1.0)
        k.hold(record(), started_at=100.0)
        k.on_renew_failed(109.0)
        assert not k.renew_due(109.0)
        assert k.wake_at() == 110.0  # the deadline comes first

    def test_without_round_trips_retries_are_as_before(self) -> None:
        k = keeper()
        k.hold(record(), started_at=100.0)
        k.on_renew_failed(106.0)
        assert not k.renew_due(109.999)
        assert k.wake_at() == 110.0


class TestSlowNotice:
    def test_reported_once_when_round_trips_leave_no_margin(self) -> None:
        k = keeper()
        assert k.observe_round_trip(2.0) is None
        notice = k.observe_round_trip(3.0)  # 1.5 * 3 = 4.5 > 10 - 6
        assert notice == SlowRoundTrips(
            round_trip=3.0, renew_deadline=DEADLINE, retry_period=INTERVAL, cleared=False
        )
        assert [k.observe_round_trip(3.5) for _ in range(5)] == [None] * 5
        assert k.slow

    def test_the_boundary_is_exactly_the_margin(self) -> None:
        k = keeper()
        assert k.observe_round_trip(4.0 / (1 + ROUND_TRIP_MARGIN)) is None
        assert not k.slow
        assert k.observe_round_trip(4.0 / (1 + ROUND_TRIP_MARGIN) + 1e-6) is not None

    def test_cleared_once_the_slow_round_trips_leave_the_window_then_reported_again(
        self,
    ) -> None:
        k = keeper(3.0)
        assert k.slow
        notices = [k.observe_round_trip(0.1) for _ in range(ROUND_TRIP_WINDOW)]
        assert notices[:-1] == [None] * (ROUND_TRIP_WINDOW - 1)
        assert notices[-1] == SlowRoundTrips(
            round_trip=0.1, renew_deadline=DEADLINE, retry_period=INTERVAL, cleared=True
        )
        assert not k.slow
        again = k.observe_round_trip(3.0)
        assert again is not None and not again.cleared

    def test_round_trips_outlive_a_holding(self) -> None:
        k = keeper(4.0)
        k.hold(record(1), started_at=100.0)
        k.drop()
        k.hold(record(2), started_at=200.0)
        assert next_renew(k) == pytest.approx(204.0)
        assert k.slow


def test_the_expected_round_trip_is_the_longest_of_the_last_window_whatever_the_sequence() -> None:
    rng = random.Random(14)
    k = LeaseKeeper(renew_deadline=10.0, renew_interval=2.0)
    seen: list[float] = []
    for _ in range(20 * ROUND_TRIP_WINDOW):
        seconds = rng.choice([0.0, rng.random(), rng.random() * 3, 1.0])
        seen.append(seconds)
        k.observe_round_trip(seconds)
        assert k.expected_round_trip == max(seen[-ROUND_TRIP_WINDOW:])


def test_the_longest_is_right_through_long_falling_and_rising_runs() -> None:
    """More than a window of ever shorter round trips (each kept, in case it becomes the
    longest), then ever longer ones, then a long steady run, then a random mix."""
    window = ROUND_TRIP_WINDOW
    rng = random.Random(41)
    falling = [3.0 - i / 100 for i in range(3 * window)]
    rising = [i / 100 for i in range(3 * window)]
    mixed = [rng.choice([0.25, rng.random(), 2.0 - rng.random()]) for _ in range(20 * window)]
    k = LeaseKeeper(renew_deadline=10.0, renew_interval=2.0)
    seen: list[float] = []
    for seconds in [*falling, *rising, *[1.5] * 3 * window, *mixed, *falling]:
        seen.append(seconds)
        k.observe_round_trip(seconds)
        assert k.expected_round_trip == max(seen[-window:])
        assert len(k._round_trips) <= 2 * window


# --- memory: a process may keep thousands of keepers -------------------------------------


def whole_window(keeper: LeaseKeeper, seconds: float) -> None:
    """The former ring, kept here as a mutation: every round trip of the window kept."""
    trips = keeper._round_trips
    if len(trips) < ROUND_TRIP_WINDOW:
        trips.append(seconds)
    else:
        trips[keeper._observed] = seconds
        keeper._observed = (keeper._observed + 1) % ROUND_TRIP_WINDOW
    keeper._longest_round_trip = max(trips)


def kept_after_steady_round_trips() -> int:
    """How many doubles a keeper keeps after many round trips of one length."""
    k = keeper(*[0.5] * 4 * ROUND_TRIP_WINDOW)
    assert k.expected_round_trip == 0.5
    return len(k._round_trips)


def test_steady_round_trips_keep_one_number_and_length() -> None:
    assert kept_after_steady_round_trips() == 2


def test_the_check_catches_a_keeper_that_keeps_the_whole_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LeaseKeeper, "observe_round_trip", whole_window)
    assert kept_after_steady_round_trips() == ROUND_TRIP_WINDOW
