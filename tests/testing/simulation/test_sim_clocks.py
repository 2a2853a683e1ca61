"""Node clocks: skewed, drifting views of one true timeline, and their exact inverse."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mongoelector.clock import Clock
from mongoelector.testing import FakeClock
from mongoelector.testing.simulation import NodeClock, first_tick_reaching, rate_bounds


def test_a_node_clock_is_a_clock() -> None:
    assert isinstance(NodeClock(FakeClock()), Clock)


def test_monotonic_starts_at_the_origin_and_runs_at_the_rate() -> None:
    base = FakeClock()
    clock = NodeClock(base, rate=1.5, origin=1000.0)

    assert clock.monotonic() == 1000.0
    base.advance(10)
    assert clock.monotonic() == 1015.0


def test_wall_time_is_skewed_and_drifts_with_the_rate() -> None:
    base = FakeClock()
    clock = NodeClock(base, rate=2.0, skew=-3.0)

    assert clock.now() == base.now() - timedelta(seconds=3)
    base.advance(10)
    assert clock.now() == base.now() + timedelta(seconds=7)


def test_sleep_lets_the_matching_base_time_pass() -> None:
    base = FakeClock()
    clock = NodeClock(base, rate=2.0)

    clock.sleep(10)

    assert base.monotonic() == 5.0
    assert clock.monotonic() == 10.0


def test_sleep_goes_through_the_given_sleeper() -> None:
    slept: list[float] = []
    clock = NodeClock(FakeClock(), rate=0.5, sleeper=slept.append)

    clock.sleep(1)
    clock.sleep(0)

    assert slept == [2.0]


def test_wait_until_returns_at_once_for_a_reading_already_reached() -> None:
    base = FakeClock()
    clock = NodeClock(base, rate=2.0, origin=100.0)
    base.advance(5)

    assert clock.wait_until(110.0, threading.Event()) is False


def test_wait_until_returns_when_woken() -> None:
    clock = NodeClock(FakeClock())
    wakeup = threading.Event()
    wakeup.set()

    assert clock.wait_until(50.0, wakeup) is True


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("rate", 0.0, ValueError),
        ("rate", -1.0, ValueError),
        ("rate", float("nan"), ValueError),
        ("origin", float("inf"), ValueError),
        ("skew", "1", TypeError),
        ("rate", True, TypeError),
    ],
)
def test_bad_parameters_are_refused_by_name(field: str, value: object, error: type) -> None:
    with pytest.raises(error, match=field):
        NodeClock(FakeClock(), **{field: value})  # type: ignore[arg-type]


def test_rate_bounds_make_the_safety_inequality_exact() -> None:
    slowest, fastest = rate_bounds(0.01)

    assert (slowest, fastest) == (1 / 1.01, 1.01)
    # 10 local seconds on the slowest clock take 10 * (1 + drift) true seconds.
    assert 10 / slowest == pytest.approx(10 * 1.01)


@given(
    rate=st.floats(min_value=0.5, max_value=2.0),
    origin=st.floats(min_value=-1e6, max_value=1e6),
    ahead=st.floats(min_value=0.0, max_value=1e5),
    elapsed=st.integers(min_value=0, max_value=10**9),
)
def test_first_tick_reaching_is_the_first_microsecond_the_clock_reads_it(
    rate: float, origin: float, ahead: float, elapsed: int
) -> None:
    base = FakeClock()
    base.advance(elapsed / 1e6)
    clock = NodeClock(base, rate=rate, origin=origin)
    reading = clock.monotonic() + ahead

    tick = first_tick_reaching(clock, reading)

    assert tick >= elapsed
    if tick > elapsed:
        base.advance((tick - 1 - elapsed) / 1e6)
        assert clock.monotonic() < reading
        base.advance(1e-6)
    else:
        assert clock.reading_at((tick - 1) * 1000 / 1e9) < reading
    assert round(base.monotonic() * 1e6) == tick
    assert clock.monotonic() >= reading


def test_first_tick_reaching_refuses_infinity() -> None:
    with pytest.raises(ValueError, match="reading must be finite"):
        first_tick_reaching(NodeClock(FakeClock()), float("inf"))
