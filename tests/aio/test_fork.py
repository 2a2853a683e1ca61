"""A forked child never acts on its parent's holdings: the asyncio objects.

As ``tests/sync/test_fork.py``, for ``AsyncLock`` and ``AsyncLeaderElector``
objects copied into a child: each side runs its own event loop (the fork
happens outside any), and a SQLite file is the store both share.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mongoelector import LockExists, LockLost
from mongoelector._common.participant import Participant
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import FakeClock
from tests.sync.test_fork import in_child, pytestmark  # noqa: F401 - skipped without fork


def a_child_s_async_lock_leaves_the_parent_s_holding(
    clock: FakeClock, store: SQLiteBackend
) -> None:
    lock = AsyncLock("job", store, ttl=30, clock=clock)
    asyncio.run(lock.acquire())
    token = lock.token

    async def check() -> dict[str, Any]:
        report: dict[str, Any] = {"uuid": lock.uuid, "token": lock.token}
        report["touch"] = await lock.touch() is not None
        try:
            lock.ensure()
            report["ensure"] = "returned"
        except LockLost as error:
            report["ensure"] = str(error)
        report["release"] = await lock.release()
        try:
            report["acquire"] = await lock.acquire(blocking=False)
        except LockExists:
            report["acquire"] = "LockExists"
        return report

    report = in_child(lambda: asyncio.run(check()))

    record = store.get("job")
    assert record is not None and (record.owner, record.token) == (lock.uuid, token)
    assert report["release"] is False and report["acquire"] == "LockExists"
    assert report["uuid"] != lock.uuid and report["token"] is None
    assert report["touch"] is False and "parent process" in report["ensure"]
    assert asyncio.run(lock.touch()) is not None  # the parent's renew is accepted
    assert asyncio.run(lock.release()) is True


def a_child_s_async_leader_is_not_leader_and_frees_nothing(
    clock: FakeClock, store: SQLiteBackend
) -> None:
    node = AsyncLeaderElector("k", store, clock=clock, report_status=False)
    asyncio.run(node.poll())
    assert node.is_leader
    token = node.token

    async def check() -> dict[str, Any]:
        report = {"uuid": node.uuid, "is_leader": node.is_leader, "token": node.token}
        await node.stop()
        await node.poll()  # a new contender: the parent's lease is live
        report["leader_after_poll"] = node.is_leader
        return report

    report = in_child(lambda: asyncio.run(check()))

    record = store.get("k")
    assert record is not None and (record.owner, record.token) == (node.uuid, token)
    assert report["uuid"] != node.uuid and report["is_leader"] is False
    assert report["token"] is None and report["leader_after_poll"] is False
    asyncio.run(node.poll())
    assert node.is_leader and node.token == token
    asyncio.run(node.stop())


CHECKS = [
    a_child_s_async_lock_leaves_the_parent_s_holding,
    a_child_s_async_leader_is_not_leader_and_frees_nothing,
]


@pytest.mark.parametrize("check", CHECKS)
def test_a_forked_child_leaves_the_parent_s_holding(
    check: Any, tmp_path: Path, clock: FakeClock
) -> None:
    check(clock, SQLiteBackend(tmp_path / "leases.sqlite", clock=clock))


@pytest.mark.parametrize("check", CHECKS)
def test_the_checks_see_a_child_that_acts_on_the_parent_s_holding(
    check: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock
) -> None:
    monkeypatch.setattr(Participant, "_check_fork", lambda self: None)
    with pytest.raises(AssertionError, match="LeaseRecord"):  # freed or taken by the child
        check(clock, SQLiteBackend(tmp_path / "leases.sqlite", clock=clock))
