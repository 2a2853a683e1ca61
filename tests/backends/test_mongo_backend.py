"""MongoBackend specifics on mongomock: arguments, indexes, time, operator lookalikes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
import pymongo
import pytest

from mongoelector.backends import (
    BackendUnavailable,
    Capability,
    LeaseRecord,
    LeaseRequest,
    MongoBackend,
    RenewItem,
)
from mongoelector.errors import AmbiguousOutcome, TimeOffsetError
from mongoelector.testing import FakeClock
from tests.backends.mongo_support import MONGO_KINDS, SkewedServer, Store, make_store

TTL = 10.0


@pytest.fixture
def database() -> Any:
    return mongomock.MongoClient()["backend_tests"]


@pytest.fixture(params=MONGO_KINDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    return make_store(request.param, monkeypatch)


# --- arguments ----------------------------------------------------------------------------


def test_a_client_is_not_a_database() -> None:
    with pytest.raises(TypeError, match="not a client"):
        MongoBackend(mongomock.MongoClient())
    with pytest.raises(TypeError, match="not a client"):
        MongoBackend(pymongo.MongoClient(connect=False))


def test_an_async_database_is_refused_by_the_sync_backend() -> None:
    client: Any = pymongo.AsyncMongoClient(connect=False)
    with pytest.raises(TypeError, match="sync"):
        MongoBackend(client["db"])


@pytest.mark.parametrize("value", [None, "name", {"a": 1}, 3])
def test_other_objects_are_not_databases(value: object) -> None:
    with pytest.raises(TypeError):
        MongoBackend(value)


@pytest.mark.parametrize("name", ["", "a$b", "system.locks", ".x", "x.", "a..b", "a\x00b"])
def test_invalid_collection_names_are_refused(database: Any, name: str) -> None:
    with pytest.raises(ValueError, match="collection"):
        MongoBackend(database, name)
    with pytest.raises(ValueError):
        MongoBackend(database, status_collection=name)
    assert database.list_collection_names() == []


def test_a_collection_name_must_be_a_str(database: Any) -> None:
    with pytest.raises(TypeError):
        MongoBackend(database, 5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata", [{"$set": "x"}, {"a.b": "x"}, {"": "x"}, {"a": 1}, {1: "a"}, "text"]
)
def test_bad_metadata_is_refused_before_anything_is_written(store: Store, metadata: object) -> None:
    request = LeaseRequest(key="job", owner="a", ttl=TTL, metadata=metadata)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        store.backend.compare_and_set(request)
    assert store.collection.count_documents({}) == 0


@pytest.mark.parametrize("owner", ["$$ROOT", "$locked", "$$NOW", "{$gt: ''}"])
def test_values_that_look_like_operators_are_stored_as_text(store: Store, owner: str) -> None:
    request = LeaseRequest(
        key="$job", owner=owner, ttl=TTL, host="$host", metadata={"k": "$$REMOVE"}
    )
    result = store.backend.compare_and_set(request)
    assert result.acquired
    document = store.collection.find_one({"_id": "$job"})
    assert document["uuid"] == owner
    assert document["host"] == "$host"
    assert document["metadata"] == {"k": "$$REMOVE"}
    assert store.backend.renew("$job", owner, result.record.token, TTL) is not None


# --- indexes -------------------------------------------------------------------------------


def test_the_1x_ttl_index_is_created_once(store: Store) -> None:
    store.backend.get("job")
    store.backend.get("job")
    indexes = store.collection.index_information()
    assert indexes["ts_expire_1"]["expireAfterSeconds"] == 0


def test_a_conflicting_index_is_reported_and_nothing_is_dropped(
    database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    database["mongolocker"].create_index("ts_expire", expireAfterSeconds=30)
    database["mongolocker"].create_index("user_field")
    backend = MongoBackend(database, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="mongoelector.backend"):
        assert backend.compare_and_set(LeaseRequest(key="job", owner="a", ttl=TTL)).acquired
    indexes = database["mongolocker"].index_information()
    assert indexes["ts_expire_1"]["expireAfterSeconds"] == 30
    assert "user_field_1" in indexes
    assert any("ts_expire" in message for message in caplog.messages)


def test_status_indexes_follow_the_1x_layout(store: Store) -> None:
    from mongoelector.backends import MemberRecord

    member = MemberRecord(
        key="svc", uuid="m", host="h", pid=1, is_leader=False, elector_running=True, ttl=15
    )
    store.backend.report_member(member)
    store.backend.report_member(member)
    indexes = store.collection.database["elector.leader_status"].index_information()
    assert indexes["timestamp_1"]["expireAfterSeconds"] == 15
    assert "key_1" in indexes


def test_index_creation_can_be_turned_off(database: Any) -> None:
    MongoBackend(database, create_indexes=False, clock=FakeClock()).get("job")
    assert "ts_expire_1" not in database["mongolocker"].index_information()


# --- time ---------------------------------------------------------------------------------


def test_without_server_time_the_backend_clock_is_server_time(database: Any) -> None:
    clock = FakeClock()
    backend = MongoBackend(database, clock=clock)
    estimate = backend.time_estimate()
    assert estimate.time == clock.now()
    assert estimate.uncertainty == 0
    assert backend.server_time() == clock.now()
    assert backend.clock_offset() is None
    assert backend.uses_pipeline is False


def test_server_time_comes_from_hello_with_its_uncertainty(database: Any) -> None:
    clock = FakeClock()
    backend = MongoBackend(database, clock=clock)
    server = SkewedServer(clock, skew=3.0)
    backend._hello = server  # type: ignore[method-assign]
    estimate = backend.time_estimate()
    expected = clock.now() + timedelta(seconds=3)
    assert abs((estimate.time - expected).total_seconds()) <= estimate.uncertainty
    assert 0.01 <= estimate.uncertainty < 0.02
    assert backend.uses_pipeline is False
    calls = server.calls
    clock.advance(30)
    backend.time_estimate()
    assert server.calls == calls, "a fresh sample is reused"
    clock.advance(31)
    backend.time_estimate()
    assert server.calls == calls + 1, "a stale sample is refreshed"


def test_a_recent_enough_server_is_written_with_pipelines(database: Any) -> None:
    clock = FakeClock()
    backend = MongoBackend(database, clock=clock)
    backend._hello = SkewedServer(clock, skew=0, wire=8)  # type: ignore[method-assign]
    backend.time_estimate()
    assert backend.uses_pipeline is True


def test_classic_writes_keep_a_margin_for_the_time_uncertainty(database: Any) -> None:
    clock = FakeClock()
    writer = MongoBackend(database, clock=clock)
    writer._hello = SkewedServer(clock, skew=0, round_trip=0.2)  # type: ignore[method-assign]
    record = writer.compare_and_set(LeaseRequest(key="job", owner="a", ttl=TTL)).record
    assert record.expires_at - record.acquired_at > timedelta(seconds=TTL)
    clock.advance(TTL)
    # Written with a margin, and judged expired only once expired at the earliest
    # time the estimate may stand for (its uncertainty also grows with age).
    assert not writer.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)).acquired
    clock.advance(0.25)
    assert not writer.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)).acquired
    clock.advance(0.25)
    assert writer.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)).acquired


def test_clock_offset_measures_this_host_against_the_server(database: Any) -> None:
    clock = FakeClock(datetime(2031, 5, 1, tzinfo=timezone.utc))
    backend = MongoBackend(database, clock=clock)
    backend._hello = SkewedServer(clock, skew=-2.0)  # type: ignore[method-assign]
    offset, uncertainty = backend.clock_offset()
    assert abs(offset + 2.0) <= uncertainty


def test_an_acquire_check_failure_refuses_without_writing(database: Any) -> None:
    def check() -> None:
        raise TimeOffsetError("clock too far off")

    backend = MongoBackend(database, clock=FakeClock(), acquire_check=check)
    with pytest.raises(BackendUnavailable, match="clock too far off"):
        backend.compare_and_set(LeaseRequest(key="job", owner="a", ttl=TTL))
    assert database["mongolocker"].count_documents({}) == 0


def test_without_a_status_collection_there_is_no_member_status(database: Any) -> None:
    backend = MongoBackend(database, status_collection=None, clock=FakeClock())
    assert Capability.MEMBER_STATUS not in backend.capabilities
    assert backend.capabilities == {Capability.RENEW_MANY, Capability.GET_MANY}
    with pytest.raises(RuntimeError):
        backend.members("svc")


class ReadsTheClockAt:
    """A server whose ``hello`` reads its clock at the start or the end of the round trip.

    The estimate (centred on the round trip) is then off by half the round
    trip, one way or the other: the most an estimate may err within its stated
    uncertainty.
    """

    def __init__(self, clock: FakeClock, *, at_start: bool, round_trip: float = 0.4) -> None:
        self.clock = clock
        self.at_start = at_start
        self.round_trip = round_trip

    def __call__(self) -> dict[str, Any]:
        read = (
            self.clock.now()
            if self.at_start
            else self.clock.now() + timedelta(seconds=self.round_trip)
        )
        self.clock.advance(self.round_trip)
        return {"localTime": read.replace(tzinfo=None), "maxWireVersion": 7}


def test_classic_tokens_grow_across_a_deletion_after_expiry_whichever_way_estimates_err(
    database: Any,
) -> None:
    """Issue 13, item 4: opposite errors within the stated uncertainty, then a TTL deletion."""
    clock = FakeClock()
    ahead = MongoBackend(database, clock=clock)
    ahead._hello = ReadsTheClockAt(clock, at_start=False)  # type: ignore[method-assign]
    behind = MongoBackend(database, clock=clock)
    behind._hello = ReadsTheClockAt(clock, at_start=True)  # type: ignore[method-assign]
    behind.server_time()  # both have read the clock before the scenario starts
    ahead.server_time()
    collection = database["mongolocker"]

    first = ahead.compare_and_set(LeaseRequest(key="job", owner="a", ttl=TTL)).record
    assert first is not None
    assert ahead.release("job", "a", token=first.token)
    # A TTL index deletes the record once the server's clock passes its ts_expire.
    expiry = collection.find_one({"_id": "job"})["ts_expire"].replace(tzinfo=timezone.utc)
    clock.advance(max(0.0, (expiry - clock.now()).total_seconds()) + 0.001)
    collection.delete_many({"ts_expire": {"$lt": clock.now()}})
    assert collection.find_one({"_id": "job"}) is None

    second = behind.compare_and_set(LeaseRequest(key="job", owner="b", ttl=TTL)).record
    assert second is not None
    assert second.token > first.token


def _renew_three_and_record_the_calls(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], MongoBackend, list[RenewItem], list[LeaseRecord | None]]:
    """Renew three holdings this backend has seen; the mongomock calls sent, in order."""
    backend = MongoBackend(database, clock=FakeClock())
    held = [backend.compare_and_set(LeaseRequest(key=f"k{n}", owner="me", ttl=5)) for n in range(3)]
    items = [
        RenewItem(key=r.record.key, owner="me", token=r.record.token, ttl=9)
        for r in held
        if r.record
    ]
    sent: list[str] = []
    spied = {
        mongomock.collection.Collection: ("update_one", "bulk_write", "find"),
        mongomock.collection.BulkOperationBuilder: ("execute",),
    }
    for owner, names in spied.items():
        for name in names:
            original = getattr(owner, name)

            def counted(
                self: Any, *args: Any, _name: str = name, _original: Any = original, **kw: Any
            ) -> Any:
                sent.append(_name)
                return _original(self, *args, **kw)

            monkeypatch.setattr(owner, name, counted)
    return sent, backend, items, backend.renew_many(items)


def test_on_mongomock_a_batch_is_one_bulk_operation_of_pymongo_3s_api(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mongomock's bulk_write cannot take pymongo 4.9+'s UpdateOne; its unordered bulk
    operation (pymongo 3's API) sends the batch in one call."""
    sent, backend, items, renewed = _renew_three_and_record_the_calls(database, monkeypatch)

    assert sent == ["execute"]  # the holdings were seen: no read on the classic path
    assert renewed == [backend.get(item.key) for item in items]


