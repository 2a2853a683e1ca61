"""Every duration a user sets is bounded at construction, with a ValueError naming it.

The bounds live in one place (``mongoelector.timing``): ``ttl`` from 0.1 s,
``renew_deadline`` from 0.05 s, pauses (``retry_period``, ``follower_poll``,
``step``) from 1 ms, and everything (timeouts included) up to 365 days. Inside
them nothing overflows: a lease of the longest ttl is written and read back on
every built-in store. A setting outside them never gets as far as a store call,
so it can never be reported as "held by someone".
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import mongomock
import pytest

from mongoelector import (
    AmbiguousOutcome,
    LeaderElector,
    LeaseTiming,
    Lock,
    MongoLeaderElector,
    MongoLocker,
)
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import CasResult, LeaseRequest, MemoryBackend, MongoBackend
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import FakeClock
from mongoelector.timing import MAX_SECONDS, MIN_PERIOD, MIN_RENEW_DEADLINE, MIN_TTL
from tests.fakes import FlakyBackend

YEAR_DAYS = "365 days"


@pytest.fixture
def db() -> Any:
    return mongomock.MongoClient(tz_aware=True)["limits"]


def test_the_limits_are_the_documented_values() -> None:
    assert (MIN_TTL, MIN_RENEW_DEADLINE, MIN_PERIOD) == (0.1, 0.05, 0.001)
    assert timedelta(seconds=MAX_SECONDS) == timedelta(days=365)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"ttl": 1e12}, ["ttl", "1000000000000.0", YEAR_DAYS]),
        ({"ttl": 0.0001}, ["ttl", "0.0001", "at least 0.1 seconds"]),
        ({"ttl": 10, "renew_deadline": 0.01}, ["renew_deadline", "0.01", "at least 0.05"]),
        ({"ttl": 10, "retry_period": 0.0001}, ["retry_period", "0.0001", "at least 0.001"]),
        ({"ttl": 10, "follower_poll": 1e9}, ["follower_poll", "1000000000.0", YEAR_DAYS]),
    ],
)
def test_a_setting_outside_its_limit_is_refused_naming_the_value_and_the_limit(
    kwargs: dict[str, float], words: list[str]
) -> None:
    with pytest.raises(ValueError) as refused:
        LeaseTiming.for_ttl(**kwargs)
    for word in words:
        assert word in str(refused.value)


def test_the_limits_themselves_are_accepted() -> None:
    LeaseTiming.for_ttl(MIN_TTL)
    LeaseTiming.for_ttl(MAX_SECONDS, follower_poll=MAX_SECONDS / 2)
    LeaseTiming(ttl=1, renew_deadline=MIN_RENEW_DEADLINE, retry_period=MIN_PERIOD)


def test_a_lock_with_an_absurd_ttl_is_refused_at_construction_not_reported_held(
    backend: MemoryBackend,
) -> None:
    with pytest.raises(ValueError, match=r"ttl must be at most .*got 1000000000000\.0"):
        Lock("k", backend, ttl=1e12)
    with pytest.raises(ValueError, match=r"ttl must be at least 0\.1 seconds"):
        Lock("k", backend, ttl=0.0001)
    with pytest.raises(ValueError, match="ttl"):
        AsyncLock("k", backend, ttl=1e12)


def test_electors_with_absurd_ttls_are_refused_instead_of_never_leading(
    backend: MemoryBackend, db: Any
) -> None:
    with pytest.raises(ValueError, match=r"ttl must be at most"):
        LeaderElector("k", backend, ttl=1e12)
    with pytest.raises(ValueError, match=r"ttl must be at most"):
        AsyncLeaderElector("k", backend, ttl=1e12)
    with pytest.raises(ValueError, match=r"ttl must be at least 0\.1 seconds, got 0\.0001"):
        MongoLeaderElector("k", db, ttl=0.0001)
    with pytest.raises(ValueError, match=r"ttl must be at most"):
        MongoLocker("k", db, ttl=1e12)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"step": 1e12}, ["step", YEAR_DAYS]),
        ({"step": 0.0001}, ["step", "at least 0.001"]),
        ({"timeout": 1e12}, ["timeout", YEAR_DAYS]),
    ],
)
def test_acquire_bounds_its_step_and_timeout(
    backend: MemoryBackend, kwargs: dict[str, float], words: list[str]
) -> None:
    lock = Lock("k", backend, ttl=10)
    with pytest.raises(ValueError) as refused:
        lock.acquire(**kwargs)
    for word in words:
        assert word in str(refused.value)
    assert backend.get("k") is None


def test_a_leadership_wait_bounds_its_timeout(backend: MemoryBackend) -> None:
    elector = LeaderElector("k", backend, ttl=10)
    with pytest.raises(ValueError, match="timeout must be at most"):
        elector.leadership(timeout=1e12)


def test_a_backend_refuses_a_ttl_past_the_limit_before_touching_the_store(
    clock: FakeClock, tmp_path: Path
) -> None:
    request = LeaseRequest(key="k", owner="me", ttl=1e12)
    memory = MemoryBackend(clock)
    with SQLiteBackend(tmp_path / "leases.sqlite", clock=clock) as sqlite:
        for store in (memory, sqlite):
            with pytest.raises(ValueError, match="ttl must be at most"):
                store.compare_and_set(request)
            assert store.get("k") is None


def test_a_lease_of_the_longest_ttl_is_stored_on_every_built_in_store(
    clock: FakeClock, tmp_path: Path, db: Any
) -> None:
    with SQLiteBackend(tmp_path / "leases.sqlite", clock=clock) as sqlite:
        for store in (MemoryBackend(clock), sqlite, MongoBackend(db, clock=clock)):
            lock = Lock("k", store, ttl=MAX_SECONDS, clock=clock)
            assert lock.acquire(blocking=False)
            record = store.get("k")
            assert record is not None and record.expires_at is not None
            assert record.expires_at - store.server_time() > timedelta(days=364)
            assert lock.release()


class _Overflowing(FlakyBackend):
    """A store whose compare_and_set raises a non-BackendError (as a date overflow would)."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        self.calls["compare_and_set"] += 1
        raise OverflowError("date value out of range")


def test_an_error_that_is_not_a_backend_error_is_never_reported_as_held(
    backend: MemoryBackend,
) -> None:
    store = _Overflowing(backend)
    lock = Lock("k", store, ttl=10)
    with pytest.raises(AmbiguousOutcome) as failed:
        lock.acquire(blocking=False)
    assert "OverflowError" in str(failed.value)
    assert isinstance(failed.value.original, OverflowError)
