"""The held-lease failover of ``test_mongo_failover_real_server.py``, for ``AsyncLock``.

An ``AsyncLock`` with ``auto_renew`` on ``AsyncMongoBackend`` holds a lease
while the primary steps down. Afterwards it still holds with the same token
(renewed through the new primary), or it reported the loss; either way no lease
leaks and no token goes down. The step-down itself is sent by a plain sync
client (``mongo_failover_support``). Runs only on a replica set named by
``MONGOELECTOR_TEST_URI``; the scenario runs under its own ``asyncio.run``, so
lease-length waits are bounded by the lease times, not by the suite's guard for
``async def`` tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from mongoelector import LockExists, LockLost
from mongoelector.aio import AsyncLock
from mongoelector.backends import AsyncMongoBackend, LeaseRecord
from mongoelector.errors import AmbiguousOutcome, BackendError
from tests.backends.mongo_failover_support import (
    URI,
    connect,
    require_failover,
    step_down,
    strictly_increasing,
    wait_for_primary,
)

pytestmark = [
    pytest.mark.skipif(
        not URI, reason="set MONGOELECTOR_TEST_URI to a MongoDB replica set to run failover tests"
    ),
    pytest.mark.slow,
]

KEY = "job"
TTL = 8.0
SLACK = 5.0


@pytest.fixture
def client() -> Iterator[pymongo.MongoClient[Any]]:
    client = connect()
    yield client
    client.close()


@pytest.fixture
def database_name(client: pymongo.MongoClient[Any]) -> Iterator[str]:
    require_failover(client)
    name = f"mongoelector_async_failover_{uuid.uuid4().hex[:12]}"
    yield name
    wait_for_primary(client)
    client.drop_database(name)


async def read(backend: AsyncMongoBackend) -> LeaseRecord | None:
    """The lease record, read again while the store is still failing over (bounded)."""
    deadline = time.monotonic() + SLACK
    while True:
        try:
            return await backend.get(KEY)
        except BackendError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


async def contend(lock: AsyncLock, holder: AsyncLock) -> int | None:
    """Try to take the lease every quarter second until it does; the holder's token at the
    moment it was taken (``None``: the holder no longer trusted its holding then)."""
    while True:
        try:
            if await lock.acquire(blocking=False):
                return holder.token
        except AmbiguousOutcome:
            with contextlib.suppress(BackendError):
                await lock.release()
        except (LockExists, BackendError):
            pass
        await asyncio.sleep(0.25)


async def wait_lost(holder: AsyncLock, timeout: float) -> bool:
    """True once the holder reported its holding lost; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not holder.lost.is_set():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def held_lease_through_a_step_down(
    client: pymongo.MongoClient[Any], database_name: str
) -> None:
    async_client: pymongo.AsyncMongoClient[Any] = pymongo.AsyncMongoClient(
        URI, serverSelectionTimeoutMS=60_000
    )
    try:
        database = async_client[database_name]
        backend = AsyncMongoBackend(database)
        losses: list[float] = []
        holder = AsyncLock(
            KEY,
            AsyncMongoBackend(database),
            ttl=TTL,
            auto_renew=True,
            on_lost=lambda: losses.append(time.monotonic()),
        )
        assert await holder.acquire(timeout=TTL)
        first = holder.token
        assert first is not None
        await asyncio.sleep(2 * holder.retry_period)

        await asyncio.to_thread(step_down, client)
        await asyncio.to_thread(wait_for_primary, client)
        after_election = await read(backend)
        contender = AsyncLock(KEY, AsyncMongoBackend(database), ttl=TTL)
        contending = asyncio.create_task(contend(contender, holder))
        lost = await wait_lost(holder, holder.renew_deadline + 3 * holder.retry_period)

        if not lost:
            record = await read(backend)
            assert record is not None and after_election is not None
            assert (record.owner, record.token, holder.token) == (holder.uuid, first, first)
            assert record.expires_at is not None and after_election.expires_at is not None
            assert record.expires_at > after_election.expires_at, "not renewed since the election"
            assert not contending.done(), "a second lock took a lease its holder kept renewing"
            contending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await contending
            assert await holder.release() is True
            successor = AsyncLock(KEY, AsyncMongoBackend(database), ttl=TTL)
            assert await successor.acquire(blocking=False), "the released lease is still held"
        else:
            assert holder.token is None and len(losses) == 1
            with pytest.raises(LockLost):
                holder.ensure()
            done, _ = await asyncio.wait({contending}, timeout=TTL + SLACK)
            assert done, "the lost lease leaked: nobody took it within a ttl"
            assert contending.result() is None, "the holder still trusted a taken lease"
            successor = contender
            assert await holder.release() is False, "the lost holder's release freed its successor"
            assert await successor.owned()

        tokens = [first, successor.token]
        assert await successor.release() is True
        last = AsyncLock(KEY, AsyncMongoBackend(database), ttl=TTL)
        assert await last.acquire(blocking=False), "the released lease is still held"
        tokens.append(last.token)
        assert await last.release() is True
        assert None not in tokens and strictly_increasing(tokens), tokens  # type: ignore[arg-type]
    finally:
        await async_client.close()


def test_an_async_lock_survives_a_step_down_or_reports_its_loss_and_never_leaks(
    client: pymongo.MongoClient[Any], database_name: str
) -> None:
    asyncio.run(held_lease_through_a_step_down(client, database_name))
