"""MongoBackend and AsyncMongoBackend on mongomock pass the conformance suite, both write paths."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mongomock.collection
import pymongo
import pytest
from pymongo.errors import AutoReconnect

from mongoelector.backends import AsyncMongoBackend, MongoBackend
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.testing import BackendConformance, BackendHarness, check_backend
from mongoelector.testing.aio import BlockingBackend, EventLoopThread
from tests.backends.mongo_support import MONGO_KINDS, make_store

#: The mongomock calls the backend makes; during an outage each drops its "connection".
_CALLS = ("find_one", "find", "find_one_and_update", "insert_one", "update_one", "bulk_write")


@contextmanager
def outage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every store call fails as a dropped connection would: it may or may not have applied."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("connection closed (simulated outage)")

    with monkeypatch.context() as patch:
        for name in _CALLS:
            patch.setattr(mongomock.collection.Collection, name, broken)
        yield


class TestMongoBackendConformance(BackendConformance):
    @pytest.fixture(params=MONGO_KINDS)
    def conformance_harness(
        self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> BackendHarness:
        store = make_store(request.param, monkeypatch)
        return BackendHarness(
            backend=store.backend,
            advance=store.clock.advance,
            delete_record=store.delete,
            outage=lambda: outage(monkeypatch),
        )


@contextmanager
def replies_lost(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``findAndModify`` that finds a document applies, and its reply is lost (a
    dropped connection after the server applied it); everything else works."""
    applied = mongomock.collection.Collection.find_one_and_update

    def lossy(self: Any, *args: Any, **kwargs: Any) -> Any:
        if applied(self, *args, **kwargs) is not None:
            raise AutoReconnect("connection closed after the write (simulated)")
        return None

    with monkeypatch.context() as patch:
        patch.setattr(mongomock.collection.Collection, "find_one_and_update", lossy)
        yield


#: The checks that run calls during the harness's outage.
OUTAGE_CHECKS = ("store_failures_raise_typed_errors", "failed_writes_took_effect_as_reported")


def outage_checks_with_lost_replies(kind: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The outage checks on ``kind``, with an outage that loses replies of applied writes."""

    def factory() -> BackendHarness:
        store = make_store(kind, monkeypatch)
        return BackendHarness(
            backend=store.backend,
            advance=store.clock.advance,
            delete_record=store.delete,
            outage=lambda: replies_lost(monkeypatch),
        )

    return check_backend(factory, only=OUTAGE_CHECKS)


@pytest.mark.parametrize("kind", MONGO_KINDS)
def test_writes_whose_replies_are_lost_take_effect_as_reported(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: a release whose first send applied, its reply lost, returned ``False``
    (nothing ended) while the record showed the holding released."""
    report = outage_checks_with_lost_replies(kind, monkeypatch)
    assert report.ok, str(report)
    assert len(report.passed) == len(OUTAGE_CHECKS)


def test_the_lost_reply_conformance_run_sees_the_retry_taken_at_its_word(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def as_before(self: Any, key: str, command: Any, started: float) -> Any:
        return False
        yield  # a plan that reads nothing

    monkeypatch.setattr(MongoOperations, "_settle_lost_release", as_before)
    report = outage_checks_with_lost_replies("mongomock-pipeline", monkeypatch)
    assert [result.name for result in report.failed] == ["failed_writes_took_effect_as_reported"]
    assert "release returned False" in str(report)


URI = os.environ.get("MONGOELECTOR_TEST_URI")


@pytest.mark.skipif(not URI, reason="set MONGOELECTOR_TEST_URI to run the suite on a real server")
class TestMongoBackendConformanceOnRealServer(BackendConformance):
    """The same suite against a live server: time moves by sleeping, not exactly."""

    @pytest.fixture
    def conformance_harness(self) -> Iterator[BackendHarness]:
        assert URI is not None
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
        name = f"mongoelector_conformance_{uuid.uuid4().hex[:12]}"
        backend = MongoBackend(client[name])
        uncertainty = backend.time_estimate().uncertainty

        def advance(seconds: float) -> None:
            time.sleep(seconds + 2 * uncertainty + 0.01)

        def delete_record(key: str) -> None:
            client[name]["mongolocker"].delete_one({"_id": key})

        yield BackendHarness(
            backend=backend,
            advance=advance,
            exact_time=False,
            time_tolerance=2 * uncertainty + 0.002,
            delete_record=delete_record,
        )
        client.drop_database(name)
        client.close()


@pytest.mark.skipif(not URI, reason="set MONGOELECTOR_TEST_URI to run the suite on a real server")
class TestAsyncMongoBackendConformanceOnRealServer(BackendConformance):
    """AsyncMongoBackend on a live server, through a blocking view on a loop thread."""

    @pytest.fixture
    def conformance_harness(self) -> Iterator[BackendHarness]:
        assert URI is not None
        name = f"mongoelector_conformance_{uuid.uuid4().hex[:12]}"
        with EventLoopThread() as loop:

            async def connect() -> pymongo.AsyncMongoClient[Any]:
                return pymongo.AsyncMongoClient(URI, serverSelectionTimeoutMS=5000)

            client = loop.run(connect())
            backend = AsyncMongoBackend(client[name])
            uncertainty = loop.run(backend.time_estimate()).uncertainty

            def advance(seconds: float) -> None:
                time.sleep(seconds + 2 * uncertainty + 0.01)

            def delete_record(key: str) -> None:
                loop.run(client[name]["mongolocker"].delete_one({"_id": key}))

            yield BackendHarness(
                backend=BlockingBackend(backend, loop),
                advance=advance,
                exact_time=False,
                time_tolerance=2 * uncertainty + 0.002,
                delete_record=delete_record,
            )
            loop.run(client.drop_database(name))
            loop.run(client.close())
