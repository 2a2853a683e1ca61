"""Test helpers for the MongoDB backends: stores to run one test on, and a 1.x node.

A *store* is a backend plus the fake clock that is its server time and a way to
delete a key's record behind the backend's back. The same test functions run
on ``MemoryBackend`` (the reference), ``MongoBackend`` on mongomock with
classic updates (read, then compare-and-set), ``MongoBackend`` on mongomock
with server-side pipelines evaluated by :mod:`mongo_pipeline_sim`, and
``AsyncMongoBackend`` on both, through an async facade over mongomock
(:mod:`mongomock_async`). Each mongomock command of a store runs whole, as on a
server, whichever threads call it (:mod:`mongomock_atomic`). An async store's
backend is seen through :class:`~mongoelector.testing.aio.BlockingBackend`: each
call runs on one shared event loop thread and the test waits for it.
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import mongomock
import pytest
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from mongoelector.backends import AsyncMongoBackend, MemoryBackend, MongoBackend, StorageBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend, EventLoopThread
from tests.backends.mongo_pipeline_sim import install
from tests.backends.mongomock_async import AsyncMockDatabase
from tests.backends.mongomock_atomic import make_commands_atomic

ASYNC_MONGO_KINDS = ["async-mongomock-classic", "async-mongomock-pipeline"]
MONGO_KINDS = ["mongomock-classic", "mongomock-pipeline", *ASYNC_MONGO_KINDS]
STORE_KINDS = ["memory", *MONGO_KINDS]

_loop: EventLoopThread | None = None


def event_loop_thread() -> EventLoopThread:
    """The event loop every async store of this test process runs on (closed at exit)."""
    global _loop  # noqa: PLW0603
    if _loop is None:
        _loop = EventLoopThread(name="test-stores-event-loop")
        atexit.register(_loop.close)
    return _loop


@dataclass
class Store:
    kind: str
    backend: Any
    clock: FakeClock
    delete: Callable[[str], None]
    collection: Any = None
    #: Another backend on the same data, as another process would have.
    peer: Callable[[], Any] | None = None

    @property
    def storage(self) -> StorageBackend:
        backend: StorageBackend = self.backend
        return backend


def make_store(kind: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Store:
    """A fresh store of ``kind`` (one of :data:`STORE_KINDS`) on a new fake clock."""
    clock = FakeClock()
    if kind == "memory":
        memory = MemoryBackend(clock)
        return Store(
            kind, memory, clock, lambda key: memory.delete(key) and None, peer=lambda: memory
        )
    make_commands_atomic(monkeypatch)  # threads share the store, as they would a server
    database = mongomock.MongoClient()["mongoelector_tests"]
    pipeline = kind.endswith("-pipeline")
    if pipeline:
        install(monkeypatch, clock.now)

    def peer() -> MongoBackend | BlockingBackend:
        if kind in ASYNC_MONGO_KINDS:
            backend = AsyncMongoBackend(
                AsyncMockDatabase(database), clock=clock, pipeline=pipeline, **options
            )
            return BlockingBackend(backend, event_loop_thread())
        return MongoBackend(database, clock=clock, pipeline=pipeline, **options)

    collection = database[options.get("collection", "mongolocker")]

    def delete(key: str) -> None:
        collection.delete_one({"_id": key})

    return Store(kind, peer(), clock, delete, collection, peer)


class LegacyNode:
    """Acts on a lease collection exactly as a mongoelector 1.x ``MongoLocker`` does.

    Same documents (``_id, locked, host, uuid, pid, ts_created, ts_expire``,
    written with timezone-aware UTC times from the host clock), same queries:
    acquire inserts (a duplicate key means held) or, forced, replaces with
    upsert; release deletes; touch moves ``ts_expire`` if still owned and
    live. ``clock`` stands for the 1.x host's clock.
    """

    def __init__(self, collection: Any, key: str, clock: FakeClock, ttl: float = 30) -> None:
        self.collection = collection
        self.key = key
        self.clock = clock
        self.ttl = ttl
        self.uuid = str(uuid.uuid4())
        self.host = "legacy-host"
        self.pid = 4242

    def _now(self) -> datetime:
        return self.clock.now()

    def acquire(self, *, force: bool = False) -> bool:
        created = self._now()
        payload = {
            "_id": self.key,
            "locked": True,
            "host": self.host,
            "uuid": self.uuid,
            "pid": self.pid,
            "ts_created": created,
            "ts_expire": created + timedelta(seconds=self.ttl),
        }
        if force:
            self.collection.find_one_and_replace(
                {"_id": self.key}, payload, upsert=True, return_document=ReturnDocument.AFTER
            )
            return True
        try:
            self.collection.insert_one(payload)
        except DuplicateKeyError:
            return False
        return True

    def locked(self) -> bool:
        found = self.collection.find_one({"_id": self.key, "ts_expire": {"$gt": self._now()}})
        return bool(found and found.get("locked"))

    def owned(self) -> bool:
        query = {
            "_id": self.key,
            "uuid": self.uuid,
            "locked": True,
            "ts_expire": {"$gt": self._now()},
        }
        return self.collection.find_one(query) is not None

    def touch(self) -> datetime | None:
        query = {
            "_id": self.key,
            "uuid": self.uuid,
            "locked": True,
            "ts_expire": {"$gt": self._now()},
        }
        update = {"$set": {"ts_expire": self._now() + timedelta(seconds=self.ttl)}}
        found = self.collection.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return found["ts_expire"] if found else None

    def release(self, *, force: bool = False) -> None:
        query = {"_id": self.key} if force else {"_id": self.key, "uuid": self.uuid}
        self.collection.delete_many(query)

    def sweep_expired(self) -> None:
        """What the TTL monitor (or an old 1.x node's cleanup) does: delete expired documents."""
        self.collection.delete_many({"ts_expire": {"$lt": self._now()}})


class SkewedServer:
    """Answers ``hello`` like a server whose clock is ``skew`` seconds ahead of ``clock``."""

    def __init__(self, clock: FakeClock, skew: float, wire: int = 7, round_trip: float = 0.02):
        self.clock = clock
        self.skew = skew
        self.wire = wire
        self.round_trip = round_trip
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        self.clock.advance(self.round_trip / 2)
        local_time = self.clock.now() + timedelta(seconds=self.skew)
        reply = {"localTime": local_time.replace(tzinfo=None), "maxWireVersion": self.wire}
        self.clock.advance(self.round_trip / 2)
        return reply
