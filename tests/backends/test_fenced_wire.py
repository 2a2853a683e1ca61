"""FencedCollection on the wire: the exact commands a fenced write sends (mockupdb)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest
from mockupdb import going
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.results import BulkWriteResult

from mongoelector import Lock, StaleToken
from mongoelector.aio import AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.fencing import FencedCollection
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import EventLoopThread
from tests.backends.mongo_wire_support import KINDS, Primary

GUARD = 10.0  # real seconds: a hang guard, never reached when things work

FENCE = {"$or": [{"_fence": None}, {"_fence": {"$lte": 1}}]}


@pytest.fixture
def fenced(primary: Primary) -> FencedCollection[Any]:
    clock = FakeClock()
    lock = Lock("job", MemoryBackend(clock), ttl=30, clock=clock)
    lock.acquire()  # token 1
    return lock.fenced(primary.client()["app"]["docs"])


def test_update_one_is_one_update_command(primary: Primary, fenced: FencedCollection[Any]) -> None:
    with going(fenced.update_one, {"_id": 7, "state": "new"}, {"$set": {"state": "done"}}) as done:
        request = primary.receives("update")
        assert request["update"] == "docs"
        assert list(request["updates"]) == [
            {
                "q": {"_id": 7, "state": "new", "$and": [FENCE]},
                "u": {"$set": {"state": "done", "_fence": 1}},
                "multi": False,
                "upsert": False,
            }
        ]
        request.ok(n=1, nModified=1)
    assert done().modified_count == 1
    assert primary.idle()  # nothing else was sent


def test_an_update_one_that_changed_nothing_reads_once_to_tell_stale_from_missing(
    primary: Primary, fenced: FencedCollection[Any]
) -> None:
    def refused() -> StaleToken:
        with pytest.raises(StaleToken) as caught:
            fenced.update_one({"_id": 7}, {"$set": {"state": "done"}})
        return caught.value

    with going(refused) as done:
        primary.receives("update").ok(n=0, nModified=0)
        read = primary.receives("find")
        assert read["filter"] == {"_id": 7, "$and": [{"_fence": {"$gt": 1}}]}
        assert read["projection"] == {"_fence": True}
        read.ok(cursor={"id": 0, "firstBatch": [{"_id": 7, "_fence": 4}], "ns": "app.docs"})
    error = done()
    assert (error.token, error.newer_token, error.document_id) == (1, 4, 7)


def test_update_many_is_one_update_command_and_one_count(
    primary: Primary, fenced: FencedCollection[Any]
) -> None:
    with going(fenced.update_many, {"kind": "a"}, [{"$set": {"n": 1}}]) as done:
        request = primary.receives("update")
        assert list(request["updates"]) == [
            {
                "q": {"kind": "a", "$and": [FENCE]},
                "u": [{"$set": {"n": 1}}, {"$set": {"_fence": 1}}],
                "multi": True,
                "upsert": False,
            }
        ]
        request.ok(n=3, nModified=3)
        count = primary.receives("aggregate")
        assert count["pipeline"][0] == {"$match": {"kind": "a", "$and": [{"_fence": {"$gt": 1}}]}}
        count.ok(cursor={"id": 0, "firstBatch": [{"_id": 1, "n": 2}], "ns": "app.docs"})
    result = done()
    assert (result.modified_count, result.skipped) == (3, 2)
    assert primary.idle()


def _newer(filter: dict[str, Any]) -> dict[str, Any]:
    return {**filter, "$and": [{"_fence": {"$gt": 1}}]}


def _count_reply(request: Any, filter: dict[str, Any], n: int) -> None:
    assert request["pipeline"][0] == {"$match": _newer(filter)}
    batch = [{"_id": 1, "n": n}] if n else []
    request.ok(cursor={"id": 0, "firstBatch": batch, "ns": "app.docs"})


BULK = [
    UpdateOne({"_id": 1}, {"$set": {"state": "done"}}),
    ReplaceOne({"_id": 2}, {"state": "replaced"}),
    UpdateOne({"_id": 3}, {"$set": {"state": "new"}}, upsert=True),
    DeleteOne({"_id": 4, "state": "old"}),
]


def test_bulk_write_fences_every_statement_and_counts_skipped_after(
    primary: Primary, fenced: FencedCollection[Any]
) -> None:
    with going(fenced.bulk_write, BULK, ordered=True) as done:
        update = primary.receives("update")
        assert update["ordered"] is True
        assert list(update["updates"]) == [
            {
                "q": {"_id": 1, "$and": [FENCE]},
                "u": {"$set": {"state": "done", "_fence": 1}},
                "multi": False,
                "upsert": False,
            },
            {
                "q": {"_id": 2, "$and": [FENCE]},
                "u": {"state": "replaced", "_fence": 1},  # pymongo sends no multi/upsert here
            },
            {
                "q": {"_id": 3, "$and": [FENCE]},
                "u": {"$set": {"state": "new", "_fence": 1}},
                "multi": False,
                "upsert": True,
            },
        ]
        # _id 1 updated, _id 2 carries a newer token (matched nothing), _id 3 upserted.
        update.ok(n=2, nModified=1, upserted=[{"index": 2, "_id": 3}])
        delete = primary.receives("delete")
        assert list(delete["deletes"]) == [
            {"q": {"_id": 4, "state": "old", "$and": [FENCE]}, "limit": 1}
        ]
        delete.ok(n=1)
        # After the bulk, one count of newer documents per request's own filter, in order.
        _count_reply(primary.receives("aggregate"), {"_id": 1}, 0)
        _count_reply(primary.receives("aggregate"), {"_id": 2}, 1)
        _count_reply(primary.receives("aggregate"), {"_id": 3}, 0)
        _count_reply(primary.receives("aggregate"), {"_id": 4, "state": "old"}, 0)
    result = done()  # no StaleToken: the stale ReplaceOne is skipped, not raised
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert (result.upserted_count, result.upserted_ids) == (1, {2: 3})
    assert result.deleted_count == 1
    assert result.skipped == 1
    assert primary.idle()


@pytest.mark.parametrize(
    "request_",
    [
        UpdateOne({"kind": "a"}, {"$set": {"n": 1}}, upsert=True),
        ReplaceOne({"_id": {"$in": [1]}}, {"n": 1}, upsert=True),
    ],
    ids=["update-one", "replace-one"],
)
def test_bulk_write_refuses_an_upsert_that_does_not_pin_the_id_before_sending(
    primary: Primary, fenced: FencedCollection[Any], request_: Any
) -> None:
    with pytest.raises(ValueError, match="_id by equality"):
        fenced.bulk_write([DeleteOne({"_id": 4}), request_], ordered=True)
    assert primary.idle()  # nothing was sent, not even the DeleteOne before it


class Bulk:
    """A fenced collection of ``kind`` (token 1) on the scripted primary; ``start`` runs a bulk."""

    def __init__(self, primary: Primary, loop: EventLoopThread, kind: str) -> None:
        self.loop, self.kind = loop, kind
        clock = FakeClock()
        if kind == "async":
            lock = AsyncLock("job", MemoryBackend(clock), ttl=30, clock=clock)  # type: ignore[arg-type]
            loop.run(lock.acquire())
            self.fenced: Any = lock.fenced(primary.async_client()["app"]["docs"])
        else:
            sync_lock = Lock("job", MemoryBackend(clock), ttl=30, clock=clock)
            sync_lock.acquire()
            self.fenced = sync_lock.fenced(primary.client()["app"]["docs"])

    def start(self, requests: list[Any], **kwargs: Any) -> concurrent.futures.Future[Any]:
        return self.start_call("bulk_write", requests, **kwargs)

    def start_call(self, method: str, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Run the fenced collection's ``method`` off the test thread (on the loop, async)."""
        call = getattr(self.fenced, method)
        if self.kind == "async":
            return asyncio.run_coroutine_threadsafe(call(*args, **kwargs), self.loop.loop)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(call, *args, **kwargs)
        pool.shutdown(wait=False)
        return future

    def start_in_transaction(self, method: str, *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``method(*args, session=...)`` in a transaction; then abort it, and end the
        session. The future's result is the write's exception (or its result)."""
        client = self.fenced.collection.database.client

        def sync_run() -> Any:
            with client.start_session() as session:
                session.start_transaction()
                try:
                    outcome = getattr(self.fenced, method)(*args, session=session)
                except Exception as error:  # handed to the test
                    outcome = error
                session.abort_transaction()
                return outcome

        async def async_run() -> Any:
            async with client.start_session() as session:
                await session.start_transaction()
                try:
                    outcome = await getattr(self.fenced, method)(*args, session=session)
                except Exception as error:  # handed to the test
                    outcome = error
                await session.abort_transaction()
                return outcome

        if self.kind == "async":
            return asyncio.run_coroutine_threadsafe(async_run(), self.loop.loop)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(sync_run)
        pool.shutdown(wait=False)
        return future

    @staticmethod
    def error(future: concurrent.futures.Future[Any]) -> BaseException:
        error = future.exception(GUARD)
        assert error is not None, future.result()
        return error


@pytest.fixture(params=KINDS)
def bulk(request: pytest.FixtureRequest, primary: Primary, loop: EventLoopThread) -> Bulk:
    return Bulk(primary, loop, str(request.param))


DUPLICATE = {"code": 11000, "errmsg": "E11000 duplicate key error collection: app.docs"}


def receive_read(primary: Primary, filter: dict[str, Any], found: list[dict[str, Any]]) -> None:
    """The wrapper's read of the newest document the refused upsert's own filter matches."""
    read = primary.receives("find")
    assert read["filter"] == _newer(filter)
    assert read["projection"] == {"_fence": True}
    assert read["sort"] == {"_fence": -1}
    assert read["limit"] == 1
    read.ok(cursor={"id": 0, "firstBatch": found, "ns": "app.docs"})


def test_a_bulk_upsert_meeting_a_newer_document_raises_stale_token_from_bulk_write_error(
    primary: Primary, bulk: Bulk
) -> None:
    requests = [
        DeleteOne({"_id": 4}),
        UpdateOne({"_id": 1}, {"$set": {"n": 1}}),
        UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True),
        DeleteOne({"_id": 5}),
    ]
    running = bulk.start(requests, ordered=True)
    primary.receives("delete").ok(n=1)
    update = primary.receives("update")
    assert [s["q"] for s in update["updates"]] == [
        {"_id": 1, "$and": [FENCE]},
        {"_id": 3, "$and": [FENCE]},
    ]
    # The server's index is the command's (1); pymongo maps it to the bulk's (2).
    update.ok(n=1, nModified=1, writeErrors=[{"index": 1, **DUPLICATE}])
    receive_read(primary, {"_id": 3}, [{"_id": 3, "_fence": 4}])
    error = bulk.error(running)
    assert isinstance(error, StaleToken)
    assert (error.key, error.token, error.newer_token, error.document_id) == ("job", 1, 4, 3)
    assert isinstance(error.__cause__, BulkWriteError)
    assert error.details == error.__cause__.details
    partial = BulkWriteResult(error.details, True)  # type: ignore[arg-type]
    assert (partial.deleted_count, partial.matched_count, partial.modified_count) == (1, 1, 1)
    assert [e["index"] for e in error.details["writeErrors"]] == [2]  # type: ignore[index]
    assert primary.idle()  # ordered: the last DeleteOne was not sent; no skips counted


def test_a_bulk_upsert_refused_with_no_newer_document_stays_bulk_write_error(
    primary: Primary, bulk: Bulk
) -> None:
    """A duplicate key no newer document explains (another unique index, a race with an
    older writer, a document since deleted): not proven stale, so pymongo's error."""
    running = bulk.start([ReplaceOne({"_id": 3}, {"n": 1}, upsert=True)])
    primary.receives("update").ok(n=0, nModified=0, writeErrors=[{"index": 0, **DUPLICATE}])
    receive_read(primary, {"_id": 3}, [])
    error = bulk.error(running)
    assert type(error) is BulkWriteError
    assert error.details["writeErrors"][0]["code"] == 11000
    assert primary.idle()


NOT_A_STALE_UPSERT = {
    "another-error-on-an-upsert": (
        [UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True)],
        {"writeErrors": [{"index": 0, "code": 121, "errmsg": "Document failed validation"}]},
    ),
    "a-duplicate-key-on-a-plain-update": (
        [UpdateOne({"_id": 3}, {"$set": {"email": "x"}})],
        {"writeErrors": [{"index": 0, **DUPLICATE}]},
    ),
    "a-duplicate-key-upsert-and-a-write-concern-error": (
        [UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True)],
        {
            "writeErrors": [{"index": 0, **DUPLICATE}],
            "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"},
        },
    ),
    "a-duplicate-key-upsert-and-another-error": (
        [
            UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True),
            UpdateOne({"_id": 6}, {"$set": {"n": 1}}, upsert=True),
        ],
        {
            "writeErrors": [
                {"index": 0, **DUPLICATE},
                {"index": 1, "code": 121, "errmsg": "Document failed validation"},
            ]
        },
    ),
}


