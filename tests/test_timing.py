"""Lease settings are validated against the safety inequality."""

from __future__ import annotations

import math

import pytest

from mongoelector import LeaseTiming


def test_defaults_for_fifteen_seconds_are_ten_and_two() -> None:
    timing = LeaseTiming.for_ttl(15)
    assert (timing.ttl, timing.renew_deadline, timing.retry_period) == (15, 10, 2)


def test_derived_values_keep_the_default_proportions() -> None:
    timing = LeaseTiming.for_ttl(600)
    assert timing.renew_deadline == pytest.approx(400)
    assert timing.retry_period == pytest.approx(80)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"ttl": 10, "renew_deadline": 10, "retry_period": 1}, "renew_deadline"),
        ({"ttl": 10, "renew_deadline": 12, "retry_period": 1}, "renew_deadline"),
        ({"ttl": 10, "renew_deadline": 9.95, "retry_period": 1}, "safety inequality"),
        ({"ttl": 10, "renew_deadline": 5, "retry_period": 5}, "retry_period"),
        ({"ttl": 0, "renew_deadline": 5, "retry_period": 1}, "ttl"),
        ({"ttl": -3, "renew_deadline": 5, "retry_period": 1}, "-3"),
        ({"ttl": math.inf, "renew_deadline": 5, "retry_period": 1}, "inf"),
        ({"ttl": math.nan, "renew_deadline": 5, "retry_period": 1}, "nan"),
        ({"ttl": 10, "renew_deadline": 5, "retry_period": 1, "max_drift": 1.0}, "max_drift"),
        ({"ttl": 10, "renew_deadline": 8, "retry_period": 1, "time_uncertainty": 2.5}, "2.5"),
    ],
)
def test_unsafe_or_nonsensical_settings_raise_value_error_naming_the_value(
    kwargs: dict[str, float], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        LeaseTiming(**kwargs)


@pytest.mark.parametrize("bad", ["15", None, True, [15]])
def test_non_numbers_raise_type_error_naming_the_value(bad: object) -> None:
    with pytest.raises(TypeError, match="ttl"):
        LeaseTiming.for_ttl(bad)  # type: ignore[arg-type]


def test_drift_and_uncertainty_tighten_the_inequality() -> None:
    LeaseTiming(ttl=10, renew_deadline=9, retry_period=1, max_drift=0.1)  # 9.9 < 10
    with pytest.raises(ValueError, match="safety inequality"):
        LeaseTiming(ttl=10, renew_deadline=9, retry_period=1, max_drift=0.12)


def test_follower_poll_defaults_to_retry_period_and_must_be_positive() -> None:
    assert LeaseTiming.for_ttl(15).follower_period == 2
    assert LeaseTiming.for_ttl(15, follower_poll=15).follower_period == 15
    with pytest.raises(ValueError, match="follower_poll"):
        LeaseTiming.for_ttl(15, follower_poll=0)
