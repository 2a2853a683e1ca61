"""MongoBackend and AsyncMongoBackend on the wire: real pymongo clients talking to mockupdb.

These tests pin the exact commands sent (shape, write concern, read
preference) and what the backends make of server errors, step-downs and lost
connections. Every scenario runs twice: on ``MongoBackend`` with a
``MongoClient``, and on ``AsyncMongoBackend`` with an ``AsyncMongoClient``
(see :mod:`mongo_wire_support`). The server is a replica-set primary
answering ``hello`` on its own; every other request is answered by the test.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
import pytest
from mockupdb import going

from mongoelector import LeaderElector, Lock
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import (
    AmbiguousOutcome,
    AsyncMongoBackend,
    BackendUnavailable,
    MongoBackend,
)
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend, EventLoopThread
from tests.backends.mongo_wire_support import (
    KINDS,
    NOW,
    REQUEST,
    Primary,
    WireBackend,
    acquire_id_of,
    answer_acquire,
    hang_up_on,
    inner,
    is_command,
    lease_document,
    make_backend,
    warm_up,
)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(primary: Primary, kind: str) -> WireBackend:
    return make_backend(primary, kind, retryWrites=False)


# --- the commands --------------------------------------------------------------------------


def test_the_first_call_reads_the_server_clock_and_creates_the_1x_index(
    primary: Primary, backend: WireBackend
) -> None:
    warm_up(primary, backend)
    assert primary.hellos >= 1
    (index_request,) = primary.index_requests
    assert index_request["indexes"][0]["key"] == {"ts_expire": 1}
    assert index_request["indexes"][0]["expireAfterSeconds"] == 0
    assert inner(backend).uses_pipeline is True


def test_an_uncontended_acquire_is_one_find_and_modify(
    primary: Primary, backend: WireBackend
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


def test_a_refused_acquire_reports_the_holder(primary: Primary, backend: WireBackend) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        primary.receives("findAndModify").ok(value=lease_document(owner="other", token=9))
    assert not result().acquired
    assert result().record.owner == "other"


def test_renew_and_release_are_one_round_trip_each(primary: Primary, backend: WireBackend) -> None:
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


def test_reads_that_decide_leadership_go_to_the_primary(primary: Primary, kind: str) -> None:
    backend = make_backend(primary, kind, readPreference="secondaryPreferred")
    warm_up(primary, backend)
    with going(backend.get, "job"):
        request = primary.receives("find")
        assert request.doc.get("$readPreference", {"mode": "primary"}) == {"mode": "primary"}
        assert request["filter"] == {"_id": "job"}
        request.ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})


# --- failures -------------------------------------------------------------------------------


def test_not_primary_is_retried_and_then_succeeds(primary: Primary, backend: WireBackend) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        first = primary.receives("findAndModify")
        first.command_err(code=10107, errmsg="not primary")
        second = primary.receives("findAndModify")
        assert acquire_id_of(second) == acquire_id_of(first)
        answer_acquire(second)
    assert result().acquired


def test_an_acquire_interrupted_at_step_down_is_sent_again_and_recognised(
    primary: Primary, backend: WireBackend
) -> None:
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        primary.receives("findAndModify").command_err(code=11602, errmsg="interrupted")
        # The first attempt had applied: the document carries its acquire id.
        answer_acquire(primary.receives("findAndModify"))
    assert result().acquired


def test_a_dropped_connection_after_the_write_is_sent_again(
    primary: Primary, backend: WireBackend
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


def _server_now(seconds: float = 0.0) -> datetime:
    """The scripted server's time (its ``hello`` tells the real clock), as BSON holds it."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).replace(tzinfo=None)


def _release_id_of(command: Mapping[str, Any]) -> Any:
    """The release id a release's ``findAndModify`` stamps (pipeline or classic update)."""
    update = command["update"]
    if isinstance(update, list):
        return update[0]["$set"]["released_by"]["$literal"]
    return update["$set"]["released_by"]


