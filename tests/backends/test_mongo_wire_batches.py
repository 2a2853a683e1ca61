"""Batch calls on the wire: the exact commands ``renew_many`` and ``get_many`` send.

Each scenario runs on ``MongoBackend`` (``MongoClient``) and ``AsyncMongoBackend``
(``AsyncMongoClient``) against the scripted primary of :mod:`mongo_wire_support`.
After each call returns, ``primary.idle()`` proves that no other command was
sent: the commands a test receives are all of them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mockupdb import going

from mongoelector.backends import AmbiguousOutcome, AsyncMongoBackend, MongoBackend, RenewItem
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend
from tests.backends.mongo_wire_support import (
    KINDS,
    NOW,
    Primary,
    WireBackend,
    hang_up_on,
    inner,
    lease_document,
    warm_up,
)

KEYS = ["job-a", "job-b", "job-c"]
ITEMS = [RenewItem(key=key, owner="me", token=5, ttl=10 + n) for n, key in enumerate(KEYS)]
EMPTY_CURSOR = {"id": 0, "firstBatch": [], "ns": "app.mongolocker"}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(primary: Primary, kind: str, *, pipeline: bool) -> WireBackend:
    """A backend of ``kind`` on the pipeline (MongoDB 4.2+) or the classic write path."""
    if kind == "async":
        client = primary.async_client(retryWrites=False)
        backend = AsyncMongoBackend(
            client["app"], clock=FakeClock(NOW), timeout=3, pipeline=pipeline
        )
        return BlockingBackend(backend, primary.loop)
    sync_client = primary.client(retryWrites=False)
    return MongoBackend(sync_client["app"], clock=FakeClock(NOW), timeout=3, pipeline=pipeline)


def held(key: str, owner: str = "me", token: int = 5) -> dict[str, Any]:
    return {**lease_document(owner=owner, token=token), "_id": key}


def cursor(*documents: dict[str, Any]) -> dict[str, Any]:
    return {**EMPTY_CURSOR, "firstBatch": list(documents)}


def expect_update_of(request: Any, items: list[RenewItem], *, pipeline: bool) -> None:
    """``request`` is one unordered ``update``: each item's renew filter, majority write concern."""
    assert request["update"] == "mongolocker"
    assert request["ordered"] is False
    assert request["writeConcern"] == {"w": "majority"}
    statements = request["updates"]
    assert [statement["q"] for statement in statements] == [
        {"_id": item.key, "locked": True, "uuid": item.owner, "token": item.token} for item in items
    ]
    for statement, item in zip(statements, items, strict=True):
        assert not statement.get("multi", False)
        assert not statement.get("upsert", False)
        if pipeline:
            ttl_ms = int(item.ttl * 1000)
            assert statement["u"] == [{"$set": {"ts_expire": {"$add": ["$$NOW", ttl_ms]}}}]
        else:
            assert set(statement["u"]) == {"$set"}
            assert set(statement["u"]["$set"]) == {"ts_expire"}


def test_renew_many_of_holdings_it_has_seen_is_one_update_command_on_the_classic_path(
    primary: Primary, kind: str
) -> None:
    backend = make(primary, kind, pipeline=False)
    with going(backend.get_many, KEYS):
        request = primary.receives("find")
        assert request["filter"] == {"_id": {"$in": KEYS}}
        request.ok(cursor=cursor(*(held(key) for key in KEYS)))
    assert primary.idle()

    with going(backend.renew_many, ITEMS) as renewed:
        request = primary.receives("update")
        expect_update_of(request, ITEMS, pipeline=False)
        request.ok(n=3, nModified=3)
    assert primary.idle()  # one command for three renewals: no read

    records = renewed()
    assert [record.key for record in records if record] == KEYS
    expiries = [statement["u"]["$set"]["ts_expire"] for statement in request["updates"]]
    # One estimate of server time for the batch; each item's own ttl on top of it.
    assert [later - expiries[0] for later in expiries] == [timedelta(seconds=n) for n in range(3)]
    for record, expiry in zip(records, expiries, strict=True):
        assert record is not None
        assert record.expires_at == expiry.replace(tzinfo=record.expires_at.tzinfo)
        assert (record.owner, record.token, record.acquisition) == ("me", 5, "x")


