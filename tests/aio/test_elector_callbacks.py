"""Callbacks may stop, release or restart their own async elector, from any task, without deadlock.

The calls that could hang run in their own task, awaited with a bound: one
still pending after :data:`HANG_GUARD` real seconds is reported as
``"deadlocked"`` (and cancelled). That is a liveness check, not a timing
claim. ``release()`` and ``stop()`` may wait for a store call in flight,
never for a user callback; the lease is freed in the store when they return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from mongoelector import LeaderInfo
from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import LeaseRequest, MemoryBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import settle

#: Real seconds after which a call that has not returned counts as deadlocked (a hang guard).
HANG_GUARD = 5.0


async def outcome(call: Coroutine[Any, Any, object], *, limit: float = HANG_GUARD) -> str:
    """Run ``call`` in its own task: ``"done"`` if it returns within ``limit`` s, else
    ``"deadlocked"`` (the task is then cancelled). A call that raises reports ``"raised ..."``.
    """
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=limit)
        return "deadlocked"
    error = task.exception()
    return f"raised {error!r}" if error is not None else "done"


async def until(predicate: Callable[[], bool], *, limit: float = HANG_GUARD) -> bool:
    """Let other tasks run (up to ``limit`` real seconds, a hang guard) until ``predicate()``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not predicate():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.001)
    return True


