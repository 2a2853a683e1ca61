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
from datetime import timedelta
from typing import Any

import mongomock
import mongomock.collection
import pymongo
import pymongo._csot
import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, NotPrimaryError, OperationFailure

from mongoelector import MongoLocker
from mongoelector.backends import LeaseRequest, MongoBackend
from mongoelector.backends._mongo import operations
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable, TimeOffsetError
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
    """``value`` with every number that is a fencing token (or a time made of one) and every
    release id (new per call) left out."""
    if isinstance(value, dict):
        left_out = ("token", "$min", "released_by")
        return {k: _without_tokens(v) for k, v in value.items() if k not in left_out}
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


# --- what the fast path must keep of the plan (review of issue 14) ---------------------------


def test_an_acquire_check_runs_before_every_acquire_of_a_warm_backend(sent: Sent) -> None:
    """The check (a leader elector's clock check) is the plan's: never skipped by the fast path."""
    checks: list[str] = []
    refuse = [False]

    def check() -> None:
        checks.append("checked")
        if refuse[0]:
            raise TimeOffsetError("clock too far off")

    backend = MongoBackend(mongomock.MongoClient()["fast"], clock=FakeClock(), acquire_check=check)
    backend.get("warm-up")
    record = backend.compare_and_set(ask("a")).record
    assert record is not None and backend.release("job", "a", token=record.token)
    assert checks == ["checked"]
    refuse[0] = True
    sent.writes.clear()
    with pytest.raises(BackendUnavailable, match="clock too far off"):
        backend.compare_and_set(ask("a"))
    assert sent.writes == []
    assert checks == ["checked", "checked"]


def test_the_acquire_check_test_sees_the_fast_path_skip_the_check(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = MongoOperations.quick_acquire

    def unchecked(self: MongoOperations, request: LeaseRequest, force: bool) -> Any:
        saved, self._acquire_check = self._acquire_check, None
        try:
            return real(self, request, force)
        finally:
            self._acquire_check = saved

    monkeypatch.setattr(MongoOperations, "quick_acquire", unchecked)
    with pytest.raises(AssertionError):
        test_an_acquire_check_runs_before_every_acquire_of_a_warm_backend(sent)


def test_a_refused_fast_release_is_not_sent_again(backend: MongoBackend, sent: Sent) -> None:
    """An error that is not transient ends the release after its one write, as in the plan."""
    record = backend.compare_and_set(ask("a")).record
    assert record is not None
    sent.writes.clear()

    def unauthorized(index: int) -> None:
        raise OperationFailure("not authorized", code=13)

    sent.before = unauthorized
    with pytest.raises(BackendUnavailable, match="not authorized"):
        backend.release("job", "a", token=record.token)
    assert len(sent.writes) == 1
    assert sent.plans == 1


def test_a_refused_fast_acquire_is_not_sent_again(backend: MongoBackend, sent: Sent) -> None:
    def unauthorized(index: int) -> None:
        raise OperationFailure("not authorized", code=13)

    sent.before = unauthorized
    sent.writes.clear()
    with pytest.raises(BackendUnavailable, match="not authorized"):
        backend.compare_and_set(ask("a"))
    assert len(sent.writes) == 1


def test_the_refusal_tests_see_the_fast_error_forgotten(
    backend: MongoBackend, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fast write's error dropped, the plan would send the write again."""
    real_retries = operations.with_retries

    def retries_forgetting(*args: Any, thrown: Any = None, **kwargs: Any) -> Any:
        return real_retries(*args, **kwargs)

    monkeypatch.setattr(operations, "with_retries", retries_forgetting)
    with pytest.raises(AssertionError):
        test_a_refused_fast_release_is_not_sent_again(backend, sent)
    sent.before = lambda index: None
    backend.release("job", "a", force=True)
    with pytest.raises(AssertionError):
        test_a_refused_fast_acquire_is_not_sent_again(backend, sent)


def writes_of_a_late_failed_release(clock: FakeClock, sent: Sent) -> int:
    """Writes sent by a release whose fast write fails with the budget almost spent."""
    backend = MongoBackend(mongomock.MongoClient()["fast"], clock=clock, timeout=1.0)
    record = backend.compare_and_set(ask("a")).record
    assert record is not None

    def slow_failure(index: int) -> None:
        clock.advance(0.99)  # the budget is almost spent when the error comes
        raise NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})

    sent.before = slow_failure
    sent.writes.clear()
    with pytest.raises(BackendUnavailable):
        backend.release("job", "a", token=record.token)
    return len(sent.writes)


def test_the_budget_of_a_failed_fast_release_counts_from_its_start(
    clock: FakeClock, sent: Sent
) -> None:
    assert writes_of_a_late_failed_release(clock, sent) == 1