def _released_by_the_first_send(sent: Mapping[str, Any]) -> dict[str, Any]:
    """Holding 5 of "me", released live by the release ``sent`` just now (ts_expire = $$NOW)."""
    stamps = {"released_by": _release_id_of(sent), "released_live": True}
    return {**lease_document(), "locked": False, "ts_expire": _server_now(), **stamps}


def _released_by_another_since(sent: Mapping[str, Any]) -> dict[str, Any]:
    """Holding 5 of "me", released live just now by another client's (forced) release."""
    stamps = {"released_by": "another release", "released_live": True}
    return {**lease_document(), "locked": False, "ts_expire": _server_now(), **stamps}


def _lapsed_when_the_first_send_landed(sent: Mapping[str, Any]) -> dict[str, Any]:
    """Released by the release ``sent``, which found the holding lapsed (on its way)."""
    stamps = {"released_by": _release_id_of(sent), "released_live": False}
    return {**lease_document(), "locked": False, "ts_expire": _server_now(), **stamps}


def _lapsed_a_minute_before(sent: Mapping[str, Any]) -> dict[str, Any]:
    return {**lease_document(), "locked": False, "ts_expire": _server_now(-60)}


def _taken_by_another_since(sent: Mapping[str, Any]) -> dict[str, Any]:
    return {**lease_document(owner="other", token=6), "ts_created": _server_now()}


@pytest.mark.parametrize(
    ("stored", "answer"),
    [
        (_released_by_the_first_send, True),
        (_released_by_another_since, False),
        (_lapsed_when_the_first_send_landed, False),
        (_lapsed_a_minute_before, False),
        (_taken_by_another_since, AmbiguousOutcome),
    ],
    ids=[
        "released-by-it",
        "released-by-another",
        "lapsed-on-its-way",
        "lapsed-before",
        "taken-since",
    ],
)
def test_a_release_whose_reply_was_lost_reads_the_record_to_answer(
    primary: Primary,
    backend: WireBackend,
    stored: Callable[[Mapping[str, Any]], dict[str, Any]],
    answer: bool | type[Exception],
) -> None:
    """Issue 14: the retry matches nothing when the first send released the holding.

    The record tells whose write released it (the release id every send of
    one release stamps) and whether the holding was live when that write
    applied (the server's own judgement, on the pipeline path): a forced
    release by another client between the sends is not this one's."""
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as acquired:
        request = primary.receives("findAndModify")
        taken = {**lease_document(acquire_id=acquire_id_of(request)), "ts_created": _server_now()}
        request.ok(value={**taken, "ts_expire": _server_now(60)})
    assert acquired().acquired

    def release() -> object:
        with going(backend.release, "job", "me", token=5) as released:
            first = primary.receives("findAndModify")
            first.hangup()  # after the server applied it, say
            retry = primary.receives("findAndModify")
            assert (
                retry["query"]
                == first["query"]
                == {
                    "_id": "job",
                    "locked": True,
                    "uuid": "me",
                    "token": 5,
                }
            )
            retry.ok(value=None)
            read = primary.receives("find")
            assert read["filter"] == {"_id": "job"}
            assert _release_id_of(retry) == _release_id_of(first)
            # The server judges, in the same write, whether the holding was live.
            live = first["update"][0]["$set"]["released_live"]
            assert live == {"$gt": ["$ts_expire", "$$NOW"]}
            read.ok(cursor={"id": 0, "firstBatch": [stored(first)], "ns": "app.mongolocker"})
        return released()

    if isinstance(answer, bool):
        assert release() is answer
    else:
        with pytest.raises(answer, match="cannot tell"):
            release()
    assert primary.idle()


def test_a_release_whose_first_send_was_refused_does_not_read(
    primary: Primary, backend: WireBackend
) -> None:
    """Not primary (retryWrites off): nothing applied, so the retry's empty reply stands."""
    warm_up(primary, backend)
    with going(backend.release, "job", "me", token=5) as released:
        primary.receives("findAndModify").command_err(code=10107, errmsg="not primary")
        primary.receives("findAndModify").ok(value=None)
    assert released() is False
    assert primary.idle()


