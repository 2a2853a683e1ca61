"""The deadlock checks of ``test_elector_callbacks`` catch the old behaviour when it comes back.

Each test puts one piece of the old design back (by monkeypatching) and
asserts that the scenario its deadlock test runs now reports
``"deadlocked"``. The bound is short: a deadlock shows as a call still
pending after it, and every scenario unwinds on its own afterwards.
"""

from __future__ import annotations

import pytest

from mongoelector.aio import AsyncLeaderElector
from mongoelector.aio import elector as aio_elector
from tests.aio.test_elector_callbacks import (
    release_while_on_leader_loss_stops_from_another_task,
    stop_while_on_leader_waits_for_the_stop,
)

#: Real seconds a mutated scenario is given before it counts as deadlocked: a hang bound
#: (the unmutated scenarios take about 0.02 s), wide enough for a loaded machine.
SHORT = 2.0


async def test_the_scenarios_pass_unmutated_with_the_short_bound() -> None:
    assert await release_while_on_leader_loss_stops_from_another_task(limit=SHORT) == "done"
    assert await stop_while_on_leader_waits_for_the_stop(limit=SHORT) == "done"


async def test_release_running_on_leader_loss_under_the_poll_lock_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def release_holding_the_lock(self: AsyncLeaderElector) -> None:  # the old release()
        async with self._poll_lock:
            self._let_go(self._machine.release(self._clock.monotonic()))
            await self._run_callbacks(None)
            await self._send_releases()

    monkeypatch.setattr(AsyncLeaderElector, "release", release_holding_the_lock)
    assert await release_while_on_leader_loss_stops_from_another_task(limit=SHORT) == "deadlocked"


async def test_stop_waiting_for_a_loop_busy_in_a_callback_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stop() then waits for the loop's task to end, whatever it is doing (the old stop()).
    original = aio_elector._Loop.set

    def set_without_callbacks(
        self: aio_elector._Loop, *, in_callback: bool | None = None, done: bool | None = None
    ) -> None:
        original(self, done=done)

    monkeypatch.setattr(aio_elector._Loop, "set", set_without_callbacks)
    assert await stop_while_on_leader_waits_for_the_stop(limit=SHORT) == "deadlocked"