@pytest.mark.parametrize(
    ("requests", "reply"), NOT_A_STALE_UPSERT.values(), ids=NOT_A_STALE_UPSERT.keys()
)
def test_any_other_bulk_write_error_is_raised_as_pymongo_raises_it_reading_nothing(
    primary: Primary, bulk: Bulk, requests: list[Any], reply: dict[str, Any]
) -> None:
    running = bulk.start(requests, ordered=False)
    primary.receives("update").ok(n=0, nModified=0, **reply)
    assert type(bulk.error(running)) is BulkWriteError
    assert primary.idle()  # nothing read, nothing counted


@pytest.mark.parametrize(
    ("second", "raised"),
    [([{"_id": 6, "_fence": 7}], StaleToken), ([], BulkWriteError)],
    ids=["both-newer", "second-not-newer"],
)
def test_unordered_every_refused_upsert_must_be_proven_stale(
    primary: Primary, bulk: Bulk, second: list[dict[str, Any]], raised: type[Exception]
) -> None:
    requests = [
        UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True),
        UpdateOne({"_id": 5}, {"$set": {"n": 1}}, upsert=True),
        UpdateOne({"_id": 6}, {"$set": {"n": 1}}, upsert=True),
    ]
    running = bulk.start(requests, ordered=False)
    primary.receives("update").ok(
        n=1,
        nModified=0,
        upserted=[{"index": 1, "_id": 5}],
        writeErrors=[{"index": 0, **DUPLICATE}, {"index": 2, **DUPLICATE}],
    )
    receive_read(primary, {"_id": 3}, [{"_id": 3, "_fence": 4}])
    receive_read(primary, {"_id": 6}, second)
    error = bulk.error(running)
    assert type(error) is raised
    if isinstance(error, StaleToken):
        assert (error.document_id, error.newer_token) == (3, 4)  # the first refused upsert
        assert error.details is not None and error.details["upserted"] == [{"index": 1, "_id": 5}]
    assert primary.idle()


