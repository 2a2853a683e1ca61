"""mongomock behind the async pymongo API that AsyncMongoBackend calls (mongomock has none).

Each coroutine calls the mongomock method of the same name and returns its
result, so AsyncMongoBackend runs on mongomock's semantics (and on the
pipeline evaluator of :mod:`mongo_pipeline_sim`, when installed) exactly as
MongoBackend does. It proves the async backend's plans and shell against the
same stores as the sync backend; it says nothing about pymongo's real async
classes, which the wire-level tests (mockupdb) and the real-server tests cover.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any


def _forward(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


class AsyncMockCursor:
    def __init__(self, cursor: Any) -> None:
        self.inner = cursor

    async def to_list(self, length: int | None = None) -> list[Any]:
        documents = list(self.inner)
        return documents if length is None else documents[:length]


class AsyncMockCollection:
    """A mongomock collection with the coroutine methods of ``AsyncCollection`` that we use."""

    def __init__(self, collection: Any) -> None:
        self.inner = collection
        self.name = collection.name

    find_one = _forward("find_one")
    find_one_and_update = _forward("find_one_and_update")
    insert_one = _forward("insert_one")
    update_one = _forward("update_one")
    create_index = _forward("create_index")
    # The other writes and counts, for AsyncFencedCollection's tests.
    insert_many = _forward("insert_many")
    update_many = _forward("update_many")
    replace_one = _forward("replace_one")
    delete_one = _forward("delete_one")
    delete_many = _forward("delete_many")
    find_one_and_replace = _forward("find_one_and_replace")
    find_one_and_delete = _forward("find_one_and_delete")
    bulk_write = _forward("bulk_write")
    count_documents = _forward("count_documents")

    def with_options(self, **options: Any) -> AsyncMockCollection:
        return AsyncMockCollection(self.inner.with_options(**options))

    def find(self, *args: Any, **kwargs: Any) -> AsyncMockCursor:
        return AsyncMockCursor(self.inner.find(*args, **kwargs))


class AsyncMockDatabase:
    """A mongomock database that passes for an ``AsyncDatabase``."""

    def __init__(self, database: Any) -> None:
        self.inner = database
        self.name = database.name

    command = _forward("command")
    create_collection = _forward("create_collection")

    def get_collection(self, name: str, **options: Any) -> AsyncMockCollection:
        return AsyncMockCollection(self.inner.get_collection(name, **options))
