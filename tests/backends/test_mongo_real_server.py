"""MongoBackend against a real MongoDB server: set ``MONGOELECTOR_TEST_URI`` to run.

The authority on the server-side pipelines (which mongomock cannot run): the
same scenarios as the mongomock suites, in real time with short leases. Each
test works in a fresh database that is dropped afterwards. The 1.x
compatibility suite (``tests/compat``) also runs on the server when the
variable is set.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from mongoelector import Lock, MongoLeaderElector
from mongoelector.backends import LeaseRequest, MongoBackend
from mongoelector.clock import SystemClock
from tests.backends.mongo_support import LegacyNode

URI = os.environ.get("MONGOELECTOR_TEST_URI")

pytestmark = pytest.mark.skipif(
    not URI, reason="set MONGOELECTOR_TEST_URI to a MongoDB server to run the real-server tests"
)

TTL = 1.0


@pytest.fixture
def database() -> Iterator[Any]:
    assert URI is not None
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
    name = f"mongoelector_test_{uuid.uuid4().hex[:12]}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture(params=[None, False], ids=["auto", "classic"])
def backend(database: Any, request: pytest.FixtureRequest) -> MongoBackend:
    """The backend as deployed (pipelines on a modern server), and forced onto the classic path."""
    return MongoBackend(database, pipeline=request.param)


def ask(owner: str, ttl: float = TTL) -> LeaseRequest:
    return LeaseRequest(key="job", owner=owner, ttl=ttl)


def test_a_modern_server_gets_pipelines_and_tells_its_time(database: Any) -> None:
    backend = MongoBackend(database)
    estimate = backend.time_estimate()
    assert backend.uses_pipeline is True
    assert abs((estimate.time - SystemClock().now()).total_seconds()) < 5
    assert estimate.uncertainty < 1


def test_acquire_refuse_expire_take_over(backend: MongoBackend) -> None:
    first = backend.compare_and_set(ask("a"))
    assert first.acquired
    assert not backend.compare_and_set(ask("b")).acquired
    assert not backend.compare_and_set(ask("a")).acquired, "the holder asking again is refused"
    time.sleep(TTL + 0.2)
    second = backend.compare_and_set(ask("b"))
    assert second.acquired
    assert second.record.token > first.record.token
    assert backend.renew("job", "a", first.record.token, TTL) is None


def test_renew_release_force(backend: MongoBackend) -> None:
    record = backend.compare_and_set(ask("a", ttl=5)).record
    renewed = backend.renew("job", "a", record.token, 5)
    assert renewed is not None and renewed.expires_at >= record.expires_at
    forced = backend.compare_and_set(ask("b", ttl=5), force=True)
    assert forced.acquired and forced.record.token > record.token
    assert backend.release("job", "a", token=record.token) is False
    assert backend.release("job", "b", token=forced.record.token) is True
    assert backend.get("job").owner is None
    assert backend.compare_and_set(ask("c", ttl=5)).record.token > forced.record.token


def test_tokens_grow_across_deletions_and_processes(database: Any) -> None:
    tokens = []
    for round_number in range(3):
        backend = MongoBackend(database)
        result = backend.compare_and_set(ask(f"owner-{round_number}"))
        assert result.acquired
        tokens.append(result.record.token)
        database["mongolocker"].delete_one({"_id": "job"})
        time.sleep(0.002)
    assert tokens == sorted(set(tokens))


def test_operator_lookalikes_are_stored_as_text(backend: MongoBackend, database: Any) -> None:
    request = LeaseRequest(key="$job", owner="$$ROOT", ttl=5, host="$host", metadata={"k": "$x"})
    assert backend.compare_and_set(request).acquired
    document = database["mongolocker"].find_one({"_id": "$job"})
    assert (document["uuid"], document["host"], document["metadata"]) == (
        "$$ROOT",
        "$host",
        {"k": "$x"},
    )


def test_1x_and_2x_nodes_never_both_hold(backend: MongoBackend, database: Any) -> None:
    backend.get("job")  # creates the 1.x TTL index, as a 1.x node would
    legacy = LegacyNode(database["mongolocker"], "job", SystemClock(), ttl=TTL)  # type: ignore[arg-type]
    assert legacy.acquire()
    assert not backend.compare_and_set(ask("new")).acquired
    time.sleep(TTL + 0.2)
    taken = backend.compare_and_set(ask("new", ttl=5))
    assert taken.acquired
    assert not legacy.acquire()
    assert not legacy.owned()
    assert legacy.locked()
    assert backend.release("job", "new", token=taken.record.token)
    assert not legacy.locked()


def test_a_conflicting_1x_index_is_left_alone(database: Any) -> None:
    database["mongolocker"].create_index("ts_expire", expireAfterSeconds=30)
    database["mongolocker"].create_index("user_field")
    backend = MongoBackend(database)
    assert backend.compare_and_set(ask("a")).acquired
    indexes = database["mongolocker"].index_information()
    assert indexes["ts_expire_1"]["expireAfterSeconds"] == 30
    assert "user_field_1" in indexes


def test_lock_and_elector_facades(database: Any) -> None:
    with Lock("job", MongoBackend(database), ttl=5) as lock:
        assert lock.token is not None
    elector = MongoLeaderElector("svc", database, ttl=3)
    elector.poll()
    assert elector.is_leader
    assert elector.cluster_detail["leader"]["uuid"] == elector.uuid
    elector.release()
    assert not elector.mlock.locked()
