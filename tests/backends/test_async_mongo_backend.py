"""AsyncMongoBackend specifics: arguments, the async-only hooks, and the asyncio API on top.

The protocol's semantics run on this backend in the shared mongomock suites
(``mongo_support`` kinds ``async-mongomock-*``) and on the wire in
``test_mongo_wire.py``; here is what only the async backend has. Async tests
run on mongomock through the facade of :mod:`mongomock_async`, on a FakeClock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import mongomock
import pymongo
import pytest

from mongoelector import TimeOffsetError
from mongoelector.aio import AsyncLeaderElector, AsyncLock, InlineBackend, as_async_backend
from mongoelector.backends import (
    AsyncMongoBackend,
    BackendUnavailable,
    LeaseRequest,
    MemoryBackend,
    MongoBackend,
)
from mongoelector.backends.async_protocol import AsyncMemberStatusBackend, AsyncStorageBackend
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for
from tests.backends.mongomock_async import AsyncMockDatabase

TTL = 10.0


@pytest.fixture
def database() -> Any:
    return mongomock.MongoClient()["async_backend_tests"]


def make(database: Any, clock: FakeClock, **options: Any) -> AsyncMongoBackend:
    return AsyncMongoBackend(AsyncMockDatabase(database), clock=clock, **options)


# --- arguments ------------------------------------------------------------------------------


def test_it_implements_the_async_protocols(database: Any, clock: FakeClock) -> None:
    backend = make(database, clock)
    assert isinstance(backend, AsyncStorageBackend)
    assert isinstance(backend, AsyncMemberStatusBackend)
    assert as_async_backend(backend) is backend


def test_a_sync_database_is_refused_naming_the_kind_wanted(database: Any) -> None:
    with pytest.raises(TypeError, match="async"):
        AsyncMongoBackend(database)
    with pytest.raises(TypeError, match="async"):
        AsyncMongoBackend(pymongo.MongoClient(connect=False)["db"])


def test_a_client_is_not_a_database() -> None:
    client: Any = pymongo.AsyncMongoClient(connect=False)
    with pytest.raises(TypeError, match="not a client"):
        AsyncMongoBackend(client)


def test_an_async_pymongo_database_is_accepted_without_connecting() -> None:
    client: Any = pymongo.AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    backend = AsyncMongoBackend(client["app"], "locks", status_collection=None)
    assert backend.collection.name == "locks"
    assert backend.uses_pipeline is None
    assert repr(backend) == (
        "AsyncMongoBackend(database='app', collection='locks', status_collection=None)"
    )


@pytest.mark.parametrize("options", [{"pipeline": "yes"}, {"timeout": 0}, {"acquire_check": 3}])
def test_bad_settings_are_refused_as_for_the_sync_backend(
    database: Any, options: dict[str, Any]
) -> None:
    with pytest.raises((TypeError, ValueError)):
        make(database, FakeClock(), **options)


# --- the async-only hooks -------------------------------------------------------------------


async def test_an_acquire_check_may_be_a_coroutine(database: Any, clock: FakeClock) -> None:
    checks: list[str] = []

    async def check() -> None:
        await asyncio.sleep(0)
        checks.append("checked")
        if len(checks) > 1:
            raise TimeOffsetError("clock too far off")

    backend = make(database, clock, acquire_check=check)
    assert (await backend.compare_and_set(LeaseRequest(key="a", owner="me", ttl=TTL))).acquired
    with pytest.raises(BackendUnavailable, match="clock too far off"):
        await backend.compare_and_set(LeaseRequest(key="b", owner="me", ttl=TTL))
    assert checks == ["checked", "checked"]
    assert database["mongolocker"].count_documents({}) == 1


async def test_server_time_comes_from_hello_with_its_uncertainty(
    database: Any, clock: FakeClock
) -> None:
    backend = make(database, clock)
    hellos: list[float] = []

    async def hello() -> dict[str, Any]:
        hellos.append(clock.monotonic())
        clock.advance(0.01)
        local_time = clock.now() + timedelta(seconds=3)
        clock.advance(0.01)
        return {"localTime": local_time.replace(tzinfo=None), "maxWireVersion": 8}

    backend._hello = hello  # type: ignore[method-assign]
    estimate = await backend.time_estimate()
    expected = clock.now() + timedelta(seconds=3)
    assert abs((estimate.time - expected).total_seconds()) <= estimate.uncertainty
    assert backend.uses_pipeline is True
    offset = await backend.clock_offset()
    assert offset is not None and abs(offset[0] - 3) <= offset[1]
    assert len(hellos) == 2


async def test_a_retry_pause_advances_a_fake_clock_instead_of_sleeping(
    database: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [pymongo.errors.AutoReconnect("reset"), pymongo.errors.AutoReconnect("reset")]
    find_one = mongomock.collection.Collection.find_one

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return find_one(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one", flaky)
    backend = make(database, clock)
    assert await backend.get("job") is None
    assert clock.monotonic() == pytest.approx(0.05 + 0.1)


# --- only async stores on the event loop ----------------------------------------------------


def test_the_sync_mongo_backend_is_refused_pointing_to_the_async_one(database: Any) -> None:
    sync_backend = MongoBackend(database, clock=FakeClock())
    with pytest.raises(TypeError, match=r"block the event loop.*AsyncMongoBackend"):
        as_async_backend(sync_backend)
    with pytest.raises(TypeError, match="AsyncMongoBackend"):
        AsyncLock("job", sync_backend)
    with pytest.raises(TypeError, match="AsyncMongoBackend"):
        AsyncLeaderElector("job", sync_backend)


def test_stores_that_never_wait_on_a_network_are_called_inline(tmp_path: Path) -> None:
    assert isinstance(as_async_backend(MemoryBackend()), InlineBackend)
    with SQLiteBackend(tmp_path / "leases.sqlite", busy_timeout=0.25) as sqlite:
        assert isinstance(as_async_backend(sqlite), InlineBackend)


# --- the asyncio API on top -----------------------------------------------------------------


async def test_an_async_elector_leads_reports_status_and_hands_over(
    database: Any, clock: FakeClock
) -> None:
    first = AsyncLeaderElector("svc", make(database, clock), clock=clock)
    second = AsyncLeaderElector("svc", make(database, clock), clock=clock)
    await first.start()
    await second.start()
    assert first.is_leader and not second.is_leader
    detail = await second.cluster_detail()
    assert detail["leader"]["uuid"] == first.uuid
    assert len(detail["member_detail"]) == 2
    await first.stop()
    await run_for(clock, second.retry_period)
    assert second.is_leader
    assert second.token is not None and first.token is None
    await second.stop()
    assert database["mongolocker"].find_one({"_id": "svc"})["locked"] is False


async def test_an_async_lock_on_mongo_fences_and_releases(database: Any, clock: FakeClock) -> None:
    backend = make(database, clock)
    async with AsyncLock("job", backend, ttl=TTL, clock=clock) as first:
        assert await first.owned()
        token = first.ensure()
    async with AsyncLock("job", make(database, clock), ttl=TTL, clock=clock) as second:
        assert second.ensure() > token
    assert not await first.locked()
