"""A forked child never acts on its parent's holdings: the asyncio objects.

As ``tests/sync/test_fork.py``, for ``AsyncLock`` and ``AsyncLeaderElector``
objects copied into a child: each side runs its own event loop (the fork
happens outside any), and a SQLite file is the store both share.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mongoelector import LockExists, LockLost
from mongoelector._common.participant import Participant
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.aio.renewer import AsyncRenewer
from mongoelector.backends import MemoryBackend
from mongoelector.backends.protocol import Capability, RenewItem
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for
from tests.sync.test_fork import CHILD_LIMIT, in_child, pytestmark  # noqa: F401 - skipped without fork


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


async def fork_in_loop(child: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Fork inside the running event loop; ``{}`` in the parent. The child goes on running
    the loop (the parent's tasks too, as on Python 3.10 and 3.11), awaits ``child()`` and
    reports what it returned (the parent's return value)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        signal.alarm(CHILD_LIMIT)  # a stuck child ends, reportless: a hang bound
        try:
            result = await child()
        except BaseException as error:
            result = {"error": repr(error)}
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(result))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as text:
        written = text.read()
    _, status = os.waitpid(pid, 0)
    assert written, f"the child ended without a report (exit {os.waitstatus_to_exitcode(status)})"
    report: dict[str, Any] = json.loads(written)
    return report


class KeyByKey(MemoryBackend):
    """A store without ``renew_many``: each renewer sends its own ``renew``."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(super().capabilities - {Capability.RENEW_MANY})


class SentAs:
    """Counts the renewals a process sends as ``owner`` (single or batched)."""

    def __init__(self, backend: MemoryBackend, owner: str) -> None:
        self.calls = 0
        renew, renew_many = backend.renew, backend.renew_many

        def spy_renew(key: str, who: str, token: int, ttl: float) -> Any:
            self.calls += who == owner
            return renew(key, who, token, ttl)

        def spy_renew_many(items: list[RenewItem]) -> Any:
            self.calls += sum(item.owner == owner for item in items)
            return renew_many(items)

        backend.renew = spy_renew  # type: ignore[method-assign]
        backend.renew_many = spy_renew_many  # type: ignore[method-assign]


async def in_the_child_s_loop(clock: FakeClock, seconds: float) -> None:
    """Let the tasks a forked child's loop goes on running have their turns, ``seconds`` on.

    No ``run_for``: ``asyncio.get_running_loop()`` raises in a forked child.
    """
    clock.advance(seconds)
    for _ in range(100):
        await asyncio.sleep(0)


@pytest.mark.parametrize("store", [KeyByKey, MemoryBackend], ids=["key by key", "in batches"])
@pytest.mark.parametrize("keys", [1, 2], ids=["one lock", "two locks"])
def test_a_child_that_goes_on_running_the_loop_renews_nothing_of_the_parent_s(
    store: type[MemoryBackend], keys: int
) -> None:
    """``os.fork()`` inside a coroutine: the child's loop goes on running the renewer tasks
    copied from the parent (until they next need the running loop)."""
    clock = FakeClock()
    backend = store(clock=clock)

    async def main() -> dict[str, Any]:
        locks = [
            AsyncLock(f"job{n}", backend, ttl=30, clock=clock, auto_renew=True) for n in range(keys)
        ]
        for lock in locks:
            await lock.acquire()
        owners = [lock._uuid for lock in locks]

        async def child() -> dict[str, Any]:
            sent = [SentAs(backend, owner) for owner in owners]
            await in_the_child_s_loop(clock, locks[0].retry_period)
            return {"sent_as_parent": sum(spy.calls for spy in sent)}

        report = await fork_in_loop(child)
        spy = SentAs(backend, owners[0])  # the parent's renewer goes on
        await run_for(clock, locks[0].retry_period)
        report["parent_renewed"] = spy.calls > 0
        for lock in locks:
            await lock.release()
        return report

    assert asyncio.run(main()) == {"sent_as_parent": 0, "parent_renewed": True}


def test_the_renewal_check_sees_a_child_that_renews_the_parent_s_holding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(AsyncRenewer, "_may_go_on", lambda self: self._control.may_go_on())
    with pytest.raises(AssertionError, match="sent_as_parent"):
        test_a_child_that_goes_on_running_the_loop_renews_nothing_of_the_parent_s(KeyByKey, 1)


def test_a_child_that_goes_on_running_the_loop_ends_the_copied_elector_loop() -> None:
    """``os.fork()`` inside a coroutine: the elector's loop task copied into the child ends
    at its next poll, sending nothing and raising nothing (no store call as the parent)."""
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)

    async def main() -> dict[str, Any]:
        elector = AsyncLeaderElector("el", backend, ttl=30, clock=clock)
        await elector.start()
        await run_for(clock, 0)
        assert elector.is_leader
        owner, task = elector._uuid, elector.task
        assert task is not None

        async def child() -> dict[str, Any]:
            spy = SentAs(backend, owner)
            await in_the_child_s_loop(clock, elector.retry_period)
            error = task.exception() if task.done() and not task.cancelled() else None
            return {"sent_as_parent": spy.calls, "ended": task.done(), "error": repr(error)}

        report = await fork_in_loop(child)
        await elector.stop()
        return report

    assert asyncio.run(main()) == {"sent_as_parent": 0, "ended": True, "error": "None"}


def test_the_elector_loop_check_sees_a_child_whose_copied_loop_crashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reset = AsyncLeaderElector._after_fork

    def reset_leaving_the_loop_running(self: AsyncLeaderElector) -> None:
        loop = self._loop
        reset(self)
        if loop is not None:
            loop.stopped = False

    monkeypatch.setattr(AsyncLeaderElector, "_after_fork", reset_leaving_the_loop_running)
    with pytest.raises(AssertionError, match="error"):
        test_a_child_that_goes_on_running_the_loop_ends_the_copied_elector_loop()
