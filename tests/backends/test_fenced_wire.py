"""FencedCollection on the wire: the exact commands a fenced write sends (mockupdb)."""

from __future__ import annotations

from typing import Any

import pytest
from mockupdb import going
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError

from mongoelector import Lock, StaleToken
from mongoelector.backends import MemoryBackend
from mongoelector.fencing import FencedCollection
from mongoelector.testing import FakeClock
from tests.backends.mongo_wire_support import Primary

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


def test_a_bulk_upsert_meeting_a_newer_document_is_the_servers_duplicate_key_error(
    primary: Primary, fenced: FencedCollection[Any]
) -> None:
    def refused() -> BulkWriteError:
        with pytest.raises(BulkWriteError) as caught:
            fenced.bulk_write([UpdateOne({"_id": 3}, {"$set": {"n": 1}}, upsert=True)])
        return caught.value

    with going(refused) as done:
        update = primary.receives("update")
        assert [s["q"] for s in update["updates"]] == [{"_id": 3, "$and": [FENCE]}]
        update.ok(
            n=0,
            nModified=0,
            writeErrors=[{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}],
        )
    error = done()
    assert error.details["writeErrors"][0]["code"] == 11000
    assert primary.idle()  # raised as pymongo raises it: nothing read, nothing counted