def test_on_a_lookalike_without_bulk_operations_a_batch_is_one_update_per_item(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(mongomock.collection.Collection, "initialize_unordered_bulk_op")
    sent, backend, items, renewed = _renew_three_and_record_the_calls(database, monkeypatch)

    assert sent == ["update_one"] * 3  # the holdings were seen: no read on the classic path
    assert renewed == [backend.get(item.key) for item in items]


def test_on_a_lookalike_without_bulk_operations_a_failure_after_a_renewal_is_ambiguous(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One update per item: a statement refused after an earlier one renewed its holding is
    not 'nothing renewed' (BackendUnavailable) but AmbiguousOutcome (the batch's promise)."""
    monkeypatch.delattr(mongomock.collection.Collection, "initialize_unordered_bulk_op")
    backend = MongoBackend(database, clock=FakeClock())
    held = [backend.compare_and_set(LeaseRequest(key=f"k{n}", owner="me", ttl=5)) for n in range(3)]
    items = [
        RenewItem(key=r.record.key, owner="me", token=r.record.token, ttl=9)
        for r in held
        if r.record
    ]
    before = [backend.get(item.key) for item in items]
    original = mongomock.collection.Collection.update_one
    sent: list[str] = []

    def k1_refused(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        sent.append(query["_id"])
        if query["_id"] == "k1":  # a rejected command (not transient): nothing applied
            raise pymongo.errors.OperationFailure("Document failed validation", code=121)
        return original(self, query, *args, **kw)

    monkeypatch.setattr(mongomock.collection.Collection, "update_one", k1_refused)

    with pytest.raises(AmbiguousOutcome):
        backend.renew_many(items)
    assert sent == ["k0", "k1"]  # k0 was renewed before k1 was refused
    after = backend.get("k0")
    assert before[0] is not None and after is not None and after.expires_at > before[0].expires_at
    # a refusal of the first statement renewed nothing: still BackendUnavailable
    sent.clear()
    with pytest.raises(BackendUnavailable):
        backend.renew_many(items[1:])


def test_a_refused_item_in_a_mongomock_bulk_operation_is_read_once(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = MongoBackend(database, clock=FakeClock())
    records = [
        backend.compare_and_set(LeaseRequest(key=f"k{n}", owner="me", ttl=5)).record
        for n in range(3)
    ]
    assert all(records)
    items = [RenewItem(key=r.key, owner="me", token=r.token, ttl=9) for r in records if r]
    backend.release("k1", "me", token=items[1].token)

    renewed = backend.renew_many(items)

    assert [record.key if record else None for record in renewed] == ["k0", None, "k2"]
