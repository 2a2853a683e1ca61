"""MongoBackend on mongomock passes the backend conformance suite, on both write paths."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mongomock.collection
import pytest
from pymongo.errors import AutoReconnect

from mongoelector.testing import BackendConformance, BackendHarness
from tests.backends.mongo_support import MONGO_KINDS, make_store

#: The mongomock calls the backend makes; during an outage each drops its "connection".
_CALLS = ("find_one", "find", "find_one_and_update", "insert_one", "update_one")


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
