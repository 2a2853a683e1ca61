"""Round trips of an acquire on both write paths, and why the shortcuts decide as before.

Classic path: an acquire that expects a free lease sends one conditional
upsert (``optimistic_classic_acquire``); a lease seen held is read first. The
upsert may only apply where reading and ``plan_classic_acquire`` would have
written the very same document, which the property tests check on generated
documents. Pipeline path: a lease seen held is read first too, and a holder
that is surely live is refused without a write command.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
import mongomock.collection
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.errors import DuplicateKeyError

from mongoelector.backends import LeaseRequest, MongoBackend
from mongoelector.backends._mongo import commands
from mongoelector.backends._mongo.documents import time_floor
from mongoelector.testing import FakeClock
from tests.backends.mongo_pipeline_sim import install
from tests.backends.mongo_support import SkewedServer

TTL = 10.0
_CALLS = ("find_one", "find", "find_one_and_update", "insert_one", "update_one")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the mongomock collection calls made (outermost calls only)."""
    counted: Counter[str] = Counter()
    depth = [0]
    for name in _CALLS:
        original = getattr(mongomock.collection.Collection, name)

        def spy(
            self: Any, *args: Any, _original: Any = original, _name: str = name, **kw: Any
        ) -> Any:
            if depth[0] == 0:
                counted[_name] += 1
            depth[0] += 1
            try:
                return _original(self, *args, **kw)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(mongomock.collection.Collection, name, spy)
    return counted


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database() -> Any:
    return mongomock.MongoClient()["classic_tests"]


def backend_on(database: Any, clock: FakeClock, *, pipeline: bool = False) -> MongoBackend:
    backend = MongoBackend(database, clock=clock, pipeline=pipeline)
    backend.get("warm-up")  # the first call's set-up (indexes) is not what these tests count
    return backend


@pytest.fixture
def backend(database: Any, clock: FakeClock) -> MongoBackend:
    return backend_on(database, clock)


def ask(owner: str, key: str = "job") -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=TTL)


@pytest.fixture
def counted(calls: Counter[str]) -> Iterator[Counter[str]]:
    calls.clear()
    yield calls


def taken(calls: Counter[str]) -> dict[str, int]:
    seen = dict(calls)
    calls.clear()
    return seen


def test_an_uncontended_acquire_is_one_find_and_modify(
    backend: MongoBackend, counted: Counter[str]
) -> None:
    result = backend.compare_and_set(ask("a"))
    assert result.acquired
    assert taken(counted) == {"find_one_and_update": 1}


def test_a_released_lease_is_taken_again_in_one_round_trip_with_a_greater_token(
    backend: MongoBackend, counted: Counter[str]
) -> None:
    first = backend.compare_and_set(ask("a")).record
    assert backend.release("job", "a", token=first.token)
    taken(counted)
    again = backend.compare_and_set(ask("a"))  # same instant: the time floor alone would tie
    assert again.acquired
    assert again.record.token == first.token + 1
    assert taken(counted) == {"find_one_and_update": 1}


