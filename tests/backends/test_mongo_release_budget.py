"""A release stays within ``timeout`` even when it must read the server's time afterwards.

A release answers whether it ended a live holding by comparing the holding's
expiry with the server's time. When the backend's estimate of that time is
stale (no ``hello`` for a minute), the release reads it again after its
write; that read has what is left of the release's budget, not one of its
own. Here the write takes most of the budget and the server never answers the
read: the release still returns within ``timeout`` (FakeClock time), from the
older estimate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import mongomock
import mongomock.collection
import pytest
from pymongo.errors import AutoReconnect

from mongoelector.backends import LeaseRequest, MongoBackend
from mongoelector.backends._mongo.clock_reader import ServerClock
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.testing import FakeClock
from tests.backends.mongo_pipeline_sim import install

BUDGET = 5.0  # MongoBackend's default ``timeout``
TTL = 600.0


class TellingDatabase:
    """A mongomock database whose ``hello`` tells the server's time (as MongoDB's does),
    unless ``down``."""

    def __init__(self, inner: Any, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock
        self.down = False
        self.hellos = 0

    def command(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        if name not in ("hello", "isMaster"):
            return self.inner.command(name, *args, **kwargs)
        self.hellos += 1
        if self.down:
            raise AutoReconnect("no reply to hello")
        now = self.clock.now()
        local = now.replace(tzinfo=None, microsecond=now.microsecond // 1000 * 1000)
        return {"ok": 1.0, "isWritablePrimary": True, "maxWireVersion": 21, "localTime": local}

    def get_collection(self, name: str, **options: Any) -> Any:
        return self.inner.get_collection(name, **options)

    def create_collection(self, name: str, **options: Any) -> Any:
        return self.inner.create_collection(name, **options)

    def __getitem__(self, name: str) -> Any:
        return self.get_collection(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def release_with_a_stale_estimate(
    shell: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> tuple[bool, float, int]:
    """(what release answered, FakeClock seconds it took, hellos it sent) when its write
    takes 80 % of the budget and the server's time must then be read, unanswered."""
    install(monkeypatch, clock.now)
    if shell == "plan":
        monkeypatch.setattr(MongoOperations, "quick_release", lambda self, *args: None)
    database = TellingDatabase(mongomock.MongoClient()["budget"], clock)
    backend = MongoBackend(database, clock=clock, pipeline=True)  # type: ignore[arg-type]
    taken = backend.compare_and_set(LeaseRequest(key="job", owner="a", ttl=TTL))
    assert taken.acquired and taken.record is not None
    clock.advance(61)  # the estimate is stale now (older than a minute)
    modify = mongomock.collection.Collection.find_one_and_update

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        clock.advance(BUDGET * 0.8)
        return modify(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one_and_update", slow)
    database.down = True
    hellos = database.hellos
    started = clock.monotonic()
    released = backend.release("job", "a", token=taken.record.token)
    return released, clock.monotonic() - started, database.hellos - hellos


@pytest.mark.parametrize("shell", ["fast", "plan"])
def test_a_release_that_reads_the_time_afterwards_stays_within_its_budget(
    shell: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    released, took, hellos = release_with_a_stale_estimate(shell, clock, monkeypatch)
    assert released is True  # a live holding ended (by the older estimate)
    assert hellos >= 1  # the time was asked for
    assert took <= BUDGET


def test_the_budget_check_sees_the_time_read_given_a_budget_of_its_own(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = ServerClock.read

    def own_budget(self: ServerClock, started: float | None = None) -> Any:
        return read(self)  # the bug: the read starts a budget of its own

    monkeypatch.setattr(ServerClock, "read", own_budget)
    _, took, _ = release_with_a_stale_estimate("fast", clock, monkeypatch)
    assert took > BUDGET


def test_the_telling_database_tells_time_in_milliseconds(clock: FakeClock) -> None:
    database = TellingDatabase(mongomock.MongoClient()["budget"], clock)
    local = database.command("hello")["localTime"]
    assert isinstance(local, datetime) and local.microsecond % 1000 == 0
