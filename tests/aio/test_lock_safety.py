"""AsyncLock's two core promises against tasks and networks that are not gentle.

The asyncio mirror of ``tests/sync/test_lock_safety.py``: never two holders
acting at once, and a strictly greater fencing token for every acquisition,
after a late release, a release racing an acquire, one ``AsyncLock`` shared
by tasks, a re-acquire after the renew deadline, an acquire whose writes all
fail ambiguously, an acquire cancelled while its write is in flight, and a
release of unknown outcome (after an ambiguous or a cancelled acquire) that
races another task's acquire of the same object. Each
scenario runs on ``MemoryBackend`` (called inline) and on
``AsyncMongoBackend`` over mongomock (classic and pipeline paths).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import mongomock
import pytest

from mongoelector import AcquireTimeout, AmbiguousOutcome, LockExists
from mongoelector.aio import AsyncLock, as_async_backend
from mongoelector.backends import AsyncMongoBackend, MemoryBackend
from mongoelector.backends.async_protocol import AsyncStorageBackend
from mongoelector.core.lock_machine import NON_BLOCKING_CALL_LIMIT
from mongoelector.testing import FakeClock
from tests.backends.mongo_pipeline_sim import install
from tests.backends.mongomock_async import AsyncMockDatabase
from tests.lock_safety_support import AsyncWrapped

TTL = 30.0
ASYNC_STORE_KINDS = ["memory", "async-mongomock-classic", "async-mongomock-pipeline"]


@dataclass
class AsyncStore:
    kind: str
    backend: AsyncStorageBackend
    clock: FakeClock


@pytest.fixture(params=ASYNC_STORE_KINDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncStore:
    kind: str = request.param
    clock = FakeClock()
    if kind == "memory":
        return AsyncStore(kind, as_async_backend(MemoryBackend(clock)), clock)
    pipeline = kind.endswith("-pipeline")
    if pipeline:
        install(monkeypatch, clock.now)
    database = AsyncMockDatabase(mongomock.MongoClient()["mongoelector_tests"])
    return AsyncStore(kind, AsyncMongoBackend(database, clock=clock, pipeline=pipeline), clock)


@pytest.fixture
def wrapped(store: AsyncStore) -> AsyncWrapped:
    return AsyncWrapped(store.backend)


def lock_on(backend: AsyncStorageBackend | AsyncWrapped, store: AsyncStore) -> AsyncLock:
    return AsyncLock("job", backend, ttl=TTL, clock=store.clock)  # type: ignore[arg-type]


async def another_lock_is_refused(store: AsyncStore) -> bool:
    try:
        await lock_on(store.backend, store).acquire(blocking=False)
    except LockExists:
        return True
    return False


async def test_a_late_release_cannot_make_two_holders(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 1: release() is lost in flight, the same lock acquires, the release lands."""
    lock = lock_on(wrapped, store)
    await lock.acquire(blocking=False)
    first = lock.ensure()
    wrapped.lose_release = True
    with pytest.raises(AmbiguousOutcome):
        await lock.release()

    assert await lock.acquire(blocking=False)
    await wrapped.land_lost_releases()

    assert lock.ensure() > first
    assert await another_lock_is_refused(store)