def test_a_write_concern_error_may_have_applied(primary: Primary, backend: WireBackend) -> None:
    warm_up(primary, backend)
    wc_error = {"code": 64, "errmsg": "waiting for replication timed out"}
    with going(backend.compare_and_set, REQUEST) as result:
        first = primary.receives("findAndModify")
        first.ok(value=lease_document(acquire_id=acquire_id_of(first)), writeConcernError=wc_error)
        answer_acquire(primary.receives("findAndModify"))
    assert result().acquired


def test_when_every_attempt_may_have_applied_the_outcome_is_ambiguous(
    primary: Primary, backend: WireBackend
) -> None:
    warm_up(primary, backend)
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    with pytest.raises(AmbiguousOutcome):
        backend.renew("job", "me", 5, 10)
    primary.server.cancel_responder(responder)


def test_retryable_writes_resend_the_same_transaction(primary: Primary, kind: str) -> None:
    backend = make_backend(primary, kind)  # retryWrites is on by default
    warm_up(primary, backend)
    with going(backend.compare_and_set, REQUEST) as result:
        first = primary.receives("findAndModify")
        first.hangup()
        second = primary.receives("findAndModify")
        assert second["lsid"] == first["lsid"]
        assert second["txnNumber"] == first["txnNumber"]
        answer_acquire(second)
    assert result().acquired


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_no_reachable_server_is_unavailable_and_quick(kind: str, loop: EventLoopThread) -> None:
    uri = f"mongodb://127.0.0.1:{unused_port()}"
    options: dict[str, Any] = {"serverSelectionTimeoutMS": 200, "connectTimeoutMS": 200}
    backend: WireBackend
    if kind == "sync":
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, **options)
        backend = MongoBackend(client["app"], clock=FakeClock(NOW), timeout=0.3)
    else:

        async def connect() -> pymongo.AsyncMongoClient[Any]:
            return pymongo.AsyncMongoClient(uri, **options)

        async_client = loop.run(connect())
        async_backend = AsyncMongoBackend(async_client["app"], clock=FakeClock(NOW), timeout=0.3)
        backend = BlockingBackend(async_backend, loop)
    with pytest.raises(BackendUnavailable) as raised:
        backend.compare_and_set(REQUEST)
    assert not isinstance(raised.value, AmbiguousOutcome)
    assert isinstance(raised.value.original, pymongo.errors.ServerSelectionTimeoutError)
    if kind == "sync":
        client.close()
    else:
        loop.run(async_client.close())


# --- the holders on top: Lock and LeaderElector, AsyncLock and AsyncLeaderElector ---------


