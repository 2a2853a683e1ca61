"""FakeClock: frozen until advanced, never backwards, safe across threads."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.clock import Clock, SystemClock
from mongoelector.testing import FakeClock


def test_both_clocks_satisfy_the_clock_protocol() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_time_is_frozen_until_advanced() -> None:
    clock = FakeClock(datetime(2031, 5, 1, tzinfo=timezone.utc))
    assert clock.monotonic() == 0.0
    assert clock.now() == datetime(2031, 5, 1, tzinfo=timezone.utc)
    clock.advance(1.5)
    assert clock.monotonic() == 1.5
    assert clock.now() == datetime(2031, 5, 1, 0, 0, 1, 500000, tzinfo=timezone.utc)


def test_now_is_timezone_aware_utc_even_from_another_zone() -> None:
    start = datetime(2031, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert FakeClock(start).now() == datetime(2031, 5, 1, 10, tzinfo=timezone.utc)
    assert FakeClock(start).now().tzinfo == timezone.utc


def test_many_small_advances_add_up_exactly() -> None:
    clock = FakeClock()
    for _ in range(1000):
        clock.advance(0.001)
    assert clock.monotonic() == 1.0


@pytest.mark.parametrize("bad", [-1, -0.001])
def test_advance_refuses_to_go_backwards(bad: float) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        FakeClock().advance(bad)


def test_naive_or_non_datetime_start_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        FakeClock(datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="2030"):
        FakeClock("2030-01-01")  # type: ignore[arg-type]


def test_sleep_is_an_advance() -> None:
    clock = FakeClock()
    clock.sleep(3)
    assert clock.monotonic() == 3


def test_wait_until_sleeps_until_another_thread_advances_past_the_deadline() -> None:
    clock = FakeClock()
    wakeup = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(clock.wait_until(5.0, wakeup)))
    waiter.start()
    while clock.waiters == 0:
        threading.Event().wait(0.001)
    clock.advance(4.9)
    assert waiter.is_alive()
    clock.advance(0.1)
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert result == [False]


def test_wait_until_returns_at_once_when_woken_or_already_due() -> None:
    clock = FakeClock()
    wakeup = threading.Event()
    wakeup.set()
    assert clock.wait_until(10.0, wakeup) is True
    assert clock.wait_until(0.0, threading.Event()) is False


def test_repr_shows_the_time() -> None:
    assert "monotonic=0.000000000" in repr(FakeClock())


def test_system_clock_moves_forward_and_is_utc() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    assert clock.now().tzinfo == timezone.utc
    assert clock.wait_until(first - 1, threading.Event()) is False
    assert clock.monotonic() >= first
