"""A MongoDB 7-lookalike on loopback for counting the pipeline path's commands with a real client.

mockupdb speaks the wire protocol; every command a real ``pymongo.MongoClient``
sends it is carried out on a mongomock database, whose pipeline updates are
evaluated by the test suite's model of the server (``tests/backends/
mongo_pipeline_sim.py``) with ``$$NOW`` read from the benchmark's clock. The
server says it is MongoDB 7 (wire version 21) and tells its time in ``hello``,
so ``MongoBackend`` takes the pipeline path, exactly as on a real server. A
pymongo command listener on the client then counts what is really sent.
It models the server; it is not one (the real-server run is the authority).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import mongomock
import pymongo
from mockupdb import MockupDB
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.backends.mongo_pipeline_sim import install

__all__ = ["WireBridge"]


class WireBridge:
    """Serves ``client()``s from one mongomock client, with time from ``now``."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._store = mongomock.MongoClient()
        self._mutex = threading.Lock()
        self._server = MockupDB(request_timeout=30)
        self._server.autoresponds(self._answer)
        self._server.run()
        self._clients: list[pymongo.MongoClient[Any]] = []

    @classmethod
    @contextlib.contextmanager
    def running(cls, now: Callable[[], datetime]) -> Iterator[WireBridge]:
        import pytest

        with pytest.MonkeyPatch.context() as patch:
            install(patch, now)
            bridge = cls(now)
            try:
                yield bridge
            finally:
                bridge.close()

    def client(self, *listeners: pymongo.monitoring.CommandListener) -> Any:
        """A new client of this server, with these command listeners."""
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            self._server.uri,
            directConnection=True,
            event_listeners=list(listeners),
            serverSelectionTimeoutMS=5000,
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        threading.Thread(target=self._server.stop, daemon=True).start()

    # --- carrying out commands -------------------------------------------------------------

    def _answer(self, request: Any) -> bool:
        name = getattr(request, "command_name", None)
        if name is None:
            return False
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is None:
            return bool(request.command_err(code=59, errmsg=f"no such command: {name}"))
        with self._mutex:
            handler(request)
        return True

    def _on_hello(self, request: Any) -> None:
        request.ok(
            ismaster=True,
            isWritablePrimary=True,
            helloOk=True,
            minWireVersion=0,
            maxWireVersion=21,
            maxBsonObjectSize=16 * 1024 * 1024,
            maxMessageSizeBytes=48 * 1024 * 1024,
            maxWriteBatchSize=100_000,
            logicalSessionTimeoutMinutes=30,
            localTime=self._now(),
        )

    _on_ismaster = _on_hello

    def _on_endsessions(self, request: Any) -> None:
        request.ok()

    _on_ping = _on_endsessions
    _on_createindexes = _on_endsessions

    def _on_dropdatabase(self, request: Any) -> None:
        self._store.drop_database(request.doc["$db"])
        request.ok()

    def _collection(self, request: Any, field: str) -> Any:
        return self._store[request.doc["$db"]][request.doc[field]]

    def _on_find(self, request: Any) -> None:
        collection = self._collection(request, "find")
        cursor = collection.find(request.doc.get("filter", {}), request.doc.get("projection"))
        if request.doc.get("sort"):
            cursor = cursor.sort(list(request.doc["sort"].items()))
        if request.doc.get("limit"):
            cursor = cursor.limit(abs(request.doc["limit"]))
        ns = f"{request.doc['$db']}.{request.doc['find']}"
        request.ok(cursor={"id": 0, "ns": ns, "firstBatch": list(cursor)})

    def _on_findandmodify(self, request: Any) -> None:
        collection = self._collection(request, "findAndModify")
        try:
            document = collection.find_one_and_update(
                request.doc["query"],
                request.doc["update"],
                upsert=bool(request.doc.get("upsert")),
                return_document=(
                    ReturnDocument.AFTER if request.doc.get("new") else ReturnDocument.BEFORE
                ),
            )
        except DuplicateKeyError as error:
            request.command_err(code=11000, errmsg=f"E11000 duplicate key: {error}")
            return
        request.ok(value=document, lastErrorObject={"n": int(document is not None)})

    def _on_update(self, request: Any) -> None:
        collection = self._collection(request, "update")
        matched = modified = 0
        for statement in request.docs[0].get("updates", []) or request.docs[1:]:
            method = collection.update_many if statement.get("multi") else collection.update_one
            result = method(statement["q"], statement["u"], upsert=bool(statement.get("upsert")))
            matched += result.matched_count + (1 if result.upserted_id is not None else 0)
            modified += result.modified_count
        request.ok(n=matched, nModified=modified)

    def _on_insert(self, request: Any) -> None:
        collection = self._collection(request, "insert")
        documents = request.docs[0].get("documents", []) or request.docs[1:]
        try:
            collection.insert_many(list(documents))
        except (DuplicateKeyError, mongomock.BulkWriteError):
            request.ok(n=0, writeErrors=[{"index": 0, "code": 11000, "errmsg": "E11000"}])
            return
        request.ok(n=len(documents))

    def _on_delete(self, request: Any) -> None:
        collection = self._collection(request, "delete")
        removed = 0
        for statement in request.docs[0].get("deletes", []) or request.docs[1:]:
            method = (
                collection.delete_one if statement.get("limit") == 1 else collection.delete_many
            )
            removed += method(statement["q"]).deleted_count
        request.ok(n=removed)
