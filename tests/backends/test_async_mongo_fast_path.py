"""The one-write fast path of ``AsyncMongoBackend``: ``MongoBackend``'s, awaited.

An uncontended acquire and a release are one ``findAndModify`` each, sent by
the backend itself within the call's budget; any ``PyMongoError`` goes back
to the plan at that very step, and a cancellation propagates as it does on
the plan path (the lock on top remembers the write that may have landed).
These tests mirror ``test_mongo_fast_path.py`` on mongomock behind the
async facade of :mod:`mongomock_async`; the wire-level tests
(``test_mongo_wire.py``, ``test_async_mongo_wire.py``) run the same shell on
pymongo's real ``AsyncCollection``. ``tests/test_one_source.py`` keeps the
two shells one text (the async one is the sync one with ``await``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import mongomock
import pymongo
import pymongo._csot
import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, NotPrimaryError, OperationFailure

from mongoelector.aio import AsyncLock
from mongoelector.backends import AsyncMongoBackend, LeaseRequest
from mongoelector.backends import async_mongo as async_mongo_module
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable, LockExists
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import settle
from tests.backends.mongo_pipeline_sim import install
from tests.backends.mongomock_async import AsyncMockCollection, AsyncMockDatabase

TTL = 10.0


def make(clock: FakeClock, **options: Any) -> AsyncMongoBackend:
    return AsyncMongoBackend(
        AsyncMockDatabase(mongomock.MongoClient()["fast"]), clock=clock, **options
    )


@pytest.fixture(params=["classic", "pipeline"])
def pipeline(request: pytest.FixtureRequest, clock: FakeClock, monkeypatch: Any) -> bool:
    if request.param == "pipeline":
        install(monkeypatch, clock.now)
        return True
    return False


async def ready(sent: Sent, backend: AsyncMongoBackend) -> AsyncMongoBackend:
    """``backend`` after its first call's set-up (hello, indexes), which is not counted."""
    await backend.get("warm-up")
    sent.plans = 0
    sent.writes.clear()
    sent.options.clear()
    return backend


def ask(owner: str, key: str = "job", **options: Any) -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=TTL, **options)


class Sent:
    """The ``findAndModify`` calls made (filter, update), their pymongo bounds, the plans run."""

    def __init__(self) -> None:
        self.writes: list[tuple[Any, Any]] = []
        self.options: list[dict[str, Any]] = []
        self.bounds: list[float | None] = []
        self.plans = 0
        #: Called before each write with its index; may raise (a failure to inject).
        self.before: Callable[[int], None] = lambda index: None
        #: Called after each write that applied, with its index; may raise.
        self.after: Callable[[int], None] = lambda index: None
        #: Write index -> a future the write awaits before it applies (in flight, not landed).
        self.hold: dict[int, asyncio.Future[None]] = {}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    seen = Sent()

    async def spy(self: AsyncMockCollection, filter: Any, update: Any, **options: Any) -> Any:
        index = len(seen.writes)
        seen.writes.append((filter, update))
        seen.options.append(options)
        seen.bounds.append(pymongo._csot.remaining())
        seen.before(index)
        if index in seen.hold:
            await seen.hold[index]
        document = self.inner.find_one_and_update(filter, update, **options)
        seen.after(index)
        return document

    monkeypatch.setattr(AsyncMockCollection, "find_one_and_update", spy)
    run = AsyncMongoBackend._run

    async def counted_run(self: AsyncMongoBackend, plan: Any) -> Any:
        seen.plans += 1
        return await run(self, plan)

    monkeypatch.setattr(AsyncMongoBackend, "_run", counted_run)
    yield seen