def test_renew_many_on_the_pipeline_path_is_one_update_command_and_one_find(
    primary: Primary, kind: str
) -> None:
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    with going(backend.renew_many, ITEMS) as renewed:
        update = primary.receives("update")
        expect_update_of(update, ITEMS, pipeline=True)
        update.ok(n=3, nModified=3)
        # The server stamped the expiries with its $$NOW: one read learns them.
        find = primary.receives("find")
        assert find["filter"] == {"_id": {"$in": KEYS}}
        assert find.doc.get("$readPreference", {"mode": "primary"}) == {"mode": "primary"}
        find.ok(cursor=cursor(*(held(key) for key in KEYS)))
    assert primary.idle()
    assert [record.key if record else None for record in renewed()] == KEYS


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "classic"])
def test_renew_many_with_a_refused_item_reads_once_to_tell_which(
    primary: Primary, kind: str, pipeline: bool
) -> None:
    backend = make(primary, kind, pipeline=pipeline)
    warm_up(primary, backend)
    with going(backend.renew_many, ITEMS) as renewed:
        update = primary.receives("update")
        expect_update_of(update, ITEMS, pipeline=pipeline)
        update.ok(n=2, nModified=2)
        find = primary.receives("find")
        assert find["filter"] == {"_id": {"$in": KEYS}}
        find.ok(cursor=cursor(held("job-a"), held("job-b", owner="other", token=9), held("job-c")))
    assert primary.idle()
    records = renewed()
    assert [record.key if record else None for record in records] == ["job-a", None, "job-c"]


def test_an_empty_batch_sends_nothing(primary: Primary, kind: str) -> None:
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    assert backend.renew_many([]) == []
    assert backend.get_many([]) == {}
    assert primary.idle()


def test_get_many_is_one_find_on_the_primary(primary: Primary, kind: str) -> None:
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    with going(backend.get_many, ["job-a", "job-b", "job-a"]) as found:
        request = primary.receives("find")
        assert request["filter"] == {"_id": {"$in": ["job-a", "job-b"]}}
        assert request.doc.get("$readPreference", {"mode": "primary"}) == {"mode": "primary"}
        request.ok(cursor=cursor(held("job-b")))
    assert primary.idle()
    result = found()
    assert list(result) == ["job-a", "job-b"]
    assert result["job-a"] is None
    assert result["job-b"] is not None and result["job-b"].owner == "me"


# --- failures -------------------------------------------------------------------------------


def test_a_renew_many_whose_connection_drops_every_time_is_ambiguous(
    primary: Primary, kind: str
) -> None:
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    responder = primary.server.autoresponds(hang_up_on("update"))
    with pytest.raises(AmbiguousOutcome):
        backend.renew_many(ITEMS)
    primary.server.cancel_responder(responder)


def test_a_bulk_write_error_is_ambiguous_for_every_item(primary: Primary, kind: str) -> None:
    """The statements around a failed one ran: nothing tells which applied."""
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    with (
        pytest.raises(AmbiguousOutcome, match="renewal of 3 keys"),
        going(backend.renew_many, ITEMS),
    ):
        update = primary.receives("update")
        update.ok(n=2, nModified=2, writeErrors=[{"index": 1, "code": 2, "errmsg": "bad value"}])
    assert primary.idle()


def test_a_write_concern_error_on_renew_many_is_ambiguous(primary: Primary, kind: str) -> None:
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    wc_error = {"code": 64, "errmsg": "waiting for replication timed out"}
    responder = primary.server.autoresponds(
        lambda request: (
            request.command_name == "update"
            and request.ok(n=3, nModified=3, writeConcernError=wc_error)
        )
    )
    with pytest.raises(AmbiguousOutcome):
        backend.renew_many(ITEMS)
    primary.server.cancel_responder(responder)


def test_a_renew_many_whose_read_after_the_write_fails_is_ambiguous(
    primary: Primary, kind: str
) -> None:
    backend = make(primary, kind, pipeline=True)
    warm_up(primary, backend)
    with (
        pytest.raises(AmbiguousOutcome, match="2 of 3 matched, but the read"),
        going(backend.renew_many, ITEMS),
    ):
        primary.receives("update").ok(n=2, nModified=2)
        primary.receives("find").command_err(code=2, errmsg="bad query")
    assert primary.idle()


def test_the_backends_declare_both_batch_capabilities(primary: Primary, kind: str) -> None:
    backend = inner(make(primary, kind, pipeline=True))
    assert {"renew_many", "get_many"} <= {flag.value for flag in backend.capabilities}