async def test_a_slow_release_racing_an_acquire_of_the_same_object(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 2: task A's release is slow; task B acquires meanwhile; the release lands."""
    lock = lock_on(wrapped, store)
    await lock.acquire(blocking=False)
    first = lock.ensure()
    wrapped.hold_release = True
    releaser = asyncio.create_task(lock.release())
    await wrapped.held.wait()

    assert await lock.acquire(blocking=False)
    wrapped.let_go()
    await releaser

    token = lock.ensure()
    assert token > first
    record = await store.backend.get("job")
    assert record is not None and record.owner == lock.uuid and record.token == token
    assert await another_lock_is_refused(store)


async def test_a_shared_lock_object_admits_one_task(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 3: two tasks of one event loop call acquire(blocking=False) at once."""
    lock = lock_on(wrapped, store)
    wrapped.hold_cas = True
    results: list[object] = []

    async def acquire() -> None:
        try:
            results.append(await lock.acquire(blocking=False))
        except LockExists as error:
            results.append(error)

    first = asyncio.create_task(acquire())
    await wrapped.held.wait()
    await acquire()  # the second caller, while the first is inside the store call
    wrapped.let_go()
    await first

    assert results.count(True) == 1
    assert sum(isinstance(result, LockExists) for result in results) == 1
    assert wrapped.calls["compare_and_set"] == 1
    assert lock.ensure() > 0


async def test_a_blocking_acquire_of_a_shared_object_waits_for_the_release(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    lock = lock_on(wrapped, store)
    await lock.acquire(blocking=False)
    token = lock.ensure()
    with pytest.raises(AcquireTimeout):
        await lock.acquire(timeout=5, step=1)
    assert lock.ensure() == token  # the waiting caller did not disturb the holder
    assert wrapped.calls == {"compare_and_set": 1}  # nor call the store on its behalf
    record = await store.backend.get("job")
    assert record is not None and record.token == token


async def test_reacquiring_after_the_renew_deadline_gets_a_greater_token(
    store: AsyncStore,
) -> None:
    """Scenario 4: the deadline passes before the store's expiry; acquire again."""
    lock = lock_on(store.backend, store)
    await lock.acquire(blocking=False)
    first = lock.ensure()
    store.clock.advance(lock.renew_deadline)
    assert lock.token is None

    assert await lock.acquire(blocking=False)

    assert lock.ensure() > first
    record = await store.backend.get("job")
    assert record is not None and record.token == lock.ensure()


async def test_a_non_blocking_acquire_is_bounded_when_every_write_is_ambiguous(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 5: writes apply but every reply is lost; reads work."""
    wrapped.ambiguous = {"compare_and_set", "renew"}
    lock = lock_on(wrapped, store)

    with pytest.raises(AmbiguousOutcome):
        await lock.acquire(blocking=False)

    assert sum(wrapped.calls.values()) <= NON_BLOCKING_CALL_LIMIT
    wrapped.ambiguous = set()
    assert await lock.release() is True
    assert await lock_on(store.backend, store).acquire(blocking=False)


async def test_a_timeout_bounds_an_acquire_whose_writes_are_all_ambiguous(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    wrapped.ambiguous = {"compare_and_set", "renew"}
    lock = lock_on(wrapped, store)
    start = store.clock.monotonic()

    with pytest.raises(AmbiguousOutcome):
        await lock.acquire(timeout=1.0, step=0.25)

    assert store.clock.monotonic() - start <= 1.0
    assert sum(wrapped.calls.values()) <= 20
    wrapped.ambiguous = set()
    assert await lock.release() is True
    assert await lock_on(store.backend, store).acquire(blocking=False)


async def test_an_acquire_cancelled_while_its_write_is_in_flight_is_freed_by_release(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 7: the task is cancelled inside compare_and_set; the write lands afterwards."""
    lock = lock_on(wrapped, store)
    wrapped.hold_cas = True
    task = asyncio.create_task(lock.acquire(blocking=False))
    await wrapped.held.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lock.token is None

    await wrapped.land_lost_writes()  # the request reaches the store after all
    record = await store.backend.get("job")
    assert record is not None and record.owner == lock.uuid

    assert await lock.release() is True
    assert await lock_on(store.backend, store).acquire(blocking=False)


async def test_the_clean_up_of_a_cancelled_acquire_spares_a_holding_another_task_took(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 8: while a cancelled acquire's clean-up release reads the record, another
    task of the same object acquires; the clean-up must not free that new holding."""
    lock = lock_on(wrapped, store)
    wrapped.hold_cas = True
    task = asyncio.create_task(lock.acquire(blocking=False))
    await wrapped.held.wait()
    wrapped.held.clear()
    wrapped.hold_get = True
    task.cancel()
    await wrapped.held.wait()  # the clean-up release is reading the record

    assert await lock.acquire(blocking=False)  # another task of the object acquires
    token = lock.ensure()
    wrapped.let_go()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert lock.ensure() == token
    record = await store.backend.get("job")
    assert record is not None and record.owner == lock.uuid and record.token == token
    assert await another_lock_is_refused(store)


async def test_a_release_of_unknown_outcome_spares_a_holding_another_task_just_took(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """Scenario 6: release() after an ambiguous acquire reads the record while another
    task of the same object acquires; the release must not free that new holding."""
    wrapped.ambiguous = {"compare_and_set", "renew"}
    lock = lock_on(wrapped, store)
    with pytest.raises(AmbiguousOutcome):
        await lock.acquire(blocking=False)
    wrapped.ambiguous = set()
    wrapped.hold_get = True
    releaser = asyncio.create_task(lock.release())
    await wrapped.held.wait()  # the release is reading the record

    assert await lock.acquire(blocking=False)  # another task of the object acquires
    token = lock.ensure()
    wrapped.let_go()
    await releaser

    assert lock.ensure() == token
    record = await store.backend.get("job")
    assert record is not None and record.owner == lock.uuid and record.token == token
    assert await another_lock_is_refused(store)


#: Passes of the event loop a worker spends inside its critical section.
CRITICAL_SECTION_YIELDS = 10


async def tasks_inside_at_once(lock: AsyncLock, tasks: int = 8, rounds: int = 25) -> int:
    """Run ``tasks`` workers looping acquire / critical section / release on one object.

    The critical section yields to the loop :data:`CRITICAL_SECTION_YIELDS`
    times, long enough for another worker's acquire to make several store
    calls while one is inside.
    """
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        for _ in range(rounds):
            await lock.acquire(step=0.25)
            inside += 1
            most = max(most, inside)
            for _ in range(CRITICAL_SECTION_YIELDS):
                await asyncio.sleep(0)
            inside -= 1
            await lock.release()

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return most


async def test_eight_tasks_sharing_one_lock_are_never_inside_together(
    store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    assert await tasks_inside_at_once(lock_on(wrapped, store)) == 1


async def test_mutation_without_the_object_mutex_the_check_sees_two_inside(
    monkeypatch: pytest.MonkeyPatch, store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """The object-level mutex switched off: the shared-object check must fail."""
    from mongoelector._common.lock_base import LockBase

    if store.kind != "memory":
        pytest.skip("one store is enough to show the check can fail")
    monkeypatch.setattr(LockBase, "_claim", lambda self, run, *, force: True)
    with pytest.raises(AssertionError):
        await test_a_shared_lock_object_admits_one_task(store, wrapped)


async def test_mutation_without_the_object_mutex_the_loop_sees_two_inside(
    monkeypatch: pytest.MonkeyPatch, store: AsyncStore, wrapped: AsyncWrapped
) -> None:
    """The object-level mutex switched off: the looping workers are seen inside together."""
    from mongoelector._common.lock_base import LockBase

    if store.kind != "memory":
        pytest.skip("one store is enough to show the check can fail")
    monkeypatch.setattr(LockBase, "_claim", lambda self, run, *, force: True)
    assert await tasks_inside_at_once(lock_on(wrapped, store)) > 1
