"""The one-write fast path of ``MongoBackend``: the plan's first step, sent without the plan.

An uncontended acquire and a release are one ``findAndModify`` each; the
backend sends it itself, and hands any ``PyMongoError`` back to the plan at
that very step (a duplicate key reads and decides, anything else is judged
and retried within the budget, counted from the fast path's start). These
tests pin both halves: that the common case runs no plan, and that a failure
on the fast write ends exactly as the plan alone would end it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import mongomock
import mongomock.collection
import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, NotPrimaryError

from mongoelector import MongoLocker
from mongoelector.backends import LeaseRequest, MongoBackend
from mongoelector.backends._mongo import operations
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.testing import FakeClock
from tests.backends.mongo_pipeline_sim import install

TTL = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["classic", "pipeline"])
def backend(request: pytest.FixtureRequest, clock: FakeClock, monkeypatch: Any) -> MongoBackend:
    pipeline = request.param == "pipeline"
    if pipeline:
        install(monkeypatch, clock.now)
    made = MongoBackend(mongomock.MongoClient()["fast"], clock=clock, pipeline=pipeline)
    made.get("warm-up")  # the first call's set-up (hello, indexes) is not what is counted
    return made


def ask(owner: str, key: str = "job") -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=TTL)


class Sent:
    """The ``findAndModify`` calls made (filter, update), and the plans run."""

    def __init__(self) -> None:
        self.writes: list[tuple[Any, Any]] = []
        self.plans = 0
        #: Called before each write with its index; may raise (a failure to inject).
        self.before: Callable[[int], None] = lambda index: None
        #: Called after each write that applied, with its index; may raise.
        self.after: Callable[[int], None] = lambda index: None


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    seen = Sent()
    original = mongomock.collection.Collection.find_one_and_update

    def spy(self: Any, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        index = len(seen.writes)
        seen.writes.append((filter, update))
        seen.before(index)
        document = original(self, filter, update, *args, **kwargs)
        seen.after(index)
        return document

    monkeypatch.setattr(mongomock.collection.Collection, "find_one_and_update", spy)
    run = MongoBackend._run

    def counted_run(self: MongoBackend, plan: Any) -> Any:
        seen.plans += 1
        return run(self, plan)

    monkeypatch.setattr(MongoBackend, "_run", counted_run)
    yield seen


def pair_counts(backend: MongoBackend, sent: Sent) -> tuple[int, int]:
    """(plans run, writes sent) by one uncontended acquire and its release."""
    sent.writes.clear()
    sent.plans = 0
    record = backend.compare_and_set(ask("a")).record
    assert record is not None
    assert backend.release("job", "a", token=record.token)
    return sent.plans, len(sent.writes)


def test_an_uncontended_pair_runs_no_plan_and_sends_one_write_each_way(
    backend: MongoBackend, sent: Sent
) -> None:
    assert pair_counts(backend, sent) == (0, 2)
    assert pair_counts(backend, sent) == (0, 2)


def test_the_counts_see_the_fast_path_switched_off(
    backend: MongoBackend, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MongoOperations, "quick_acquire", lambda self, request, force: None)
    monkeypatch.setattr(MongoOperations, "quick_release", lambda self, *args: None)
    assert pair_counts(backend, sent) == (2, 2)


def test_the_fast_path_sends_what_the_plan_sends(
    backend: MongoBackend, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same commands, byte for byte, whichever way the pair goes (tokens aside, which grow)."""

    def pair() -> list[tuple[Any, Any]]:
        sent.writes.clear()
        request = LeaseRequest(key="job", owner="a", ttl=TTL, acquisition="same-id")
        record = backend.compare_and_set(request).record
        assert record is not None
        backend.release("job", "a", token=record.token)
        writes = list(sent.writes)
        return [(_without_tokens(f), _without_tokens(u)) for f, u in writes]

    fast = pair()
    monkeypatch.setattr(MongoOperations, "quick_acquire", lambda self, request, force: None)
    monkeypatch.setattr(MongoOperations, "quick_release", lambda self, *args: None)
    assert pair() == fast


def _without_tokens(value: Any) -> Any:
    """``value`` with every number that is a fencing token (or a time made of one) left out."""
    if isinstance(value, dict):
        return {k: _without_tokens(v) for k, v in value.items() if k not in ("token", "$min")}
    if isinstance(value, list):
        return [_without_tokens(v) for v in value]
    return value


def test_a_transient_failure_of_the_fast_acquire_is_retried_with_the_same_command(
    backend: MongoBackend, sent: Sent
) -> None:
    def lose_the_reply(index: int) -> None:
        if index == 0:
            raise AutoReconnect("connection closed after the write")

    sent.after = lose_the_reply
    result = backend.compare_and_set(ask("a"))
    assert result.acquired  # the second send found its own first write
    assert result.record is not None and result.record.owner == "a"
    assert len(sent.writes) == 2
    assert sent.writes[0] == sent.writes[1]
    assert sent.plans == 1