def plan_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the fast path off: every call runs the plan (what the backend did before)."""
    monkeypatch.setattr(MongoOperations, "quick_acquire", lambda self, request, force: None)
    monkeypatch.setattr(MongoOperations, "quick_release", lambda self, *args: None)


def mutate(monkeypatch: pytest.MonkeyPatch, method: Callable[..., Any], old: str, new: str) -> None:
    """Replace ``AsyncMongoBackend.<method>`` by its source with ``old`` replaced by ``new``."""
    source = textwrap.dedent(inspect.getsource(method))
    assert old in source, old
    namespace: dict[str, Any] = {}
    exec(source.replace(old, new), vars(async_mongo_module), namespace)
    monkeypatch.setattr(AsyncMongoBackend, method.__name__, namespace[method.__name__])


async def pair_counts(backend: AsyncMongoBackend, sent: Sent) -> tuple[int, int]:
    """(plans run, writes sent) by one uncontended acquire and its release."""
    sent.writes.clear()
    sent.plans = 0
    record = (await backend.compare_and_set(ask("a"))).record
    assert record is not None
    assert await backend.release("job", "a", token=record.token)
    return sent.plans, len(sent.writes)


# --- the fast path is taken, and sends what the plan sends -----------------------------------


async def test_an_uncontended_pair_runs_no_plan_and_sends_one_write_each_way(
    clock: FakeClock, pipeline: bool, sent: Sent
) -> None:
    backend = await ready(sent, make(clock, pipeline=pipeline))
    assert await pair_counts(backend, sent) == (0, 2)
    assert await pair_counts(backend, sent) == (0, 2)


async def test_the_counts_see_the_fast_path_switched_off(
    clock: FakeClock, pipeline: bool, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path_only(monkeypatch)
    backend = await ready(sent, make(clock, pipeline=pipeline))
    assert await pair_counts(backend, sent) == (2, 2)


async def test_the_fast_path_sends_what_the_plan_sends(
    clock: FakeClock, pipeline: bool, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same commands and options, whichever way the pair goes (tokens aside, which grow)."""
    backend = await ready(sent, make(clock, pipeline=pipeline))

    async def pair() -> list[Any]:
        sent.writes.clear()
        sent.options.clear()
        record = (await backend.compare_and_set(ask("a", acquisition="same-id"))).record
        assert record is not None
        assert await backend.release("job", "a", token=record.token)
        writes = [(_without_tokens(f), _without_tokens(u)) for f, u in sent.writes]
        return [*writes, *sent.options]

    fast = await pair()
    plan_path_only(monkeypatch)
    assert await pair() == fast


def _without_tokens(
    value: Any, left_out: tuple[str, ...] = ("token", "$min", "released_by")
) -> Any:
    """``value`` with every number that is a fencing token (or a time made of one) and every
    release id (new per call) left out (and the other fields named in ``left_out``)."""
    if isinstance(value, dict):
        return {k: _without_tokens(v, left_out) for k, v in value.items() if k not in left_out}
    if isinstance(value, list):
        return [_without_tokens(v, left_out) for v in value]
    return value


async def test_an_async_lock_pair_runs_no_plan(clock: FakeClock, sent: Sent) -> None:
    lock = AsyncLock("job", await ready(sent, make(clock)), ttl=TTL, clock=clock)
    assert await lock.acquire(blocking=False)
    assert await lock.release()
    sent.plans = 0
    sent.writes.clear()
    assert await lock.acquire(blocking=False)
    assert await lock.release()
    assert (sent.plans, len(sent.writes)) == (0, 2)


# --- a failure of the fast write is the plan's from that step on ------------------------------


async def test_a_transient_failure_of_the_fast_acquire_is_retried_with_the_same_command(
    clock: FakeClock, pipeline: bool, sent: Sent
) -> None:
    backend = await ready(sent, make(clock, pipeline=pipeline))

    def lose_the_reply(index: int) -> None:
        if index == 0:
            raise AutoReconnect("connection closed after the write")

    sent.after = lose_the_reply
    result = await backend.compare_and_set(ask("a"))
    assert result.acquired  # the second send found its own first write
    assert result.record is not None and result.record.owner == "a"
    assert len(sent.writes) == 2
    assert sent.writes[0] == sent.writes[1]
    assert sent.plans == 1


async def test_a_duplicate_key_on_the_fast_acquire_reads_and_refuses(
    clock: FakeClock, pipeline: bool, sent: Sent
) -> None:
    backend = await ready(sent, make(clock, pipeline=pipeline))
    other = AsyncMongoBackend(backend.database, clock=clock, pipeline=pipeline)
    held = (await other.compare_and_set(ask("b"))).record  # a holder this backend has not seen
    assert held is not None

    def raced(index: int) -> None:
        if index == 1:  # the fast acquire meets an upsert that was faster
            raise DuplicateKeyError("E11000", code=11000)

    sent.before = raced
    result = await backend.compare_and_set(ask("a"))
    assert not result.acquired
    assert result.record is not None and result.record.owner == "b"
    assert result.record.token == held.token


