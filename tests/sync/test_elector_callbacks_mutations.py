"""The deadlock checks of ``test_elector_callbacks`` catch the old behaviour when it comes back.

Each test puts one piece of the old design back (by monkeypatching) and
asserts that the scenario its deadlock test runs now reports
``"deadlocked"``. The bound is short: a deadlock shows as a call still
pending after it, and every scenario unwinds on its own afterwards.
"""

from __future__ import annotations

import pytest

from mongoelector import LeaderElector
from tests.sync.test_elector_callbacks import (
    release_while_on_leader_loss_stops_from_another_thread,
    stop_while_on_leader_waits_for_the_stop,
)

#: Real seconds a mutated scenario is given before it counts as deadlocked: a hang bound
#: (the unmutated scenarios take about 0.02 s), wide enough for a loaded machine.
SHORT = 2.0


def test_the_scenarios_pass_unmutated_with_the_short_bound() -> None:
    assert release_while_on_leader_loss_stops_from_another_thread(limit=SHORT) == "done"
    assert stop_while_on_leader_waits_for_the_stop(limit=SHORT) == "done"


def test_release_running_on_leader_loss_under_the_poll_lock_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def release_holding_the_lock(self: LeaderElector) -> None:  # the old release()
        with self._poll_lock:
            self._let_go(self._machine.release(self._clock.monotonic()))
            self._run_callbacks(None)
            self._send_releases()

    monkeypatch.setattr(LeaderElector, "release", release_holding_the_lock)
    assert release_while_on_leader_loss_stops_from_another_thread(limit=SHORT) == "deadlocked"


def test_stop_waiting_for_the_elector_busy_in_a_callback_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stop() then waits for the loop to end and for its callbacks to be over, whatever they
    # do (the old stop(), which waited for the loop's thread that ran them).
    def wait_for_the_callbacks_too(self: LeaderElector, loop: object) -> bool:
        return bool(getattr(loop, "done", False)) and not self._queue.busy()

    monkeypatch.setattr(LeaderElector, "_let_go_of", wait_for_the_callbacks_too)
    assert stop_while_on_leader_waits_for_the_stop(limit=SHORT) == "deadlocked"