class Calls:
    """Records callbacks in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def add(self, name: str, value: object = None) -> None:
        self.events.append((name, value))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def lease_is_free(backend: MemoryBackend, key: str = "svc") -> bool:
    record = backend.get(key)
    return record is None or record.owner is None


def loop_tasks(key: str = "svc") -> list[asyncio.Task[object]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name() == f"mongoelector-{key}" and not t.done()
    ]


# --- scenarios shared by the tests and the mutation tests ------------------------------------


async def release_while_on_leader_loss_stops_from_another_task(*, limit: float = HANG_GUARD) -> str:
    """A task awaits ``release()``; ``on_leader_loss`` awaits ``stop()`` run in a third task.

    Returns ``"done"`` when every call returned and the lease is free, else what went wrong.
    """
    clock = FakeClock()
    backend = MemoryBackend(clock)
    stops: list[str] = []

    async def on_leader_loss() -> None:
        stops.append(await outcome(node.stop(), limit=limit))

    node = AsyncLeaderElector("svc", backend, clock=clock, on_leader_loss=on_leader_loss)
    await node.start()
    released = await outcome(node.release(), limit=2 * limit)
    if released != "done":
        return released
    if stops != ["done"]:
        return stops[0] if stops else "on_leader_loss never ran"
    return "done" if lease_is_free(backend) and not node.running else "lease still held"


async def stop_while_on_leader_waits_for_the_stop(*, limit: float = HANG_GUARD) -> str:
    """``on_leader`` waits until a ``stop()`` made by another task has returned.

    Returns ``"done"`` if ``stop()`` returned while ``on_leader`` was still
    waiting, the lease was free by then, and ``on_leader_loss`` then ran once.
    """
    clock = FakeClock()
    backend = MemoryBackend(clock)
    calls = Calls()
    entered, stop_returned = asyncio.Event(), asyncio.Event()

    async def on_leader() -> None:
        calls.add("leader")
        entered.set()
        await stop_returned.wait()

    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=on_leader,
        on_leader_loss=lambda: calls.add("loss"),
    )
    starting = asyncio.create_task(node.start())
    await entered.wait()
    stopped = await outcome(node.stop(), limit=limit)
    free = lease_is_free(backend)
    stop_returned.set()
    await asyncio.wait({starting}, timeout=limit)
    if stopped != "done":
        return stopped
    if not free:
        return "stop() returned with the lease still held"
    if not await until(lambda: loop_tasks() == [], limit=limit):
        return "the loop did not end after on_leader returned"
    return "done" if calls.names() == ["leader", "loss"] else f"callbacks ran {calls.names()}"


# --- the reported deadlock ------------------------------------------------------------------


async def test_release_from_another_task_while_on_leader_loss_awaits_stop(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[AsyncLeaderElector] = []
    calls = Calls()

    async def on_leader_loss() -> None:
        calls.add("loss")
        await holder[0].stop()

    node = AsyncLeaderElector("svc", backend, clock=clock, on_leader_loss=on_leader_loss)
    holder.append(node)
    await node.start()
    assert node.is_leader
    assert await outcome(node.release()) == "done"
    assert lease_is_free(backend)
    assert not node.running and not node.is_leader
    assert calls.names() == ["loss"]
    assert await until(lambda: loop_tasks() == [])


async def test_release_from_another_task_while_on_leader_loss_stops_from_a_third_task() -> None:
    assert await release_while_on_leader_loss_stops_from_another_task() == "done"


# --- stop() and release() from inside callbacks -----------------------------------------------


def acting(
    holder: list[AsyncLeaderElector], action: str, how: str, results: list[str]
) -> Callable[..., Awaitable[None] | None]:
    """A callback that, the first time, calls ``holder[0].<action>()`` the way ``how`` says."""

    async def awaited(*_: object) -> None:
        if results:
            return
        results.append("pending")
        call = getattr(holder[0], action)()
        if how == "in another task":
            results[0] = await outcome(call)
        else:
            await call
            results[0] = "done"

    def scheduled(*_: object) -> None:
        if results:
            return
        results.append("pending")
        task = asyncio.get_running_loop().create_task(getattr(holder[0], action)())
        task.add_done_callback(lambda t: results.__setitem__(0, "done"))

    return scheduled if how == "scheduled by a plain function" else awaited


@pytest.mark.parametrize("callback", ["on_leader", "on_new_leader", "on_loop"])
@pytest.mark.parametrize("action", ["stop", "release"])
@pytest.mark.parametrize(
    "how", ["awaited in the loop's task", "in another task", "scheduled by a plain function"]
)
async def test_a_callback_may_stop_or_release_its_elector(
    backend: MemoryBackend, clock: FakeClock, callback: str, action: str, how: str
) -> None:
    holder: list[AsyncLeaderElector] = []
    results: list[str] = []
    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        **{callback: acting(holder, action, how, results)},  # type: ignore[arg-type]
    )
    holder.append(node)
    assert await outcome(node.start()) == "done"
    try:
        assert await until(lambda: results == ["done"])
        assert await until(lambda: lease_is_free(backend) and not node.is_leader)
        assert node.running is (action == "release")
    finally:
        assert await outcome(node.stop()) == "done"
    assert await until(lambda: loop_tasks() == [])


async def test_stop_from_on_leader_in_a_poll_frees_the_lease_and_fires_on_leader_loss_once(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[AsyncLeaderElector] = []
    calls = Calls()

    async def on_leader() -> None:
        calls.add("leader")
        await holder[0].stop()

    node = AsyncLeaderElector(
        "svc", backend, clock=clock, on_leader=on_leader, on_leader_loss=lambda: calls.add("loss")
    )
    holder.append(node)
    await node.poll()
    assert calls.names() == ["leader", "loss"]
    assert lease_is_free(backend) and not node.is_leader


async def test_release_from_on_leader_then_the_running_elector_leads_again(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[AsyncLeaderElector] = []
    calls = Calls()

    async def on_leader() -> None:
        calls.add("leader", holder[0].token)
        if len(calls.events) == 1:
            await holder[0].release()

    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=on_leader,
        on_leader_loss=lambda: calls.add("loss"),
        on_new_leader=lambda info: calls.add("new", info.token),
    )
    holder.append(node)
    await node.start()
    try:
        assert calls.names() == ["leader", "loss"]
        assert lease_is_free(backend) and node.running
        await settle()
        clock.advance(node.next_poll_at - clock.monotonic())  # the back-off after a release
        assert await until(lambda: len(calls.events) == 4)
        assert calls.events == [("leader", 1), ("loss", None), ("leader", 2), ("new", 2)]
    finally:
        assert await outcome(node.stop()) == "done"


async def test_start_from_on_leader_loss_after_stop_runs_a_new_loop(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[AsyncLeaderElector] = []
    calls = Calls()

    async def on_leader_loss() -> None:
        calls.add("loss")
        if calls.names().count("loss") == 1:
            await holder[0].start()

    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=lambda: calls.add("leader", holder[0].token),
        on_leader_loss=on_leader_loss,
    )
    holder.append(node)
    await node.start()
    assert await outcome(node.stop()) == "done"
    try:
        assert node.running and node.token == 2
        assert await until(lambda: len(calls.events) == 3)
        assert calls.events == [("leader", 1), ("loss", None), ("leader", 2)]
        assert len(loop_tasks()) == 1
    finally:
        assert await outcome(node.stop()) == "done"
    assert lease_is_free(backend)
    assert await until(lambda: loop_tasks() == [])


# --- release() and stop() never wait for a callback ------------------------------------------


async def test_release_returns_while_on_leader_waits_for_it_and_on_leader_loss_follows(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    calls = Calls()
    entered, release_returned = asyncio.Event(), asyncio.Event()

    async def on_leader() -> None:
        calls.add("leader")
        entered.set()
        await release_returned.wait()

    node = AsyncLeaderElector(
        "svc", backend, clock=clock, on_leader=on_leader, on_leader_loss=lambda: calls.add("loss")
    )
    starting = asyncio.create_task(node.start())
    try:
        await entered.wait()
        assert await outcome(node.release()) == "done"
        assert lease_is_free(backend) and not node.is_leader
        assert calls.names() == ["leader"]  # on_leader_loss waits for its turn, release() doesn't
        release_returned.set()
        assert await until(lambda: calls.names() == ["leader", "loss"])
    finally:
        release_returned.set()
        await asyncio.wait({starting}, timeout=HANG_GUARD)
        assert await outcome(node.stop()) == "done"


async def test_stop_returns_while_on_leader_waits_for_it() -> None:
    assert await stop_while_on_leader_waits_for_the_stop() == "done"


# --- a callback whose news is stale by its turn ---------------------------------------------


async def test_on_new_leader_naming_this_node_is_skipped_once_on_leader_released(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[AsyncLeaderElector] = []
    calls = Calls()

    async def on_leader() -> None:
        calls.add("leader")
        await holder[0].release()

    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=on_leader,
        on_leader_loss=lambda: calls.add("loss"),
        on_new_leader=lambda info: calls.add("new", info),
    )
    holder.append(node)
    await node.poll()
    assert calls.names() == ["leader", "loss"]
    assert lease_is_free(backend)


async def test_on_new_leader_still_names_this_node_when_it_keeps_leading(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    seen: list[LeaderInfo] = []
    node = AsyncLeaderElector("svc", backend, clock=clock, on_new_leader=seen.append)
    await node.poll()
    assert [info.uuid for info in seen] == [node.uuid]


async def test_a_term_over_before_on_leader_gets_its_turn_fires_neither_on_leader_nor_its_loss(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    """A running callback holds up the ones after it; a term that ended meanwhile is skipped."""
    calls = Calls()
    in_loop, go_on = asyncio.Event(), asyncio.Event()

    async def on_loop() -> None:
        calls.add("loop")
        if calls.names().count("loop") == 1:
            in_loop.set()
            await go_on.wait()

    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=lambda: calls.add("leader"),
        on_leader_loss=lambda: calls.add("loss"),
        on_loop=on_loop,
        report_status=False,
    )
    backend.compare_and_set(LeaseRequest(key="svc", owner="other", ttl=15))  # another leads
    starting = asyncio.create_task(node.start())
    await in_loop.wait()
    backend.release("svc", "other")
    assert await outcome(node.poll()) == "done"  # gains leadership: on_leader waits behind on_loop
    assert node.is_leader
    assert await outcome(node.release()) == "done"  # ... and the term is over before its turn
    go_on.set()
    await asyncio.wait({starting}, timeout=HANG_GUARD)
    assert starting.done()
    assert calls.names() == ["loop", "loop"]
    assert await outcome(node.stop()) == "done"


# --- on_leader_loss before the lease is freed, when it can run at once -----------------------


@pytest.mark.parametrize("action", ["release", "stop"])
async def test_on_leader_loss_runs_before_the_lease_is_freed_when_nothing_else_runs(
    backend: MemoryBackend, clock: FakeClock, action: str
) -> None:
    held_during_loss: list[bool] = []
    node = AsyncLeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader_loss=lambda: held_during_loss.append(not lease_is_free(backend)),
    )
    await node.poll()
    await getattr(node, action)()
    assert held_during_loss == [True]
    assert lease_is_free(backend)
