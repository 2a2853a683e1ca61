"""Makes each mongomock command atomic, as a MongoDB server executes it.

mongomock is not thread-safe. It changes stored documents in place (an update
deep-copies the stored document, then applies the change to it; the pipeline
model of :mod:`mongo_pipeline_sim` clears it and refills it), while a read in
another thread copies the same document key by key: the reader then fails with
``RuntimeError: OrderedDict mutated during iteration``. Its ``findAndModify``
is a ``find_one`` followed by an update filtered on ``_id`` alone, so two
threads that read the same version of a document both apply their
compare-and-set, and ``insert_one`` checks for a duplicate ``_id`` before it
stores. A real server runs each command whole, against the document as the
previous command left it.

:func:`make_commands_atomic` runs every mongomock entry point that reads or
writes stored documents under one lock, the "server". The lock is taken below
the public methods, so a test that replaces ``find_one_and_update`` (an outage,
a lost reply, a spy) still wraps the whole command, and never holds the lock
while its own code waits. A bulk write takes it once per operation, as a server
applies a bulk write one operation at a time. A cursor takes it when it runs its
query (``find`` returns a lazy cursor; the documents it yields are copies).
``tests/conftest.py`` installs it for every test; :func:`make_store` and the
pipeline model install it too.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import mongomock.collection
import pytest

#: Held by the thread whose mongomock command is running (re-entrant: commands nest,
#: ``findAndModify`` reads through ``find_one`` and an upsert inserts).
SERVER = threading.RLock()

#: The ``Collection`` methods that run a whole command on stored documents.
COLLECTION_COMMANDS = (
    "_find_and_modify",
    "_insert",
    "_update",
    "_delete",
    "count_documents",
    "estimated_document_count",
    "distinct",
    "aggregate",
    "create_index",
    "drop_index",
    "drop",
)
#: The ``Cursor`` method that runs its query, the first time it is read.
CURSOR_COMMANDS = ("_compute_results",)


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def command(*args: Any, **kwargs: Any) -> Any:
        with SERVER:
            return method(*args, **kwargs)

    command.__mongomock_atomic__ = True  # type: ignore[attr-defined]
    return command


def make_commands_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until ``monkeypatch`` undoes it, each mongomock command runs whole under :data:`SERVER`.

    Calling it again (another store of the same test) changes nothing.
    """
    targets = [
        (mongomock.collection.Collection, COLLECTION_COMMANDS),
        (mongomock.collection.Cursor, CURSOR_COMMANDS),
    ]
    for owner, names in targets:
        for name in names:
            method = getattr(owner, name)
            if not getattr(method, "__mongomock_atomic__", False):
                monkeypatch.setattr(owner, name, _atomic(method))
