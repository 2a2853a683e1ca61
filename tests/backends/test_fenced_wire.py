"""FencedCollection on the wire: the exact commands a fenced write sends (mockupdb)."""

from __future__ import annotations

from typing import Any

import pytest
from mockupdb import going

from mongoelector import Lock, StaleToken
from mongoelector.backends import MemoryBackend
from mongoelector.fencing import FencedCollection
from mongoelector.testing import FakeClock
from tests.backends.mongo_wire_support import Primary

FENCE = {"$or": [{"_fence": {"$exists": False}}, {"_fence": {"$lte": 1}}]}


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
