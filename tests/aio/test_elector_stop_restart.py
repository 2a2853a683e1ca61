"""``stop()`` racing ``start()``, a second ``stop()``, cancellation, its own callbacks and a
status call in flight (the asyncio driver): what ``members()`` shows afterwards, and how
often each callback and report runs.

``stop()`` steps down, runs ``on_leader_loss`` and frees the lease first, then sends its
last status report (``elector_running=False``) after any status call in flight with this
node's report. A ``start()`` in between (from ``on_leader_loss``, or another task) begins
a new loop: the old stop's report is then not sent, and the new loop's first poll reports.
Everything on a FakeClock, by counts and turns of the event loop.
"""

from __future__ import annotations

from typing import Any

import pytest

from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import LeaseRequest, MemberRecord
from mongoelector.core import elector_machine
from mongoelector.testing import FakeClock
from tests.aio.test_elector_status_batches import OneByOneStore, StatusStore, idle

TTL = 15.0
STATUS_INTERVAL = TTL / 3


def made(store: Any, clock: FakeClock, **options: Any) -> AsyncLeaderElector:
    return AsyncLeaderElector("k", store, ttl=TTL, clock=clock, **options)


def shown(store: StatusStore, elector: AsyncLeaderElector) -> MemberRecord:
    """The report of ``elector`` that ``members()`` shows."""
    return {m.uuid: m for m in store.members(elector.key)}[elector.uuid]


def someone_else_leads(store: StatusStore) -> None:
    assert store.compare_and_set(LeaseRequest(key="k", owner="someone-else", ttl=TTL)).acquired


async def follower_restarted(store: StatusStore, clock: FakeClock) -> MemberRecord:
    """A follower started, stopped (shown not running) and started again; its report once
    the new loop has polled."""
    someone_else_leads(store)
    elector = made(store, clock)
    await elector.start()
    await idle([elector])
    await elector.stop()
    assert shown(store, elector).elector_running is False
    await elector.start()
    try:
        await idle([elector])
        assert elector.running and not elector.is_leader
        return shown(store, elector)
    finally:
        await elector.stop()


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
async def test_a_restarted_follower_is_shown_running_after_its_first_poll(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """start() after stop(): the new loop's first poll reports, though its leadership (a
    follower's, as before) did not change and its last report is younger than a status
    interval; it once showed ``elector_running=False`` for a status interval."""
    assert (await follower_restarted(store_type(clock), clock)).elector_running is True


async def restarted_from_on_leader_loss(store: StatusStore, clock: FakeClock) -> AsyncLeaderElector:
    """A leader whose ``on_leader_loss`` starts it again (once), stopped 1 s after its first
    report; settled once the new loop has polled."""
    restarts: list[int] = []

    async def again() -> None:
        if not restarts:
            restarts.append(1)
            await elector.start()

    elector = made(store, clock, on_leader_loss=again)
    await elector.start()
    await idle([elector])
    assert elector.is_leader
    clock.advance(1.0)
    await idle([elector])
    await elector.stop()
    await idle([elector])
    assert restarts == [1]
    return elector


@pytest.mark.parametrize("store_type", [StatusStore, OneByOneStore])
async def test_restarted_from_on_leader_loss_the_new_term_is_reported(
    clock: FakeClock, store_type: type[StatusStore]
) -> None:
    """on_leader_loss of a stop() starts the elector again: the stop's last report is not
    sent (the elector runs), and the new loop's first poll reports the new term: it once
    showed the old term's token until the next status interval."""
    store = store_type(clock)
    elector = await restarted_from_on_leader_loss(store, clock)
    try:
        assert elector.running and elector.is_leader and elector.token == 2
        report = shown(store, elector)
        assert report.elector_running is True
        assert report.is_leader is True
        assert report.token == elector.token
    finally:
        await elector.stop()


async def test_with_the_machine_start_mutated_to_keep_the_last_report_the_restart_checks_fail(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation test of the two above: a machine whose start() leaves its last report's
    time as it was (a restart's first report not due) shows the stop's report, or the
    old term's."""
    start = elector_machine.ElectorMachine.start

    def keeping(self: elector_machine.ElectorMachine) -> None:
        kept = (self._status_at, self._status_leading)
        start(self)
        self._status_at, self._status_leading = kept

    monkeypatch.setattr(elector_machine.ElectorMachine, "start", keeping)
    assert (await follower_restarted(StatusStore(clock), clock)).elector_running is False
    store = StatusStore(clock)
    elector = await restarted_from_on_leader_loss(store, clock)
    try:
        assert shown(store, elector).token != elector.token  # the check above fails
    finally:
        await elector.stop()