async def test_a_failed_fast_write_that_may_have_applied_ends_ambiguous(
    clock: FakeClock, pipeline: bool, sent: Sent
) -> None:
    backend = await ready(sent, make(clock, pipeline=pipeline))

    def always(index: int) -> None:
        raise AutoReconnect("connection closed")

    sent.before = always
    with pytest.raises(AmbiguousOutcome):
        await backend.compare_and_set(ask("a"))
    assert len(sent.writes) > 1  # retried within the budget, then given up
    assert sent.plans == 1


async def test_a_transient_failure_of_the_fast_release_is_retried(
    clock: FakeClock, pipeline: bool, sent: Sent
) -> None:
    backend = await ready(sent, make(clock, pipeline=pipeline))
    record = (await backend.compare_and_set(ask("a"))).record
    assert record is not None
    sent.writes.clear()

    def no_primary_once(index: int) -> None:
        if index == 0:
            raise NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})

    sent.before = no_primary_once
    assert await backend.release("job", "a", token=record.token)
    assert len(sent.writes) == 2
    assert sent.writes[0] == sent.writes[1]
    stored = await backend.get("job")
    assert stored is not None and stored.owner is None


def unauthorized(index: int) -> None:
    raise OperationFailure("not authorized", code=13)


async def refused_writes(clock: FakeClock, sent: Sent) -> tuple[int, int]:
    """Writes sent by an acquire and by a release whose fast write is refused for good."""
    backend = await ready(sent, make(clock))
    record = (await backend.compare_and_set(ask("a"))).record
    assert record is not None
    counts = []
    sent.before = unauthorized
    sent.writes.clear()
    with pytest.raises(BackendUnavailable, match="not authorized"):
        await backend.compare_and_set(ask("b", key="other"))
    counts.append(len(sent.writes))
    sent.writes.clear()
    with pytest.raises(BackendUnavailable, match="not authorized"):
        await backend.release("job", "a", token=record.token)
    counts.append(len(sent.writes))
    return counts[0], counts[1]


async def test_a_refused_fast_write_is_not_sent_again(clock: FakeClock, sent: Sent) -> None:
    """An error that is not transient ends the call after its one write, as in the plan."""
    assert await refused_writes(clock, sent) == (1, 1)


@pytest.mark.parametrize("method", ["compare_and_set", "release"])
async def test_the_refusal_test_sees_the_fast_error_forgotten(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Mutation: on an error the shell runs the whole plan (its write sent again)."""
    if method == "compare_and_set":
        mutate(
            monkeypatch,
            AsyncMongoBackend.compare_and_set,
            "ops.acquire_after(quick, started, error)",
            "ops.compare_and_set(request, force)",
        )
    else:
        mutate(
            monkeypatch,
            AsyncMongoBackend.release,
            "ops.release_after(key, command, started, error)",
            "ops.release(key, owner, token, force)",
        )
    assert await refused_writes(clock, sent) != (1, 1)


async def test_the_failure_tests_see_the_plan_skipped_on_error(
    clock: FakeClock, pipeline: bool, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: the shell raises the fast write's error instead of handing it to the plan."""
    mutate(
        monkeypatch,
        AsyncMongoBackend.compare_and_set,
        "return await self._run(ops.acquire_after(quick, started, error))",
        "raise",
    )
    with pytest.raises(AutoReconnect):
        await test_a_transient_failure_of_the_fast_acquire_is_retried_with_the_same_command(
            clock, pipeline, sent
        )


# --- the budget --------------------------------------------------------------------------------


async def writes_after_late_failures(clock: FakeClock, sent: Sent) -> tuple[int, int]:
    """Writes sent by an acquire and by a release whose fast write fails with the budget
    almost spent."""
    backend = await ready(sent, make(clock, timeout=1.0))
    record = (await backend.compare_and_set(ask("a"))).record
    assert record is not None

    def slow_failure(index: int) -> None:
        clock.advance(0.99)  # the budget is almost spent when the error comes
        raise NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})

    sent.before = slow_failure
    sent.writes.clear()
    with pytest.raises(BackendUnavailable):
        await backend.compare_and_set(ask("b", key="other"))
    acquires = len(sent.writes)
    sent.writes.clear()
    with pytest.raises(BackendUnavailable):
        await backend.release("job", "a", token=record.token)
    return acquires, len(sent.writes)


