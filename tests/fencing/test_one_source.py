"""FencedCollection and AsyncFencedCollection are one source: the sync class is the async
one with ``async``/``await`` taken out (httpcore's rule), so a fix to one cannot miss the other.

The decisions live in ``fencing/_plan.py``; the two classes only do I/O. This
compares their syntax trees (docstrings aside), so formatting may differ.
"""

from __future__ import annotations

import ast
import inspect

from mongoelector.fencing import collection


def unasync(source: str) -> str:
    return (
        source.replace("async def ", "def ")
        .replace("await ", "")
        .replace("AsyncFencedCollection", "FencedCollection")
        .replace("AsyncCollection", "Collection")
    )


def shape(source: str) -> str:
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


def test_the_sync_wrapper_is_the_async_one_without_await() -> None:
    sync = inspect.getsource(collection.FencedCollection)
    asynchronous = inspect.getsource(collection.AsyncFencedCollection)
    assert shape(unasync(asynchronous)) == shape(sync)


def test_the_check_sees_a_difference() -> None:
    """Mutation: a sync class that forgot one step of the async one does not pass."""
    sync = inspect.getsource(collection.FencedCollection)
    asynchronous = inspect.getsource(collection.AsyncFencedCollection)
    broken = sync.replace("token = self._fence.token()", "token = 0", 1)
    assert broken != sync
    assert shape(unasync(asynchronous)) != shape(broken)
