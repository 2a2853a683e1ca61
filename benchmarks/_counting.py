"""Counting store operations, shared by the 1.x and 2.x scenario runners.

Two ways to count, one classification:

* :class:`CountingDatabase` wraps a pymongo-style database (mongomock in the
  benchmarks) and counts every collection method and database command called
  through it. Each of those calls is one command on the wire (a ``find`` with
  a small result needs no ``getMore``).
* :class:`CommandCounter` is a pymongo command listener: it counts the
  commands a real ``MongoClient`` sends (to a server or to mockupdb).

Either way an operation is a *read* (``find``), a *write* (``findAndModify``,
``insert``, ``update``, ``delete``, even one that changes nothing) or *other*
(``hello``, ``serverStatus``, ``createIndexes``). This module needs only the
standard library and pymongo, because the 1.x runner imports it from its own
virtual environment.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from pymongo import monitoring
from pymongo.errors import AutoReconnect

__all__ = ["OTHER", "READ", "WRITE", "CommandCounter", "CountingDatabase", "Tally", "per"]

READ, WRITE, OTHER = "reads", "writes", "other"

#: Collection methods of pymongo's API, by the kind of command each sends.
_METHOD_KINDS = {
    **dict.fromkeys(
        [
            "find",
            "find_one",
            "count_documents",
            "estimated_document_count",
            "aggregate",
            "distinct",
        ],
        READ,
    ),
    **dict.fromkeys(
        [
            "insert_one",
            "insert_many",
            "update_one",
            "update_many",
            "replace_one",
            "delete_one",
            "delete_many",
            "find_one_and_update",
            "find_one_and_replace",
            "find_one_and_delete",
            "bulk_write",
            # mongomock's bulk operation (pymongo 3's API): one ``update`` command.
            "initialize_unordered_bulk_op",
        ],
        WRITE,
    ),
    **dict.fromkeys(
        ["create_index", "create_indexes", "drop_index", "drop_indexes", "index_information"],
        OTHER,
    ),
}
#: Wire commands, by kind; anything else counts as other.
_COMMAND_KINDS = {
    **dict.fromkeys(["find", "getMore", "count", "aggregate", "distinct"], READ),
    **dict.fromkeys(["findAndModify", "insert", "update", "delete"], WRITE),
}
#: Sent by the driver itself when a client closes, not by the library under test.
_IGNORED_COMMANDS = frozenset({"endSessions"})


class Tally:
    """Operations counted so far, by kind and by name (thread-safe)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._names: Counter[str] = Counter()
        self._kinds: Counter[str] = Counter()

    def add(self, kind: str, name: str) -> None:
        with self._mutex:
            self._kinds[kind] += 1
            self._names[name] += 1

    def take(self) -> dict[str, Any]:
        """The counts since the last ``take`` (``reads``, ``writes``, ``other``, ``names``)."""
        with self._mutex:
            taken = {kind: self._kinds[kind] for kind in (READ, WRITE, OTHER)}
            taken["names"] = dict(self._names)
            self._names.clear()
            self._kinds.clear()
        return taken


def per(counts: list[dict[str, Any]], divisor: float) -> dict[str, Any]:
    """The sum of ``counts`` divided by ``divisor`` (e.g. per minute, per poll, per elector)."""
    total: dict[str, Any] = {kind: 0.0 for kind in (READ, WRITE, OTHER)}
    names: Counter[str] = Counter()
    for count in counts:
        for kind in (READ, WRITE, OTHER):
            total[kind] += count[kind]
        names.update(count["names"])
    result: dict[str, Any] = {kind: total[kind] / divisor for kind in (READ, WRITE, OTHER)}
    result["names"] = {name: n / divisor for name, n in sorted(names.items())}
    return result


class CountingCollection:
    """A collection whose calls of pymongo's collection methods are counted in ``tally``."""

    def __init__(self, inner: Any, owner: CountingDatabase) -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        kind = _METHOD_KINDS.get(name)
        if kind is None or not callable(value):
            return value
        owner = self._owner

        def counted(*args: Any, **kwargs: Any) -> Any:
            owner.count(kind, name)
            return value(*args, **kwargs)

        return counted


class CountingDatabase:
    """Wraps a database so that every command sent through it is counted in ``tally``.

    ``commands`` answers database commands the store lacks (mongomock has no
    ``serverStatus``): name -> function returning the reply; such a call still
    counts, as the round trip it would be. While :attr:`dead` is true every
    call raises ``AutoReconnect``, as if the process had lost the store for good.
    """

    def __init__(
        self,
        inner: Any,
        tally: Tally,
        *,
        commands: Mapping[str, Callable[[], Mapping[str, Any]]] | None = None,
    ) -> None:
        self._inner = inner
        self.tally = tally
        self._commands = dict(commands or {})
        self.dead = False

    def count(self, kind: str, name: str) -> None:
        if self.dead:
            raise AutoReconnect("simulated crash: this process no longer reaches the store")
        self.tally.add(kind, name)

    def get_collection(self, name: str, **options: Any) -> CountingCollection:
        return CountingCollection(self._inner.get_collection(name, **options), self)

    def __getitem__(self, name: str) -> CountingCollection:
        return self.get_collection(name)

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        name = command if isinstance(command, str) else next(iter(command))
        self.count(OTHER, name)
        if name in self._commands:
            return self._commands[name]()
        return self._inner.command(command, *args, **kwargs)

    def create_collection(self, name: str, **options: Any) -> Any:
        self.count(OTHER, "create")
        return self._inner.create_collection(name, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a pymongo client sends, into ``tally`` (register it per client)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in _IGNORED_COMMANDS:
            self.tally.add(_COMMAND_KINDS.get(name, OTHER), name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