async def test_the_budget_of_a_failed_fast_write_counts_from_its_start(
    clock: FakeClock, sent: Sent
) -> None:
    """A first attempt that failed late leaves no time for a retry: the plan gives up."""
    assert await writes_after_late_failures(clock, sent) == (1, 1)


@pytest.mark.parametrize(
    ("method", "old"),
    [
        ("compare_and_set", "acquire_after(quick, started, error)"),
        ("release", "release_after(key, command, started, error)"),
    ],
)
async def test_the_budget_check_sees_the_start_forgotten(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch, method: str, old: str
) -> None:
    """Mutation: the shell gives the plan the time of the failure as the start."""
    mutate(
        monkeypatch,
        getattr(AsyncMongoBackend, method),
        old,
        old.replace("started", "self._clock.monotonic()"),
    )
    assert await writes_after_late_failures(clock, sent) != (1, 1)


async def bounds_of_a_pair(backend: AsyncMongoBackend, sent: Sent) -> list[float | None]:
    """The time pymongo gave each write of an acquire and its release (its own timeout)."""
    sent.bounds.clear()
    record = (await backend.compare_and_set(ask("a"))).record
    assert record is not None and await backend.release("job", "a", token=record.token)
    assert sent.plans == 0  # the fast path's bounds
    return list(sent.bounds)


async def test_the_fast_writes_are_bounded_by_the_budget_and_by_a_callers_timeout(
    clock: FakeClock, pipeline: bool, sent: Sent
) -> None:
    backend = await ready(sent, make(clock, pipeline=pipeline))
    sent.plans = 0
    bounds = await bounds_of_a_pair(backend, sent)
    assert len(bounds) == 2
    assert all(bound is not None and 0 < bound <= 5.0 for bound in bounds)  # timeout=5.0
    with pymongo.timeout(0.5):
        inner = await bounds_of_a_pair(backend, sent)
    assert all(bound is not None and 0 < bound <= 0.5 for bound in inner)


