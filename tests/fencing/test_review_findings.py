"""Review findings on fenced writes and singleton jobs, each a test that failed before its fix."""

from __future__ import annotations

import re
from typing import Any

import mongomock
import pytest

from mongoelector import Lock, jobs
from mongoelector.backends import MemoryBackend
from mongoelector.errors import BackendError
from mongoelector.testing import FakeClock


@pytest.fixture
def lock(clock: FakeClock, backend: MemoryBackend) -> Lock:
    Lock("job", backend, ttl=30, clock=clock).acquire()
    holder = Lock("job", backend, ttl=30, clock=clock)
    holder.acquire(force=True)  # token 2
    return holder


def test_an_upsert_whose_id_is_a_regular_expression_is_refused(lock: Lock) -> None:
    """A pattern does not pin _id: the fenced upsert would miss a newer document and insert."""
    docs = mongomock.MongoClient().db.docs
    docs.insert_one({"_id": "abc", "n": 0, "_fence": 9})
    with pytest.raises(ValueError, match="_id"):
        lock.fenced(docs).update_one({"_id": re.compile("^abc$")}, {"$set": {"n": 1}}, upsert=True)
    assert docs.count_documents({}) == 1


def test_a_null_fence_counts_as_no_fence(lock: Lock) -> None:
    docs = mongomock.MongoClient().db.docs
    docs.insert_one({"_id": 1, "n": 0, "_fence": None})
    result = lock.fenced(docs).update_one({"_id": 1}, {"$set": {"n": 1}})
    assert result.matched_count == 1
    assert docs.find_one({"_id": 1}) == {"_id": 1, "n": 1, "_fence": 2}


def test_renaming_a_field_onto_the_fence_is_refused(lock: Lock) -> None:
    docs = mongomock.MongoClient().db.docs
    docs.insert_one({"_id": 1, "x": 1000})
    with pytest.raises(ValueError, match="_fence"):
        lock.fenced(docs).update_one({"_id": 1}, {"$rename": {"x": "_fence"}})
    assert docs.find_one({"_id": 1}) == {"_id": 1, "x": 1000}


def test_insert_many_copies_the_generated_ids_back(lock: Lock) -> None:
    docs = mongomock.MongoClient().db.docs
    mine: list[dict[str, Any]] = [{"a": 1}, {"a": 2}]
    result = lock.fenced(docs).insert_many(mine)
    assert [d["_id"] for d in mine] == result.inserted_ids


class ReleaseFails(MemoryBackend):
    def release(self, *args: Any, **kwargs: Any) -> bool:
        raise BackendError("the store is down")


def test_a_job_s_result_stands_when_its_release_fails(clock: FakeClock) -> None:
    """A caller that retried on BackendError would run the job twice."""
    ran: list[int] = []

    @jobs.exclusive("k", ReleaseFails(clock), clock=clock)
    def work() -> int:
        ran.append(1)
        return 42

    assert work() == 42
    assert ran == [1]