def blocking(primary: Primary, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` as a blocking function: a coroutine function runs on the clients' loop."""
    if not inspect.iscoroutinefunction(call):
        return call
    return lambda *args, **kwargs: primary.loop.run(call(*args, **kwargs))


def test_a_leader_that_cannot_renew_steps_down_at_its_deadline(
    primary: Primary, backend: WireBackend, kind: str
) -> None:
    clock = inner(backend).clock
    assert isinstance(clock, FakeClock)
    losses: list[str] = []
    elector_class = LeaderElector if kind == "sync" else AsyncLeaderElector
    elector = elector_class(
        "job",
        inner(backend),  # type: ignore[arg-type]
        clock=clock,
        report_status=False,
        on_leader_loss=lambda: losses.append("x"),
    )
    poll = blocking(primary, elector.poll)
    with going(poll):
        answer_acquire(primary.receives("findAndModify"))
    assert elector.is_leader
    started = clock.monotonic()
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    while clock.monotonic() < started + elector.renew_deadline:
        clock.advance(elector.retry_period)
        poll()
        if clock.monotonic() >= started + elector.renew_deadline:
            break
        assert elector.is_leader == (clock.monotonic() < started + elector.renew_deadline)
    assert not elector.is_leader
    assert elector.token is None
    poll()
    primary.server.cancel_responder(responder)
    assert losses == ["x"]


def test_a_lock_whose_acquire_replies_were_lost_confirms_by_reading(
    primary: Primary, backend: WireBackend, kind: str
) -> None:
    lock_class = Lock if kind == "sync" else AsyncLock
    lock = lock_class("job", inner(backend), ttl=10, clock=inner(backend).clock)  # type: ignore[arg-type]
    warm_up(primary, backend)
    sent: list[str] = []

    def hang_up_recording(request: Any) -> bool:
        if not is_command(request, "findAndModify"):
            return False
        sent.append(acquire_id_of(request))
        return bool(request.hangup())

    responder = primary.server.autoresponds(hang_up_recording)
    with going(blocking(primary, lock.acquire), blocking=False) as acquired:
        # Every acquire attempt lost its connection; the lock reads to find out.
        find = primary.receives("find")
        primary.server.cancel_responder(responder)
        # The record carries the id of one of this acquire's own tries.
        mine = lease_document(owner=lock.uuid, token=5, acquire_id=sent[0])
        find.ok(cursor={"id": 0, "firstBatch": [mine], "ns": "app.mongolocker"})
        # It was applied: the lock renews it before trusting it.
        renew = primary.receives("findAndModify")
        assert renew["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 5}
        renew.ok(value=mine)
    assert acquired() is True
    assert lock.token == 5


def test_a_record_of_an_earlier_acquisition_is_released_by_token_not_adopted(
    primary: Primary, backend: WireBackend, kind: str
) -> None:
    """The read after lost replies finds this lock's owner id under another acquisition."""
    lock_class = Lock if kind == "sync" else AsyncLock
    lock = lock_class("job", inner(backend), ttl=10, clock=inner(backend).clock)  # type: ignore[arg-type]
    warm_up(primary, backend)
    responder = primary.server.autoresponds(hang_up_on("findAndModify"))
    with going(blocking(primary, lock.acquire), blocking=False) as acquired:
        find = primary.receives("find")
        primary.server.cancel_responder(responder)
        earlier = lease_document(owner=lock.uuid, token=5, acquire_id="an-earlier-acquire")
        find.ok(cursor={"id": 0, "firstBatch": [earlier], "ns": "app.mongolocker"})
        # Not this attempt's write: it is ended by its token, never renewed.
        release = primary.receives("findAndModify")
        assert release["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 5}
        assert release["new"] is False
        release.ok(value=earlier)
        # Then a new acquisition, whose grant carries its own id and a greater token.
        again = primary.receives("findAndModify")
        answer_acquire(again, token=6)
    assert acquired() is True
    assert lock.token == 6


# --- failover: an error means "not applied" only when the server proves it (issue 13) ------


def refuse_as_not_primary(*, after: int = 1) -> Callable[[Any], bool]:
    """An autoresponder: the first ``after`` findAndModify commands reach the test; every
    later one is refused as the replica set elects (NotWritablePrimary)."""
    let_through = [after]

    def respond(request: Any) -> bool:
        if not is_command(request, "findAndModify"):
            return False
        if let_through[0] > 0:
            let_through[0] -= 1
            return False
        return bool(request.command_err(code=10107, errmsg="not primary"))

    return respond


RETRY_WRITES = pytest.mark.parametrize(
    "retry_writes", [False, True], ids=["retryWrites=false", "retryWrites"]
)


@RETRY_WRITES
@pytest.mark.parametrize("code", [91, 189])
def test_a_write_concern_error_then_not_primary_refusals_is_ambiguous(
    primary: Primary, kind: str, code: int, retry_writes: bool
) -> None:
    """The write ran (a write-concern error says so); the refusals after it prove nothing."""
    backend = make_backend(primary, kind, retryWrites=retry_writes)
    warm_up(primary, backend)
    responder = primary.server.autoresponds(refuse_as_not_primary())
    with pytest.raises(AmbiguousOutcome), going(backend.compare_and_set, REQUEST):
        first = primary.receives("findAndModify")
        wc_error = {"code": code, "errmsg": "the primary went away while replicating"}
        first.ok(value=lease_document(acquire_id=acquire_id_of(first)), writeConcernError=wc_error)
    primary.server.cancel_responder(responder)


def test_with_retry_writes_a_refusal_after_a_dropped_first_send_is_ambiguous(
    primary: Primary, kind: str
) -> None:
    """pymongo's own retry hides the first send, which may have applied."""
    backend = make_backend(primary, kind)  # retryWrites is on by default
    warm_up(primary, backend)
    responder = primary.server.autoresponds(refuse_as_not_primary())
    with (
        pytest.raises(AmbiguousOutcome, match="retryWrites"),
        going(backend.compare_and_set, REQUEST),
    ):
        primary.receives("findAndModify").hangup()  # sent; the reply never comes
    primary.server.cancel_responder(responder)


@RETRY_WRITES
def test_a_lock_whose_acquire_met_a_write_concern_error_then_an_election_releases_it(
    primary: Primary, kind: str, retry_writes: bool
) -> None:
    """acquire() gives up ambiguous; release() then contacts the store and frees the write."""
    backend = make_backend(primary, kind, retryWrites=retry_writes)
    lock_class = Lock if kind == "sync" else AsyncLock
    lock = lock_class("job", inner(backend), ttl=10, clock=inner(backend).clock)  # type: ignore[arg-type]
    warm_up(primary, backend)
    applied: dict[str, Any] = {}
    responder = primary.server.autoresponds(refuse_as_not_primary())
    # The lock reads to settle it, but the read fails too (at once: not worth a retry).
    reads = primary.server.autoresponds(
        lambda request: (
            is_command(request, "find")
            and bool(request.command_err(code=8000, errmsg="reads refused for now"))
        )
    )
    with (
        pytest.raises(AmbiguousOutcome),
        going(blocking(primary, lock.acquire), blocking=False),
    ):
        first = primary.receives("findAndModify")
        applied.update(lease_document(owner=lock.uuid, acquire_id=acquire_id_of(first)))
        first.ok(value=applied, writeConcernError={"code": 189, "errmsg": "stepped down"})
    primary.server.cancel_responder(responder)
    primary.server.cancel_responder(reads)
    with going(blocking(primary, lock.release)) as released:
        primary.receives("find").ok(
            cursor={"id": 0, "firstBatch": [applied], "ns": "app.mongolocker"}
        )
        release = primary.receives("findAndModify")
        assert release["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 5}
        release.ok(value=applied)
    assert released() is True


@RETRY_WRITES
def test_a_lock_whose_acquire_met_a_write_concern_error_confirms_it_by_reading(
    primary: Primary, kind: str, retry_writes: bool
) -> None:
    """The write ran; refusals follow while the set elects; the read settles it: held."""
    backend = make_backend(primary, kind, retryWrites=retry_writes)
    lock_class = Lock if kind == "sync" else AsyncLock
    lock = lock_class("job", inner(backend), ttl=10, clock=inner(backend).clock)  # type: ignore[arg-type]
    warm_up(primary, backend)
    responder = primary.server.autoresponds(refuse_as_not_primary())
    with going(blocking(primary, lock.acquire), blocking=False) as acquired:
        first = primary.receives("findAndModify")
        applied = lease_document(owner=lock.uuid, token=5, acquire_id=acquire_id_of(first))
        first.ok(value=applied, writeConcernError={"code": 91, "errmsg": "shutting down"})
        find = primary.receives("find")
        primary.server.cancel_responder(responder)  # the new primary is elected
        find.ok(cursor={"id": 0, "firstBatch": [applied], "ns": "app.mongolocker"})
        renew = primary.receives("findAndModify")
        assert renew["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": 5}
        renew.ok(value=applied)
    assert acquired() is True
    assert lock.token == 5
