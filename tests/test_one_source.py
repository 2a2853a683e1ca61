"""Where a sync and an asyncio driver must look alike, the sync one is the async one with
``async``/``await`` taken out (httpcore's rule), so a fix to one cannot miss the other.

The decisions live in shared, pure helpers; these pairs only do I/O and waiting.
Each check compares syntax trees with docstrings left out, so formatting may differ.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from mongoelector import LeaderElector, jobs
from mongoelector._sync.elector import _Batched as SyncBatched
from mongoelector._sync.reads import ReadGroup
from mongoelector._sync.status import StatusGroup
from mongoelector.aio.elector import AsyncLeaderElector
from mongoelector.aio.elector import _Batched as AsyncBatched
from mongoelector.aio.reads import AsyncReadGroup
from mongoelector.aio.status import AsyncStatusGroup
from mongoelector.backends import AsyncMongoBackend, MongoBackend
from mongoelector.fencing import collection, transaction

#: What differs by nature between the two sides, async name -> sync name.
RENAMES = (
    ("async def ", "def "),
    ("async with ", "with "),
    ("await ", ""),
    ("@asynccontextmanager", "@contextmanager"),
    ("AsyncFencedCollection", "FencedCollection"),
    ("AsyncCollection", "Collection"),
    ("AsyncMongoClient", "MongoClient"),
    ("AsyncClientSession", "ClientSession"),
    ("AsyncIterator", "Iterator"),
    ("AsyncLock", "Lock"),
    ("async_fenced_transaction", "fenced_transaction"),
    ("_async_confirm_loss", "_confirm_loss"),
    ("async_store", "sync_store"),
    ("mongoelector.aio.lock", "mongoelector._sync.lock"),
    ("_async_job", "_sync_job"),
    ("Awaitable[Any]", "Any"),
    ("asynchronous=True", "asynchronous=False"),
)

PAIRS = [
    pytest.param(collection.AsyncFencedCollection, collection.FencedCollection, id="collection"),
    pytest.param(
        transaction.async_fenced_transaction, transaction.fenced_transaction, id="transaction"
    ),
    pytest.param(transaction._async_confirm_loss, transaction._confirm_loss, id="transaction-loss"),
    pytest.param(jobs._async_job, jobs._sync_job, id="jobs"),
    # The Mongo backends' one-write fast paths (the shells around the shared quick_* decisions).
    pytest.param(
        AsyncMongoBackend.compare_and_set, MongoBackend.compare_and_set, id="mongo-acquire"
    ),
    pytest.param(AsyncMongoBackend.release, MongoBackend.release, id="mongo-release"),
    pytest.param(AsyncMongoBackend._send, MongoBackend._send, id="mongo-fast-send"),
    # The electors' batched store calls (the groups choose with shared, pure helpers).
    pytest.param(AsyncReadGroup._read, ReadGroup._read, id="follower-reads"),
    pytest.param(AsyncBatched._renew, SyncBatched._renew, id="elector-renew"),
    pytest.param(AsyncStatusGroup._report, StatusGroup._report, id="status-reports"),
    pytest.param(
        AsyncLeaderElector._status_to_group, LeaderElector._status_to_group, id="status-to-group"
    ),
]


def unasync(source: str) -> str:
    for asynchronous, sync in RENAMES:
        source = source.replace(asynchronous, sync)
    return source


def shape(source: str) -> str:
    """The syntax tree of ``source``, docstrings left out."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return ast.dump(tree)


def source(obj: Callable[..., Any] | type) -> str:
    return textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))  # a method is indented


@pytest.mark.parametrize(("asynchronous", "sync"), PAIRS)
def test_the_sync_side_is_the_async_one_without_await(
    asynchronous: Callable[..., Any] | type, sync: Callable[..., Any] | type
) -> None:
    assert shape(unasync(source(asynchronous))) == shape(source(sync))


@pytest.mark.parametrize(("asynchronous", "sync"), PAIRS)
def test_the_check_sees_a_sync_side_that_drifted(
    asynchronous: Callable[..., Any] | type, sync: Callable[..., Any] | type
) -> None:
    """Mutation: drop the sync side's last statement; the check must tell."""
    tree = ast.parse(source(sync))
    definition = tree.body[0]
    assert isinstance(definition, (ast.FunctionDef, ast.ClassDef))
    definition.body = definition.body[:-1] or [ast.Pass()]
    assert shape(unasync(source(asynchronous))) != shape(ast.unparse(tree))
