"""What ``Lock``, ``LeaderElector`` and their asyncio twins accept as their store.

A storage backend, or a MongoDB database given straight in (as 1.x took it):
a pymongo ``Database`` (or a lookalike such as mongomock's) is wrapped in a
:class:`~mongoelector.backends.MongoBackend` with its default settings, an
``AsyncDatabase`` (``pymongo.AsyncMongoClient(uri)["app"]``) in an
:class:`~mongoelector.backends.AsyncMongoBackend`. The protocol modules at the
bottom stay free of MongoDB: a database is recognised by its methods here, and
the MongoDB backends are imported only when one is wrapped.

Every lock and elector given the same database (and the same clock) shares
one wrapping backend while any of them lives, so their renewals go out
together (batching is per backend object) and the server-time estimate and
indexes are made once.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Literal

from mongoelector.backends.protocol import (
    StorageBackend,
    missing_protocol_methods,
    require_backend,
)
from mongoelector.clock import Clock

if TYPE_CHECKING:
    from mongoelector.backends.async_protocol import AsyncStorageBackend

__all__ = ["async_store", "database_kind", "sync_store"]

#: Methods a database has on its type. They are looked up on the type: a
#: database answers any attribute with a collection of that name (so it seems
#: to have every method of the storage protocol), and a client with a database.
_DATABASE_METHODS = ("get_collection", "command", "create_collection")
#: Methods only clients have.
_CLIENT_METHODS = ("list_database_names", "get_database")


#: The backends wrapping a database, by (database, clock) identity, while any is in use.
#: A backend keeps its database and clock alive, so their ids are not reused meanwhile.
_wrapped: weakref.WeakValueDictionary[tuple[int, int], Any] = weakref.WeakValueDictionary()
_wrapped_guard = threading.Lock()


def _after_fork_in_child() -> None:
    global _wrapped_guard  # noqa: PLW0603 - a fresh lock for the child
    _wrapped_guard = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(after_in_child=_after_fork_in_child)


def _shared(database: object, clock: Clock | None, make: Any) -> Any:
    """The backend wrapping ``database`` with ``clock``: ``make(database, clock=clock)`` once."""
    key = (id(database), id(clock))
    with _wrapped_guard:
        backend = _wrapped.get(key)
        if backend is None:
            backend = make(database, clock=clock)
            _wrapped[key] = backend
        return backend


def _type_has(obj: object, name: str) -> bool:
    return callable(getattr(type(obj), name, None))


def database_kind(obj: object) -> Literal["sync", "async"] | None:
    """``"sync"`` for a pymongo-style ``Database``, ``"async"`` for an ``AsyncDatabase``,
    ``None`` for anything else (a client included)."""
    if not all(_type_has(obj, method) for method in _DATABASE_METHODS):
        return None
    if any(_type_has(obj, method) for method in _CLIENT_METHODS):
        return None
    return "async" if inspect.iscoroutinefunction(getattr(type(obj), "command", None)) else "sync"


def _client_hint(obj: object) -> str:
    if any(_type_has(obj, method) for method in _CLIENT_METHODS):
        return "; it looks like a client: pass one of its databases, e.g. client['app']"
    return ""


def sync_store(backend: object, *, clock: Clock | None = None) -> StorageBackend:
    """``backend`` if it implements :class:`StorageBackend`; a sync database wrapped in
    ``MongoBackend(backend, clock=clock)`` (shared, see the module docstring); else
    ``TypeError`` naming the missing methods.

    An async database is refused with a ``TypeError`` naming ``AsyncLock`` and
    ``AsyncLeaderElector``, which take it.
    """
    kind = database_kind(backend)  # first: a Database answers any attribute with a collection
    if kind is not None or missing_protocol_methods(backend):
        if kind == "sync":
            from mongoelector.backends.mongo import MongoBackend  # noqa: PLC0415 - on first use

            shared: StorageBackend = _shared(backend, clock, MongoBackend)
            return shared
        if kind == "async":
            raise TypeError(
                f"backend {backend!r} is an async (AsyncMongoClient) database; use it with "
                f"mongoelector.aio.AsyncLock or AsyncLeaderElector, or pass a sync "
                f"pymongo Database (MongoClient(uri)['app']) here"
            )
        try:
            require_backend(backend)
        except TypeError as error:
            raise TypeError(f"{error}{_client_hint(backend)}") from None
    return require_backend(backend)


def async_store(backend: object, *, clock: Clock | None = None) -> AsyncStorageBackend:
    """What :func:`~mongoelector.backends.async_protocol.as_async_backend` makes of
    ``backend``, or, for an ``AsyncDatabase``, ``AsyncMongoBackend(backend, clock=clock)``.

    A sync database is refused with ``TypeError``, as the sync ``MongoBackend``
    is: each call would block the event loop for a round trip to MongoDB.
    """
    from mongoelector.backends.async_protocol import as_async_backend  # noqa: PLC0415

    kind = database_kind(backend)  # first: a Database answers any attribute with a collection
    if kind is not None or missing_protocol_methods(backend):
        if kind == "async":
            from mongoelector.backends.async_mongo import (  # noqa: PLC0415 - on first use
                AsyncMongoBackend,
            )

            shared_async: AsyncStorageBackend = _shared(backend, clock, AsyncMongoBackend)
            return shared_async
        if kind == "sync":
            raise TypeError(
                f"backend {backend!r} is a sync pymongo Database: each call would block the "
                f"event loop for a round trip to MongoDB. Pass an AsyncMongoClient database "
                f"instead, e.g. pymongo.AsyncMongoClient(uri)['app'] (for tests without a "
                f"server, MemoryBackend), or use the sync Lock / LeaderElector"
            )
        try:
            as_async_backend(backend)
        except TypeError as error:
            raise TypeError(f"{error}{_client_hint(backend)}") from None
    return as_async_backend(backend)
