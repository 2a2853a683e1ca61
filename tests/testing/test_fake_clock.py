"""FakeClock: frozen until advanced, never backwards, safe across threads."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.clock import Clock, SystemClock
from mongoelector.testing import FakeClock
from tests.fakes import wait_for


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


def test_a_waiter_wakes_only_once_monotonic_reads_its_deadline() -> None:
    # 0.1 + 0.2 is a hair above 0.3, the nearest nanosecond: a waiter woken at 0.3
    # would find its deadline not reached, wait for it again, and spin.
    clock = FakeClock()
    clock.advance(0.3)
    deadline = 0.1 + 0.2
    assert clock.monotonic() < deadline
    wakeup = threading.Event()
    returned = threading.Event()

    def wait() -> None:
        clock.wait_until(deadline, wakeup)
        returned.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert wait_for(lambda: clock.waiters == 1)  # it waits rather than returning at once
    assert not returned.is_set()
    assert clock.next_deadline is not None and clock.next_deadline >= deadline
    clock.advance(1e-9)
    waiter.join(10)  # a hang guard, not a timing assertion
    assert returned.is_set()
    assert clock.monotonic() >= deadline
