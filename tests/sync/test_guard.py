"""``Guard``: a lock that waits as ``threading.Condition`` does, with a condition only
while someone waits.

Waiting is shown by who waits (the guard's count of waiters), with real time
only as a hang guard.
"""

from __future__ import annotations

import threading

import pytest

from mongoelector._sync.guard import Guard
from tests.fakes import wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion


class Flag:
    def __init__(self) -> None:
        self.guard = Guard()
        self.up = False
        self.woken: list[bool] = []

    def wait(self) -> None:
        with self.guard:
            self.woken.append(self.guard.wait_for(lambda: self.up, GUARD))

    def raise_it(self) -> None:
        with self.guard:
            self.up = True
            self.guard.notify_all()


def waiting(flag: Flag, waiters: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=flag.wait, daemon=True) for _ in range(waiters)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: flag.guard._waiting == waiters, limit=GUARD), "they did not wait"
    return threads


class TestGuard:
    def test_nobody_waiting_means_no_condition(self) -> None:
        guard = Guard()
        with guard:
            guard.notify_all()  # nobody to wake: nothing made
            assert guard.wait_for(lambda: True)  # true already: no wait, nothing made
        assert not guard.has_condition

    def test_waiters_share_one_condition_and_wake_on_notify_then_it_goes(self) -> None:
        flag = Flag()
        threads = waiting(flag, 2)
        condition = flag.guard._condition
        assert condition is not None and flag.guard.has_condition
        flag.raise_it()
        for thread in threads:
            thread.join(GUARD)
            assert not thread.is_alive()
        assert flag.woken == [True, True]
        assert not flag.guard.has_condition and flag.guard._waiting == 0

    def test_a_wait_that_times_out_answers_false_and_leaves_no_condition(self) -> None:
        guard = Guard()
        with guard:
            assert not guard.wait_for(lambda: False, 0)
        assert not guard.has_condition and guard._waiting == 0

    def test_the_lock_is_held_inside_and_free_outside(self) -> None:
        guard = Guard()
        with guard:
            assert guard._lock.locked()
        assert not guard._lock.locked()

    def test_the_check_catches_a_notify_that_wakes_nobody(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The mutation: notify_all wakes no waiter.
        notify = Guard.notify_all
        monkeypatch.setattr(Guard, "notify_all", lambda guard: None)
        flag = Flag()
        (thread,) = waiting(flag, 1)
        flag.raise_it()
        thread.join(0.5)  # patience: with the mutation it never returns, nobody woke it
        assert thread.is_alive() and flag.woken == []
        with flag.guard:  # free it
            notify(flag.guard)
        thread.join(GUARD)
        assert flag.woken == [True]
