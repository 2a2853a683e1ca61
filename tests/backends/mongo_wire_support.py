"""A scripted MongoDB primary (mockupdb) and the backends the wire-level tests run against it.

The server answers ``hello`` (as the primary of replica set ``rs``),
``createIndexes`` and ``endSessions`` on its own; every other request waits
for the test to answer it. :func:`make_backend` gives the sync
``MongoBackend`` on a ``MongoClient``, or ``AsyncMongoBackend`` on an
``AsyncMongoClient`` whose event loop runs in a thread, seen through
:class:`~mongoelector.testing.aio.BlockingBackend` so that the same test
scripts drive both. Backends run on a fake clock, so their retry pauses take
no real time.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pymongo
from bson import ObjectId
from mockupdb import MockupDB, going

from mongoelector.backends import AsyncMongoBackend, LeaseRequest, MongoBackend
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend, EventLoopThread

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
REQUEST = LeaseRequest(key="job", owner="me", ttl=10, host="h", pid=7)
#: The two backends every wire scenario runs on.
KINDS = ["sync", "async"]

WireBackend = MongoBackend | BlockingBackend


def is_command(request: Any, name: str) -> bool:
    return getattr(request, "command_name", None) == name


def hang_up_on(name: str) -> Any:
    """An autoresponder that drops the connection on every ``name`` command."""
    return lambda request: is_command(request, name) and request.hangup()


class Primary:
    """A mockupdb server that says it is the primary of replica set ``rs``.

    Async clients are made and closed on ``loop``.
    """

    def __init__(self, loop: EventLoopThread) -> None:
        self.loop = loop
        self.server = MockupDB(request_timeout=5)
        self.server.autoresponds(self._hello)
        self.server.autoresponds(
            lambda request: is_command(request, "endSessions") and request.ok()
        )
        self.index_requests: list[Any] = []
        self.server.autoresponds(self._create_indexes)
        self.hellos = 0
        self.clients: list[pymongo.MongoClient[Any]] = []
        self.async_clients: list[pymongo.AsyncMongoClient[Any]] = []
        self.server.run()

    def _hello(self, request: Any) -> bool:
        if not (request.matches("hello") or request.matches("ismaster")):
            return False
        self.hellos += 1
        address = self.server.address_string
        return request.ok(
            ismaster=True,
            isWritablePrimary=True,
            helloOk=True,
            setName="rs",
            setVersion=1,
            electionId=ObjectId("7fffffff0000000000000001"),
            hosts=[address],
            primary=address,
            me=address,
            minWireVersion=0,
            maxWireVersion=21,
            logicalSessionTimeoutMinutes=30,
            localTime=datetime.now(timezone.utc),
        )

    def _create_indexes(self, request: Any) -> bool:
        if not is_command(request, "createIndexes"):
            return False
        self.index_requests.append(request)
        return request.ok()

    @staticmethod
    def _options(options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault("serverSelectionTimeoutMS", 3000)
        options.setdefault("connectTimeoutMS", 2000)
        return options

    def client(self, **options: Any) -> pymongo.MongoClient[Any]:
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            self.server.uri, replicaSet="rs", **self._options(options)
        )
        self.clients.append(client)
        return client

    def async_client(self, **options: Any) -> pymongo.AsyncMongoClient[Any]:
        async def make() -> pymongo.AsyncMongoClient[Any]:
            return pymongo.AsyncMongoClient(
                self.server.uri, replicaSet="rs", **self._options(options)
            )

        client = self.loop.run(make())
        self.async_clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for async_client in self.async_clients:
            self.loop.run(async_client.close())
        # Stopping waits up to a second for mockupdb's accept loop; do it in the background.
        threading.Thread(target=self.server.stop, daemon=True).start()

    def receives(self, command: str) -> Any:
        """The next request, which must be ``command``."""
        request = self.server.receives()
        assert is_command(request, command), request
        return request

    def idle(self) -> bool:
        """True if no request is waiting for an answer."""
        return not self.server.got(timeout=0.1)


def make_async_backend(primary: Primary, **client_options: Any) -> AsyncMongoBackend:
    client = primary.async_client(**client_options)
    return AsyncMongoBackend(client["app"], clock=FakeClock(NOW), timeout=3)


def make_backend(primary: Primary, kind: str, **client_options: Any) -> WireBackend:
    """A backend of ``kind`` (see :data:`KINDS`) on a new client of ``primary``."""
    if kind == "async":
        return BlockingBackend(make_async_backend(primary, **client_options), primary.loop)
    client = primary.client(**client_options)
    return MongoBackend(client["app"], clock=FakeClock(NOW), timeout=3)


def inner(backend: WireBackend) -> MongoBackend | AsyncMongoBackend:
    """The MongoDB backend itself (behind the blocking view, for the async one)."""
    if isinstance(backend, BlockingBackend):
        wrapped = backend.wrapped
        assert isinstance(wrapped, AsyncMongoBackend)
        return wrapped
    return backend


def warm_up(primary: Primary, backend: WireBackend) -> None:
    """Make the first call (clock read, indexes) so later calls show their own traffic."""
    with going(backend.get, "warm-up"):
        primary.receives("find").ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})


def acquire_id_of(request: Any) -> str:
    return request["update"][0]["$replaceWith"]["$cond"]["then"]["acquire_id"]["$literal"]


def lease_document(owner: str = "me", token: int = 5, acquire_id: str = "x") -> dict[str, Any]:
    return {
        "_id": "job",
        "locked": True,
        "uuid": owner,
        "host": "h",
        "pid": 7,
        "token": token,
        "acquire_id": acquire_id,
        "ts_created": NOW.replace(tzinfo=None),
        "ts_expire": NOW.replace(tzinfo=None, second=10),
    }


def answer_acquire(request: Any, token: int = 5) -> None:
    """Reply as if the acquire in ``request`` was applied (now or by an earlier attempt)."""
    taken = request["update"][0]["$replaceWith"]["$cond"]["then"]
    owner = taken["uuid"]["$literal"]
    request.ok(value=lease_document(owner, token=token, acquire_id=acquire_id_of(request)))
