"""Server time estimated from round trips, and the host's clock offset."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.backends._mongo.clock_reader import ServerClock
from mongoelector.backends._mongo.failures import RetryPolicy
from mongoelector.backends._mongo.plans import Bounded, Hello, PlanRun
from mongoelector.backends._mongo.server_clock import (
    ClockSample,
    ServerClockEstimator,
    host_clock_offset,
)
from mongoelector.testing import FakeClock

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def sample(sent: float, server: datetime, received: float) -> ClockSample:
    return ClockSample(sent_at=sent, server_time=server, received_at=received)


def test_no_estimate_without_a_sample() -> None:
    estimator = ServerClockEstimator()
    assert estimator.estimate(0.0) is None
    assert estimator.is_stale(0.0)


def test_the_estimate_is_centred_on_the_round_trip_and_bounded_by_half_of_it() -> None:
    estimator = ServerClockEstimator(max_drift=0.0)
    estimator.add(sample(10.0, T0, 10.2))
    estimate = estimator.estimate(10.1)
    assert estimate.time == T0 + timedelta(milliseconds=0.5)
    assert estimate.uncertainty == pytest.approx(0.1005)


def test_the_estimate_follows_the_local_clock_and_grows_less_certain_with_age() -> None:
    estimator = ServerClockEstimator(max_drift=0.01)
    estimator.add(sample(0.0, T0, 0.0))
    estimate = estimator.estimate(100.0)
    assert estimate.time == T0 + timedelta(seconds=100.0005)
    assert estimate.uncertainty == pytest.approx(0.0005 + 1.0)


def test_naive_server_times_are_utc() -> None:
    estimator = ServerClockEstimator(max_drift=0.0)
    estimator.add(sample(0.0, T0.replace(tzinfo=None), 0.0))
    assert estimator.estimate(0.0).time.tzinfo is not None


def test_the_tightest_sample_wins() -> None:
    estimator = ServerClockEstimator(max_drift=0.0)
    precise = sample(0.0, T0, 0.002)
    estimator.add(precise)
    estimator.add(sample(1.0, T0 + timedelta(seconds=1), 1.5))
    assert estimator.sample is precise
    better = sample(2.0, T0 + timedelta(seconds=2), 2.001)
    estimator.add(better)
    assert estimator.sample is better


def test_samples_go_stale() -> None:
    estimator = ServerClockEstimator(max_age=60)
    estimator.add(sample(0.0, T0, 0.0))
    assert not estimator.is_stale(60.0)
    assert estimator.is_stale(60.1)


def test_a_reply_before_its_request_is_refused() -> None:
    with pytest.raises(ValueError):
        sample(1.0, T0, 0.5)


def test_host_clock_offset() -> None:
    before = T0
    after = T0 + timedelta(milliseconds=40)
    offset, uncertainty = host_clock_offset(before, T0 + timedelta(seconds=2), after)
    assert offset == pytest.approx(2.0 - 0.02 + 0.0005)
    assert uncertainty == pytest.approx(0.0205)


def run_reads(server_clock: ServerClock, replies: list[dict[str, object]]) -> None:
    """Drive ``server_clock.read()`` once per reply, answering its hello with that reply."""
    for reply in replies:
        run = PlanRun(server_clock.read())
        while not run.done:
            step = run.step.step if isinstance(run.step, Bounded) else run.step
            assert isinstance(step, Hello), step
            run.feed(reply)


def test_a_reply_without_local_time_never_shrinks_the_uncertainty() -> None:
    """A later hello lacking localTime keeps the earlier reading; it never falls back to 0."""
    clock = FakeClock()
    server_clock = ServerClock(clock, RetryPolicy(), max_drift=0.01)
    skewed = clock.now() + timedelta(seconds=30)
    run_reads(server_clock, [{"ok": 1, "localTime": skewed.replace(tzinfo=None)}])
    clock.advance(120)
    run_reads(server_clock, [{"ok": 1}])  # a reply without the server's clock

    run = PlanRun(server_clock.estimate())
    while not run.done:
        run.feed({"ok": 1})  # stale again: re-read, still no localTime
    estimate = run.value
    assert server_clock.tells_time
    assert estimate.uncertainty >= 0.01 * 120
    assert abs((estimate.time - (clock.now() + timedelta(seconds=30))).total_seconds()) < 0.01
