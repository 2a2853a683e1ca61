"""MongoBackend on the wire: a real pymongo client talking to a scripted server (mockupdb).

These tests pin the exact commands sent (shape, write concern, read
preference) and what the backend makes of server errors, step-downs and lost
connections. The server is a replica-set primary answering ``hello`` on its
own; every other request is answered by the test. Backends run on a fake
clock, so their retry pauses take no real time.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pymongo
import pytest
from bson import ObjectId
from mockupdb import MockupDB, going

from mongoelector import LeaderElector, Lock
from mongoelector.backends import AmbiguousOutcome, BackendUnavailable, LeaseRequest, MongoBackend
from mongoelector.testing import FakeClock

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
REQUEST = LeaseRequest(key="job", owner="me", ttl=10, host="h", pid=7)


def is_command(request: Any, name: str) -> bool:
    return getattr(request, "command_name", None) == name


def hang_up_on(name: str) -> Any:
    """An autoresponder that drops the connection on every ``name`` command."""
    return lambda request: is_command(request, name) and request.hangup()


class Primary:
    """A mockupdb server that says it is the primary of replica set ``rs``."""

    def __init__(self) -> None:
        self.server = MockupDB(request_timeout=5)
        self.server.autoresponds(self._hello)
        self.server.autoresponds(
            lambda request: is_command(request, "endSessions") and request.ok()
        )
        self.index_requests: list[Any] = []
        self.server.autoresponds(self._create_indexes)
        self.hellos = 0
        self.clients: list[pymongo.MongoClient[Any]] = []
        self.server.run()

    def _hello(self, request: Any) -> bool:
        if not (request.matches("hello") or request.matches("ismaster")):
            return False
        self.hellos += 1
        address = self.server.address_string
        return request.ok(
            ismaster=True,
            isWritablePrimary=True,
            helloOk=True,
            setName="rs",
            setVersion=1,
            electionId=ObjectId("7fffffff0000000000000001"),
            hosts=[address],
            primary=address,
            me=address,
            minWireVersion=0,
            maxWireVersion=21,
            logicalSessionTimeoutMinutes=30,
            localTime=datetime.now(timezone.utc),
        )

    def _create_indexes(self, request: Any) -> bool:
        if not is_command(request, "createIndexes"):
            return False
        self.index_requests.append(request)
        return request.ok()

    def client(self, **options: Any) -> pymongo.MongoClient[Any]:
        options.setdefault("serverSelectionTimeoutMS", 3000)
        options.setdefault("connectTimeoutMS", 2000)
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            self.server.uri, replicaSet="rs", **options
        )
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        # Stopping waits up to a second for mockupdb's accept loop; do it in the background.
        threading.Thread(target=self.server.stop, daemon=True).start()

    def receives(self, command: str) -> Any:
        """The next request, which must be ``command``."""
        request = self.server.receives()
        assert is_command(request, command), request
        return request

    def idle(self) -> bool:
        """True if no request is waiting for an answer."""
        return not self.server.got(timeout=0.1)


@pytest.fixture
def primary(monkeypatch: pytest.MonkeyPatch) -> Iterator[Primary]:
    # After an error pymongo waits for a fresh look at the server, at most every
    # 0.5 s; shorten that so the retry tests take no noticeable time.
    monkeypatch.setattr(pymongo.common, "MIN_HEARTBEAT_INTERVAL", 0.01)
    mock = Primary()
    yield mock
    mock.stop()


def make_backend(primary: Primary, **client_options: Any) -> MongoBackend:
    client = primary.client(**client_options)
    return MongoBackend(client["app"], clock=FakeClock(NOW), timeout=3)


@pytest.fixture
def backend(primary: Primary) -> MongoBackend:
    return make_backend(primary, retryWrites=False)


def warm_up(primary: Primary, backend: MongoBackend) -> None:
    """Make the first call (clock read, indexes) so later calls show their own traffic."""
    with going(backend.get, "warm-up"):
        primary.receives("find").ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})


def acquire_id_of(request: Any) -> str:
    return request["update"][0]["$replaceWith"]["$cond"]["then"]["acquire_id"]["$literal"]


def lease_document(owner: str = "me", token: int = 5, acquire_id: str = "x") -> dict[str, Any]:
    return {
        "_id": "job",
        "locked": True,
        "uuid": owner,
        "host": "h",
        "pid": 7,
        "token": token,
        "acquire_id": acquire_id,
        "ts_created": NOW.replace(tzinfo=None),
        "ts_expire": NOW.replace(tzinfo=None, second=10),
    }


def answer_acquire(request: Any, token: int = 5) -> None:
    """Reply as if the acquire in ``request`` was applied (now or by an earlier attempt)."""
    taken = request["update"][0]["$replaceWith"]["$cond"]["then"]
    owner = taken["uuid"]["$literal"]
    request.ok(value=lease_document(owner, token=token, acquire_id=acquire_id_of(request)))


# --- the commands --------------------------------------------------------------------------


def test_the_first_call_reads_the_server_clock_and_creates_the_1x_index(
    primary: Primary, backend: MongoBackend
) -> None:
    warm_up(primary, backend)
    assert primary.hellos >= 1
    (index_request,) = primary.index_requests
    assert index_request["indexes"][0]["key"] == {"ts_expire": 1}
    assert index_request["indexes"][0]["expireAfterSeconds"] == 0
    assert backend.uses_pipeline is True


def test_an_uncontended_acquire_is_one_find_and_modify(
    primary: Primary, backend: MongoBackend
) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        request = primary.receives("findAndModify")
        assert request["findAndModify"] == "mongolocker"
        assert request["query"] == {"_id": "job"}
        assert request["upsert"] is True
        assert request["new"] is True
        assert request["writeConcern"] == {"w": "majority"}
        acquire_id = acquire_id_of(request)
        free = {"$or": [{"$ne": ["$locked", True]}, {"$lte": ["$ts_expire", "$$NOW"]}]}
        taken = {
            "_id": "$_id",
            "locked": {"$literal": True},
            "uuid": {"$literal": "me"},
            "host": {"$literal": "h"},
            "pid": {"$literal": 7},
            "acquire_id": {"$literal": acquire_id},
            "metadata": {"$literal": {}},
            "ts_created": "$$NOW",
            "ts_expire": {"$add": ["$$NOW", 10000]},
            "token": {
                "$max": [
                    {"$add": [{"$ifNull": ["$token", 0]}, 1]},
                    {"$multiply": [{"$toLong": "$$NOW"}, 1000]},
                    {"$literal": 1},
                ]
            },
        }
        assert request["update"] == [
            {"$replaceWith": {"$cond": {"if": free, "then": taken, "else": "$$ROOT"}}}
        ]
        answer_acquire(request)
    assert result().acquired
    assert result().record.token == 5
    assert primary.idle()


def test_a_refused_acquire_reports_the_holder(primary: Primary, backend: MongoBackend) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        primary.receives("findAndModify").ok(value=lease_document(owner="other", token=9))
    assert not result().acquired
    assert result().record.owner == "other"


def test_renew_and_release_are_one_round_trip_each(primary: Primary, backend: MongoBackend) -> None:
    warm_up(primary, backend)
    with going(backend.renew, "job", "me", 5, 10) as renewed:
        request = primary.receives("findAndModify")
        assert request["query"] == {"_id": "job", "locked": True, "uuid": "me", "token": 5}
        assert request["update"] == [{"$set": {"ts_expire": {"$add": ["$$NOW", 10000]}}}]
        assert request["new"] is True
        assert "upsert" not in request or request["upsert"] is False
        assert request["writeConcern"] == {"w": "majority"}
        request.ok(value=lease_document())
    assert renewed().owner == "me"
    with going(backend.release, "job", "me", token=5) as released:
        request = primary.receives("findAndModify")
        assert request["query"] == {"_id": "job", "locked": True, "uuid": "me", "token": 5}
        (stage,) = request["update"]
        assert stage["$set"]["locked"] is False
        assert request["new"] is False
        assert request["writeConcern"] == {"w": "majority"}
        request.ok(value=None)
    assert released() is False
    assert primary.idle()


def test_reads_that_decide_leadership_go_to_the_primary(primary: Primary) -> None:
    backend = make_backend(primary, readPreference="secondaryPreferred")
    warm_up(primary, backend)
    with going(backend.get, "job"):
        request = primary.receives("find")
        assert request.doc.get("$readPreference", {"mode": "primary"}) == {"mode": "primary"}
        assert request["filter"] == {"_id": "job"}
        request.ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})


# --- failures -------------------------------------------------------------------------------


def test_not_primary_is_retried_and_then_succeeds(primary: Primary, backend: MongoBackend) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        first = primary.receives("findAndModify")
        first.command_err(code=10107, errmsg="not primary")
        second = primary.receives("findAndModify")
        assert acquire_id_of(second) == acquire_id_of(first)
        answer_acquire(second)
    assert result().acquired


def test_an_acquire_interrupted_at_step_down_is_sent_again_and_recognised(
    primary: Primary, backend: MongoBackend
) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        primary.receives("findAndModify").command_err(code=11602, errmsg="interrupted")
        # The first attempt had applied: the document carries its acquire id.
        answer_acquire(primary.receives("findAndModify"))
    assert result().acquired


def test_a_dropped_connection_after_the_write_is_sent_again(
    primary: Primary, backend: MongoBackend
) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        primary.receives("findAndModify").hangup()
        answer_acquire(primary.receives("findAndModify"))
    assert result().acquired
    with going(backend.renew, "job", "me", 5, 10) as renewed:
        primary.receives("findAndModify").hangup()
        primary.receives("findAndModify").ok(value=lease_document())
    assert renewed() is not None


def test_a_write_concern_error_may_have_applied(primary: Primary, backend: MongoBackend) -> None:
    warm_up(primary, backend)
    wc_error = {"code": 64, "errmsg": "waiting for replication timed out"}
    with going(backend.compare_and_set, REQUEST) as result:
        first = primary.receives("findAndModify")
        first.ok(value=lease_document(acquire_id=acquire_id_of(first)), writeConcernError=wc_error)
        answer_acquire(primary.receives("findAndModify"))
    assert result().acquired


def test_when_every_attempt_may_have_applied_the_outcome_is_ambiguous(
    primary: Primary, backend: MongoBackend
) -> None:
    warm_up(primary, backend)
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    with pytest.raises(AmbiguousOutcome):
        backend.renew("job", "me", 5, 10)
    primary.server.cancel_responder(responder)


def test_retryable_writes_resend_the_same_transaction(primary: Primary) -> None:
    backend = make_backend(primary)  # retryWrites is on by default
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        first = primary.receives("findAndModify")
        first.hangup()
        second = primary.receives("findAndModify")
        assert second["lsid"] == first["lsid"]
        assert second["txnNumber"] == first["txnNumber"]
        answer_acquire(second)
    assert result().acquired


def test_no_reachable_server_is_unavailable_and_quick() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    backend = MongoBackend(client["app"], clock=FakeClock(NOW), timeout=0.3)
    with pytest.raises(BackendUnavailable) as raised:
        backend.compare_and_set(REQUEST)
    assert not isinstance(raised.value, AmbiguousOutcome)
    assert isinstance(raised.value.original, pymongo.errors.ServerSelectionTimeoutError)
    client.close()


# --- the holders on top ---------------------------------------------------------------------


def test_a_leader_that_cannot_renew_steps_down_at_its_deadline(
    primary: Primary, backend: MongoBackend
) -> None:
    clock = backend.clock
    assert isinstance(clock, FakeClock)
    losses: list[str] = []
    elector = LeaderElector(
        "job", backend, clock=clock, report_status=False, on_leader_loss=lambda: losses.append("x")
    )
    with going(elector.poll):
        answer_acquire(primary.receives("findAndModify"))
    assert elector.is_leader
    started = clock.monotonic()
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    while clock.monotonic() < started + elector.renew_deadline:
        clock.advance(elector.retry_period)
        elector.poll()
        if clock.monotonic() >= started + elector.renew_deadline:
            break
        assert elector.is_leader == (clock.monotonic() < started + elector.renew_deadline)
    assert not elector.is_leader
    assert elector.token is None
    elector.poll()
    primary.server.cancel_responder(responder)
    assert losses == ["x"]


def test_a_lock_whose_acquire_replies_were_lost_confirms_by_reading(
    primary: Primary, backend: MongoBackend
) -> None:
    lock = Lock("job", backend, ttl=10, clock=backend.clock)
    warm_up(primary, backend)
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    with going(lock.acquire, blocking=False) as acquired:
        # Every acquire attempt lost its connection; the lock reads to find out.
        find = primary.receives("find")
        primary.server.cancel_responder(responder)
        mine = lease_document(owner=lock.uuid, token=5)
        find.ok(cursor={"id": 0, "firstBatch": [mine], "ns": "app.mongolocker"})
        # It was applied: the lock renews it before trusting it.
        renew = primary.receives("findAndModify")
        assert renew["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 5}
        renew.ok(value=mine)
    assert acquired() is True
    assert lock.token == 5