def test_the_release_budget_check_sees_the_start_forgotten(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = operations.with_retries

    def from_now(*args: Any, started: float | None = None, **kwargs: Any) -> Any:
        return real(*args, **kwargs)

    monkeypatch.setattr(operations, "with_retries", from_now)
    assert writes_of_a_late_failed_release(clock, sent) > 1


def first_call_release_update(clock: FakeClock, sent: Sent, monkeypatch: Any) -> Any:
    """The update of a release that is a new backend's first call (pipeline path)."""
    install(monkeypatch, clock.now)
    backend = MongoBackend(mongomock.MongoClient()["fast"], clock=clock, pipeline=True)
    sent.writes.clear()
    assert not backend.release("job", None, force=True)
    ((_, update),) = sent.writes
    return update


def test_a_release_as_the_first_call_learns_the_write_path_first(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the backend is ready it does not know its write path: the plan learns it."""
    assert isinstance(first_call_release_update(clock, sent, monkeypatch), list)  # a pipeline


def test_the_first_call_test_sees_readiness_ignored(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MongoOperations, "_ready", lambda self: True)
    assert not isinstance(first_call_release_update(clock, sent, monkeypatch), list)


class ServerAhead:
    """A classic-path server (no pipelines) whose clock is ``offset`` seconds ahead; counts
    its ``hello`` replies (each an instant round trip)."""

    def __init__(self, clock: FakeClock, offset: float = 1000.0) -> None:
        self.clock = clock
        self.offset = offset
        self.hellos = 0

    def now(self) -> Any:
        return self.clock.now() + timedelta(seconds=self.offset)

    def __call__(self) -> dict[str, Any]:
        self.hellos += 1
        return {"localTime": self.now().replace(tzinfo=None), "maxWireVersion": 7}


def server_ahead(clock: FakeClock) -> tuple[MongoBackend, ServerAhead]:
    backend = MongoBackend(mongomock.MongoClient()["fast"], clock=clock)
    server = ServerAhead(clock)
    backend._hello = server  # type: ignore[method-assign]
    backend.get("warm-up")
    assert server.hellos == 1 and backend.uses_pipeline is False
    return backend, server


def test_a_stale_estimate_is_read_again_before_the_fast_writes(clock: FakeClock) -> None:
    """Acquire and release stamp the server's time: a stale estimate is renewed first."""
    backend, server = server_ahead(clock)
    clock.advance(61.0)  # past the estimate's maximum age
    result = backend.compare_and_set(LeaseRequest(key="job", owner="a", ttl=120.0))
    assert result.acquired and result.record is not None
    assert server.hellos == 2
    assert result.record.acquired_at is not None
    assert abs((result.record.acquired_at - server.now()).total_seconds()) < 1.0
    clock.advance(61.0)
    assert backend.release("job", "a", token=result.record.token)
    assert server.hellos == 3
    # The release brought the expiry forward to the server's time (not the host's).
    expiry = backend.collection.find_one({"_id": "job"})["ts_expire"]
    assert abs((expiry - server.now().replace(tzinfo=None)).total_seconds()) < 1.0


def test_the_staleness_test_sees_a_stale_estimate_used(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mongoelector.backends._mongo.clock_reader import ServerClock

    def never_stale(self: ServerClock) -> Any:
        with self._mutex:
            return self._estimator.estimate(self._clock.monotonic())

    monkeypatch.setattr(ServerClock, "current", never_stale)
    with pytest.raises(AssertionError):
        test_a_stale_estimate_is_read_again_before_the_fast_writes(clock)


def release_that_outlasts_the_estimate(clock: FakeClock, sent: Sent) -> tuple[bool, int, int]:
    """(released, hellos, plans) of a release whose write takes longer than the estimate's
    maximum age, of a lease that is still live at the server's time after it."""
    backend, server = server_ahead(clock)
    record = backend.compare_and_set(LeaseRequest(key="job", owner="a", ttl=120.0)).record
    assert record is not None
    sent.plans = 0

    def slow(index: int) -> None:
        clock.advance(61.0)

    sent.before = slow
    released = backend.release("job", "a", token=record.token)
    return released, server.hellos, sent.plans


def test_a_release_whose_estimate_went_stale_reads_the_time_to_answer(
    clock: FakeClock, sent: Sent
) -> None:
    """The untested end of the fast release (``released_at``): one more clock reading."""
    assert release_that_outlasts_the_estimate(clock, sent) == (True, 2, 1)


def test_the_stale_release_test_sees_a_guess_without_reading(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = MongoOperations.quick_released

    def guessing(self: MongoOperations, key: str, before: Any) -> bool | None:
        answer = real(self, key, before)
        return False if answer is None else answer

    monkeypatch.setattr(MongoOperations, "quick_released", guessing)
    assert release_that_outlasts_the_estimate(clock, sent) != (True, 2, 1)


def bounds_of_a_pair(backend: MongoBackend, monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """The time pymongo gave each write of an acquire and its release (its own timeout)."""
    bounds: list[float | None] = []
    original = mongomock.collection.Collection.find_one_and_update

    def bounded(self: Any, *args: Any, **kwargs: Any) -> Any:
        bounds.append(pymongo._csot.remaining())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one_and_update", bounded)
    record = backend.compare_and_set(ask("a")).record
    assert record is not None and backend.release("job", "a", token=record.token)
    return bounds


def test_the_fast_writes_are_bounded_by_the_budget_and_by_a_callers_timeout(
    backend: MongoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    bounds = bounds_of_a_pair(backend, monkeypatch)
    assert len(bounds) == 2
    assert all(bound is not None and 0 < bound <= 5.0 for bound in bounds)  # timeout=5.0
    with pymongo.timeout(0.5):
        inner = bounds_of_a_pair(backend, monkeypatch)
    assert all(bound is not None and 0 < bound <= 0.5 for bound in inner)


def test_the_bound_test_sees_an_unbounded_fast_write(
    backend: MongoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MongoOperations, "first_bound", lambda self: 30.0)
    with pytest.raises(AssertionError):
        test_the_fast_writes_are_bounded_by_the_budget_and_by_a_callers_timeout(
            backend, monkeypatch
        )