def test_a_lease_seen_held_is_read_first(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder, follower = backend_on(database, clock), backend_on(database, clock)
    held = holder.compare_and_set(ask("a")).record
    taken(calls)
    first = follower.compare_and_set(ask("b"))
    assert (first.acquired, first.record) == (False, held)
    assert taken(calls) == {"find_one_and_update": 1, "find_one": 1}
    clock.advance(1)
    second = follower.compare_and_set(ask("b"))
    assert (second.acquired, second.record) == (False, held)
    assert taken(calls) == {"find_one": 1}


def test_a_lease_seen_to_expire_is_taken_over_in_one_round_trip(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder, follower = backend_on(database, clock), backend_on(database, clock)
    held = holder.compare_and_set(ask("a")).record
    assert not follower.compare_and_set(ask("b")).acquired
    clock.advance(TTL)
    taken(calls)
    result = follower.compare_and_set(ask("b"))
    assert result.acquired
    assert result.record.token > held.token
    assert taken(calls) == {"find_one_and_update": 1}


def test_a_token_the_time_floor_does_not_raise_is_fixed_by_reading(
    database: Any, backend: MongoBackend, clock: FakeClock, counted: Counter[str]
) -> None:
    ahead = time_floor(clock.now()) + 10**9  # issued by a server clock far ahead of ours
    database["mongolocker"].insert_one({"_id": "job", "locked": False, "token": ahead})
    taken(counted)
    result = backend.compare_and_set(ask("a"))
    assert result.acquired
    assert result.record.token == ahead + 1
    assert taken(counted) == {"find_one_and_update": 2, "find_one": 1}


def test_a_1x_document_without_a_token_is_taken_with_the_time_floor(
    database: Any, backend: MongoBackend, clock: FakeClock, counted: Counter[str]
) -> None:
    expired = clock.now() - timedelta(seconds=1)
    database["mongolocker"].insert_one(
        {"_id": "job", "locked": True, "uuid": "old", "ts_created": expired, "ts_expire": expired}
    )
    taken(counted)
    result = backend.compare_and_set(ask("a"))
    assert result.acquired
    assert result.record.token == time_floor(clock.now())
    assert taken(counted) == {"find_one_and_update": 1}


def test_force_takes_a_live_lease_in_one_round_trip(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder, other = backend_on(database, clock), backend_on(database, clock)
    held = holder.compare_and_set(ask("a")).record
    clock.advance(1)
    taken(calls)
    result = other.compare_and_set(ask("b"), force=True)
    assert result.acquired
    assert result.record.token > held.token
    assert taken(calls) == {"find_one_and_update": 1}


def test_a_retry_of_an_acquire_that_applied_confirms_it(
    backend: MongoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import AutoReconnect

    original = mongomock.collection.Collection.find_one_and_update
    failures = [1]

    def lose_the_reply(self: Any, *args: Any, **kwargs: Any) -> Any:
        document = original(self, *args, **kwargs)
        if failures:
            failures.pop()
            raise AutoReconnect("connection closed after the write")
        return document

    monkeypatch.setattr(mongomock.collection.Collection, "find_one_and_update", lose_the_reply)
    result = backend.compare_and_set(ask("a"))
    assert result.acquired
    assert result.record.owner == "a"


# --- the pipeline path ---------------------------------------------------------------------------


@pytest.fixture
def pipelines(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, clock.now)


@pytest.mark.usefixtures("pipelines")
def test_a_pipeline_follower_reads_a_live_holder_instead_of_writing(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder = backend_on(database, clock, pipeline=True)
    follower = backend_on(database, clock, pipeline=True)
    held = holder.compare_and_set(ask("a")).record
    taken(calls)
    assert not follower.compare_and_set(ask("b")).acquired
    assert taken(calls) == {"find_one_and_update": 1}  # a holder it had not seen
    clock.advance(1)
    refused = follower.compare_and_set(ask("b"))
    assert (refused.acquired, refused.record) == (False, held)
    assert taken(calls) == {"find_one": 1}
    clock.advance(TTL)
    taken_over = follower.compare_and_set(ask("b"))
    assert taken_over.acquired
    assert taken(calls) == {"find_one_and_update": 1}


@pytest.mark.usefixtures("pipelines")
def test_a_pipeline_follower_whose_holder_left_early_reads_then_writes(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder = backend_on(database, clock, pipeline=True)
    follower = backend_on(database, clock, pipeline=True)
    held = holder.compare_and_set(ask("a")).record
    assert not follower.compare_and_set(ask("b")).acquired
    assert holder.release("job", "a", token=held.token)
    taken(calls)
    result = follower.compare_and_set(ask("b"))
    assert result.acquired
    assert result.record.token > held.token
    assert taken(calls) == {"find_one": 1, "find_one_and_update": 1}


@pytest.mark.usefixtures("pipelines")
def test_a_holder_live_only_within_the_time_uncertainty_is_left_to_the_server(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder = backend_on(database, clock, pipeline=True)
    follower = MongoBackend(database, clock=clock)
    follower._hello = SkewedServer(clock, skew=0, wire=8, round_trip=0.2)  # type: ignore[method-assign]
    held = holder.compare_and_set(ask("a")).record
    assert not follower.compare_and_set(ask("b")).acquired
    assert follower.time_estimate().uncertainty >= 0.1
    clock.advance(TTL - 0.05 - (clock.now() - held.acquired_at).total_seconds())
    taken(calls)
    refused = follower.compare_and_set(ask("b"))  # by the server, whose $$NOW decides
    assert (refused.acquired, refused.record) == (False, held)
    assert taken(calls) == {"find_one": 1, "find_one_and_update": 1}


@pytest.mark.usefixtures("pipelines")
def test_force_on_the_pipeline_path_never_reads_first(
    database: Any, clock: FakeClock, calls: Counter[str]
) -> None:
    holder = backend_on(database, clock, pipeline=True)
    other = backend_on(database, clock, pipeline=True)
    holder.compare_and_set(ask("a"))
    assert not other.compare_and_set(ask("b")).acquired
    taken(calls)
    assert other.compare_and_set(ask("b"), force=True).acquired
    assert taken(calls) == {"find_one_and_update": 1}


# --- the upsert applies only where reading and planning would write the same ----------------

NOW = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
FLOOR = time_floor(NOW)
MISSING = object()

_expiries = st.sampled_from([-5.0, -0.0015, -0.001, -0.0005, 0.0, 0.0004, 0.001, 3.0]).map(
    lambda seconds: NOW + timedelta(seconds=seconds)
)
documents = st.fixed_dictionaries(
    {
        "locked": st.sampled_from([True, False, MISSING, None, "yes"]),
        "uuid": st.sampled_from(["old", MISSING]),
        "ts_expire": st.one_of(_expiries, st.sampled_from([MISSING, "soon", None])),
        "token": st.one_of(
            st.sampled_from([MISSING, "7", None, 2.5]),
            st.integers(min_value=0, max_value=5).map(lambda n: FLOOR - 3 + n),
            st.integers(min_value=0, max_value=10**6),
        ),
    }
).map(lambda fields: {k: v for k, v in fields.items() if v is not MISSING})


def _apply_plan(document: dict[str, Any] | None, step: commands.ClassicStep) -> dict[str, Any]:
    if isinstance(step, commands.Insert):
        return dict(step.document)
    assert isinstance(step, commands.Replace)
    assert document is not None
    return {**document, **step.update["$set"]}


def _stored(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as the store gives it back (naive UTC times, whole milliseconds)."""
    collection = mongomock.MongoClient()["plan"]["leases"]
    collection.insert_one(copy.deepcopy(document))
    stored = collection.find_one({"_id": document["_id"]})
    assert stored is not None
    return stored


@settings(max_examples=300, deadline=None)
@given(
    document=st.one_of(st.none(), documents),
    force=st.booleans(),
    uncertainty=st.sampled_from([0.0, 0.0007, 0.25]),
    least_token=st.sampled_from([1, FLOOR - 1, FLOOR + 2]),
)
def test_the_upsert_writes_what_reading_and_planning_would(
    document: dict[str, Any] | None, force: bool, uncertainty: float, least_token: int
) -> None:
    collection = mongomock.MongoClient()["prop"]["leases"]
    if document is not None:
        collection.insert_one({"_id": "job", **document})
    current = collection.find_one({"_id": "job"})
    request = ask("me")
    call = commands.ClassicAcquire(
        request=request,
        acquire_id="id-1",
        force=force,
        now=NOW,
        uncertainty=uncertainty,
        least_token=least_token,
    )
    command = commands.optimistic_classic_acquire(call)
    plan = commands.plan_classic_acquire(current, call)
    try:
        after = collection.find_one_and_update(
            command.filter, command.update, upsert=True, return_document=True
        )
    except DuplicateKeyError:
        assert collection.find_one({"_id": "job"}) == current  # nothing changed
        return
    assert isinstance(plan, (commands.Insert, commands.Replace)), plan
    assert after == _stored(_apply_plan(current, plan))
    assert commands.read_acquire_reply(after, request, "id-1").acquired


@settings(max_examples=100, deadline=None)
@given(
    expired_by=st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    token=st.one_of(st.none(), st.integers(min_value=0, max_value=FLOOR - 1)),
    locked=st.booleans(),
)
def test_the_upsert_applies_to_every_free_lease_with_a_smaller_token(
    expired_by: float | None, token: int | None, locked: bool
) -> None:
    collection = mongomock.MongoClient()["prop"]["leases"]
    document: dict[str, Any] = {"_id": "job", "locked": locked, "uuid": "old"}
    if expired_by is not None:  # no ts_expire at all counts as expired
        document["ts_expire"] = NOW - timedelta(seconds=expired_by)
    if token is not None:
        document["token"] = token
    collection.insert_one(document)
    command = commands.optimistic_classic_acquire(
        commands.ClassicAcquire(
            request=ask("me"),
            acquire_id="id-1",
            force=False,
            now=NOW,
            uncertainty=0.0,
            least_token=1,
        )
    )
    after = collection.find_one_and_update(
        command.filter, command.update, upsert=True, return_document=True
    )
    assert after is not None
    assert (after["uuid"], after["token"]) == ("me", FLOOR)