IN_A_TRANSACTION = {
    "bulk_write": ([UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True)],),
    "update_one": ({"_id": 3}, {"$set": {"n": 1}}, True),
}


@pytest.mark.parametrize(("method", "args"), IN_A_TRANSACTION.items(), ids=IN_A_TRANSACTION)
@pytest.mark.parametrize("newer", [True, False], ids=["newer", "not-newer"])
def test_in_a_transaction_the_read_after_a_refused_upsert_goes_outside_it(
    primary: Primary, bulk: Bulk, method: str, args: tuple[Any, ...], newer: bool
) -> None:
    """The server aborts a transaction on a duplicate key: a read in it would fail with
    NoSuchTransaction (TransientTransactionError: with_transaction would run it all again)."""
    running = bulk.start_in_transaction(method, *args)
    update = primary.receives("update")
    assert update["startTransaction"] is True
    update.ok(n=0, nModified=0, writeErrors=[{"index": 0, **DUPLICATE}])
    read = primary.receives("find")
    assert read["filter"] == _newer({"_id": 3})
    assert "txnNumber" not in read and "autocommit" not in read
    assert read.doc.get("lsid") != update["lsid"]
    found = [{"_id": 3, "_fence": 4}] if newer else []
    read.ok(cursor={"id": 0, "firstBatch": found, "ns": "app.docs"})
    primary.receives("abortTransaction").ok()
    outcome = running.result(GUARD)
    if newer:
        assert isinstance(outcome, StaleToken) and outcome.newer_token == 4
    else:
        assert isinstance(outcome, BulkWriteError if method == "bulk_write" else DuplicateKeyError)
        assert not isinstance(outcome, StaleToken)


@pytest.mark.parametrize(("method", "args"), IN_A_TRANSACTION.items(), ids=IN_A_TRANSACTION)
def test_a_failed_read_after_a_refused_upsert_raises_the_refusal(
    primary: Primary, bulk: Bulk, method: str, args: tuple[Any, ...]
) -> None:
    """The write was refused, and that is what the caller hears, not the read's error."""
    running = bulk.start_call(method, *args)
    primary.receives("update").ok(n=0, nModified=0, writeErrors=[{"index": 0, **DUPLICATE}])
    primary.receives("find").command_err(code=2, errmsg="BadValue")
    error = bulk.error(running)
    assert type(error) is (BulkWriteError if method == "bulk_write" else DuplicateKeyError)