async def test_the_bound_test_sees_the_timeout_dropped(
    clock: FakeClock, pipeline: bool, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate(
        monkeypatch,
        AsyncMongoBackend._send,
        "with pymongo.timeout(self._ops.first_bound()):",
        "with contextlib.nullcontext():",
    )
    monkeypatch.setattr(async_mongo_module, "contextlib", contextlib, raising=False)
    with pytest.raises(AssertionError):
        await test_the_fast_writes_are_bounded_by_the_budget_and_by_a_callers_timeout(
            clock, pipeline, sent
        )


# --- cancellation: as on the plan path ----------------------------------------------------------


async def cancelled_mid_acquire(
    clock: FakeClock, sent: Sent, *, lands: bool
) -> tuple[int, list[Any], Any, int | None]:
    """An ``AsyncLock`` whose acquire is cancelled while its write is in flight.

    ``lands``: the write applied before the cancellation (its reply lost), else it lands
    only after the cancelled acquire's clean-up, and a later ``release()`` must free it.
    Returns (the plans running while the write was in flight; the writes sent, without
    tokens; whether the stored lease is locked at the end; the lock's token).
    """
    backend = await ready(sent, make(clock))
    lock = AsyncLock("job", backend, ttl=TTL, clock=clock)
    in_flight: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sent.writes.clear()
    sent.options.clear()
    if lands:
        sent.after = lambda index: _raise_if(index == 0, in_flight)
    else:
        sent.hold[0] = in_flight
    acquiring = asyncio.ensure_future(lock.acquire(blocking=False))
    sent.plans = 0
    await settle()
    assert len(sent.writes) == 1  # in flight
    plans_in_flight = sent.plans
    acquiring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await acquiring
    if not lands:
        # The write lands now: a lease of this lock that nobody trusts.
        filter, update = sent.writes[0]
        backend.collection.inner.find_one_and_update(filter, update, **sent.options[0])
        assert (await backend.get("job")).owner == lock.uuid  # type: ignore[union-attr]
        await lock.release()
    stored = backend.collection.inner.find_one({"_id": "job"})
    # Each run has its own lock (owner) and acquire id: only those and the tokens differ.
    left_out = ("token", "$min", "uuid", "acquire_id", "released_by")
    writes = [(_without_tokens(f, left_out), _without_tokens(u, left_out)) for f, u in sent.writes]
    return plans_in_flight, writes, stored["locked"], lock.token


def _raise_if(condition: bool, in_flight: asyncio.Future[None]) -> None:
    """After the write applied: stand for a reply that never comes (cancelled meanwhile)."""
    if condition:
        raise _Parked(in_flight)


class _Parked(Exception):
    def __init__(self, in_flight: asyncio.Future[None]) -> None:
        super().__init__("parked")
        self.in_flight = in_flight


@pytest.fixture
def parking(sent: Sent, monkeypatch: pytest.MonkeyPatch) -> Sent:
    """``sent``, where a write whose ``after`` raises ``_Parked`` waits for its future."""
    spy = AsyncMockCollection.find_one_and_update

    async def parked(self: AsyncMockCollection, *args: Any, **options: Any) -> Any:
        try:
            return await spy(self, *args, **options)
        except _Parked as parked:
            await parked.in_flight
            raise AssertionError("never answered") from None

    monkeypatch.setattr(AsyncMockCollection, "find_one_and_update", parked)
    return sent


@pytest.mark.parametrize("lands", [True, False], ids=["landed", "lands-later"])
async def test_a_cancelled_fast_acquire_leaves_the_lock_as_the_plan_path_does(
    clock: FakeClock, parking: Sent, monkeypatch: pytest.MonkeyPatch, lands: bool
) -> None:
    """The store, the lock and the commands end alike; only the plan count differs."""
    in_flight, *fast = await cancelled_mid_acquire(clock, parking, lands=lands)
    assert in_flight == 0  # the fast path was cancelled, not a plan
    assert len(fast[0]) == 2  # the acquire, then the release that freed it
    assert fast[1:] == [False, None]  # the landed write was released; the lock holds nothing
    with monkeypatch.context() as plan_only:
        plan_path_only(plan_only)
        in_flight, *planned = await cancelled_mid_acquire(clock, parking, lands=lands)
    assert in_flight == 1
    assert planned == fast


async def test_a_cancelled_fast_call_is_not_retried_and_changes_nothing_known(
    clock: FakeClock, sent: Sent
) -> None:
    """The cancellation propagates at once: no plan, no second send, nothing noted."""
    backend = await ready(sent, make(clock))
    sent.hold[0] = asyncio.get_running_loop().create_future()
    call = asyncio.ensure_future(backend.compare_and_set(ask("a")))
    await settle()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (len(sent.writes), sent.plans) == (1, 0)
    # Nothing was noted of the key: the next acquire is fast again, and takes it.
    assert (await backend.compare_and_set(ask("a"))).acquired
    assert (len(sent.writes), sent.plans) == (2, 0)


async def test_the_cancellation_test_sees_a_cancelled_write_taken_as_failed(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: the shell hands a cancellation to the plan as if it were a store error."""
    mutate(
        monkeypatch,
        AsyncMongoBackend.compare_and_set,
        "except PyMongoError as error:",
        "except (PyMongoError, asyncio.CancelledError) as error:",
    )
    monkeypatch.setattr(async_mongo_module, "asyncio", asyncio, raising=False)
    with pytest.raises(AssertionError):
        await test_a_cancelled_fast_call_is_not_retried_and_changes_nothing_known(clock, sent)


@pytest.mark.parametrize("lands", [True, False], ids=["landed", "lands-later"])
async def test_the_lock_cancellation_test_sees_a_cancellation_swallowed(
    clock: FakeClock, parking: Sent, monkeypatch: pytest.MonkeyPatch, lands: bool
) -> None:
    """Mutation: the shell takes a cancelled acquire for a refused one (nothing to free)."""
    mutate(
        monkeypatch,
        AsyncMongoBackend.compare_and_set,
        "    except PyMongoError as error:\n",
        "    except asyncio.CancelledError:\n"
        "        return CasResult(acquired=False, record=None)\n"
        "    except PyMongoError as error:\n",
    )
    monkeypatch.setattr(async_mongo_module, "asyncio", asyncio, raising=False)
    with pytest.raises(LockExists):  # not cancelled: the write that may have landed is left
        await test_a_cancelled_fast_acquire_leaves_the_lock_as_the_plan_path_does(
            clock, parking, monkeypatch, lands
        )


# --- an ambiguous fast write, under a lock -----------------------------------------------------


async def ambiguous_acquire(clock: FakeClock, sent: Sent) -> tuple[list[Any], Any, Any, bool]:
    """An ``AsyncLock`` whose first acquire write applies but whose reply is lost, and whose
    sends after it fail until the budget is spent: the store call is ``AmbiguousOutcome``.

    Returns (the writes sent, without ids and tokens; what the acquire returned or raised;
    the stored lease's ``locked`` after it; what the lock's ``release()`` then returned).
    """
    backend = await ready(sent, make(clock))
    lock = AsyncLock("job", backend, ttl=TTL, clock=clock)
    failing = True

    def lost(index: int) -> None:
        if failing and index == 0:
            raise AutoReconnect("connection closed after the write")

    def unreachable(index: int) -> None:
        if failing and index > 0:
            raise AutoReconnect("connection refused")

    sent.before, sent.after = unreachable, lost
    try:
        outcome: Any = await lock.acquire(blocking=False)
    except Exception as error:
        outcome = type(error)
    locked = backend.collection.inner.find_one({"_id": "job"})["locked"]
    failing = False
    released = await lock.release()
    left_out = ("token", "$min", "uuid", "acquire_id", "released_by")
    writes = [(_without_tokens(f, left_out), _without_tokens(u, left_out)) for f, u in sent.writes]
    return writes, outcome, locked, released


async def test_an_ambiguous_fast_acquire_is_maybe_held_as_on_the_plan_path(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = await ambiguous_acquire(clock, sent)
    writes, outcome, locked, released = fast
    assert len(writes) > 2  # retried within the budget, then the release
    assert outcome is AmbiguousOutcome
    assert locked is True and released is True  # it had applied: the lock freed it
    plan_path_only(monkeypatch)
    assert await ambiguous_acquire(FakeClock(), sent) == fast


async def test_the_ambiguity_test_sees_a_lost_reply_taken_as_refused(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: the shell answers a failed fast acquire as refused, holder unknown."""
    mutate(
        monkeypatch,
        AsyncMongoBackend.compare_and_set,
        "return await self._run(ops.acquire_after(quick, started, error))",
        "return CasResult(acquired=False, record=None)",
    )
    with pytest.raises(AssertionError):
        await test_an_ambiguous_fast_acquire_is_maybe_held_as_on_the_plan_path(
            clock, sent, monkeypatch
        )


# --- a release whose estimate went stale during its write ----------------------------------------


async def release_that_outlasts_the_estimate(clock: FakeClock, sent: Sent) -> tuple[bool, int, int]:
    """(released, hellos, plans) of a release whose write takes longer than the estimate's
    maximum age, of a lease still live at the server's time after it (classic path)."""
    backend = make(clock)
    hellos = [0]

    async def hello() -> dict[str, Any]:
        hellos[0] += 1
        local = clock.now() + timedelta(seconds=1000)
        return {"localTime": local.replace(tzinfo=None), "maxWireVersion": 7}

    backend._hello = hello  # type: ignore[method-assign]
    await ready(sent, backend)
    record = (await backend.compare_and_set(LeaseRequest(key="job", owner="a", ttl=120.0))).record
    assert record is not None
    sent.plans = 0

    def slow(index: int) -> None:
        clock.advance(61.0)  # past the estimate's maximum age

    sent.before = slow
    released = await backend.release("job", "a", token=record.token)
    return released, hellos[0], sent.plans


async def test_a_release_whose_estimate_went_stale_reads_the_time_to_answer(
    clock: FakeClock, sent: Sent
) -> None:
    """The end of the fast release that needs a round trip (``released_at``)."""
    assert await release_that_outlasts_the_estimate(clock, sent) == (True, 2, 1)


async def test_the_stale_release_test_sees_a_guess_without_reading(
    clock: FakeClock, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate(
        monkeypatch,
        AsyncMongoBackend.release,
        "return await self._run(ops.released_at(key, before, started))",
        "return False",
    )
    assert await release_that_outlasts_the_estimate(clock, sent) != (True, 2, 1)