def test_a_duplicate_key_on_the_fast_acquire_reads_and_refuses(
    backend: MongoBackend, sent: Sent, clock: FakeClock
) -> None:
    other = MongoBackend(backend.database, clock=clock, pipeline=backend.uses_pipeline)
    held = other.compare_and_set(ask("b")).record  # a holder this backend has not seen
    assert held is not None

    def raced(index: int) -> None:
        if index == 1:  # the fast acquire meets an upsert that was faster
            raise DuplicateKeyError("E11000", code=11000)

    sent.before = raced
    sent.writes.clear()
    result = backend.compare_and_set(ask("a"))
    assert not result.acquired
    assert result.record is not None and result.record.owner == "b"
    assert result.record.token == held.token


def writes_after_a_late_failure(clock: FakeClock, sent: Sent) -> int:
    """Writes sent by an acquire whose fast write fails with the budget almost spent."""
    backend = MongoBackend(mongomock.MongoClient()["fast"], clock=clock, timeout=1.0)
    backend.get("warm-up")

    def slow_failure(index: int) -> None:
        clock.advance(0.99)  # the budget is almost spent when the error comes
        raise NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})

    sent.before = slow_failure
    sent.writes.clear()
    with pytest.raises(BackendUnavailable):
        backend.compare_and_set(ask("a"))
    return len(sent.writes)


def test_the_budget_of_a_failed_fast_write_counts_from_its_start(
    clock: FakeClock, sent: Sent
) -> None:
    """A first attempt that failed late leaves no time for a retry: the plan gives up."""
    assert writes_after_a_late_failure(clock, sent) == 1


def test_the_budget_check_sees_the_start_forgotten(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = operations.with_retries

    def from_now(*args: Any, started: float | None = None, **kwargs: Any) -> Any:
        return real(*args, **kwargs)  # the budget counted from the fallback's start

    monkeypatch.setattr(operations, "with_retries", from_now)
    assert writes_after_a_late_failure(clock, sent) > 1


def test_a_failed_fast_write_that_may_have_applied_ends_ambiguous(
    backend: MongoBackend, sent: Sent
) -> None:
    def always(index: int) -> None:
        raise AutoReconnect("connection closed")

    sent.before = always
    with pytest.raises(AmbiguousOutcome):
        backend.compare_and_set(ask("a"))
    assert len(sent.writes) > 1  # retried within the budget, then given up


def test_a_transient_failure_of_the_fast_release_is_retried(
    backend: MongoBackend, sent: Sent
) -> None:
    record = backend.compare_and_set(ask("a")).record
    assert record is not None
    sent.writes.clear()

    def no_primary_once(index: int) -> None:
        if index == 0:
            raise NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})

    sent.before = no_primary_once
    assert backend.release("job", "a", token=record.token)
    assert len(sent.writes) == 2
    assert sent.writes[0] == sent.writes[1]
    assert backend.get("job") is not None
    assert backend.get("job").owner is None  # type: ignore[union-attr]


def test_a_mongolocker_pair_runs_no_plan(sent: Sent) -> None:
    lock = MongoLocker("fast", mongomock.MongoClient()["fast"], timeparanoid=False)
    lock.acquire(blocking=False)
    lock.release()
    sent.plans = 0
    sent.writes.clear()
    lock.acquire(blocking=False)
    lock.release()
    assert (sent.plans, len(sent.writes)) == (0, 2)


class CountingClock(FakeClock):
    """A FakeClock that counts its readings."""

    def __init__(self) -> None:
        super().__init__()
        self.readings = 0

    def monotonic(self) -> float:
        self.readings += 1
        return super().monotonic()

    def now(self) -> Any:
        self.readings += 1
        return super().now()


def clock_readings_per_pair() -> int:
    """Clock readings of one uncontended ``Lock`` acquire+release on mongomock (classic)."""
    from mongoelector import Lock

    clock = CountingClock()
    backend = MongoBackend(mongomock.MongoClient()["fast"], clock=clock)
    lock = Lock("counted", backend, clock=clock)
    lock.acquire(blocking=False)
    lock.release()
    clock.readings = 0
    lock.acquire(blocking=False)
    lock.release()
    return clock.readings


def test_a_lock_pair_on_mongodb_reads_the_clock_eight_times() -> None:
    # The lock: before, at the send and at the reply of its acquire (3). The backend:
    # the estimated server time for each write and after the release, and the start of
    # each write's budget (5).
    assert clock_readings_per_pair() == 8


def test_the_clock_count_sees_the_plan_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MongoOperations, "quick_acquire", lambda self, request, force: None)
    assert clock_readings_per_pair() > 8
