"""A MongoDB database whose lease collection does no I/O: the measure of a lock's own code.

``NoIODatabase`` wraps a mongomock database for everything a backend does
once (``hello``, indexes), but serves the lease collection's
``find_one_and_update`` from a dict with as little work as a store can do: an
update with ``return_document`` set (an acquire) stores and returns the
``$set`` fields as pymongo would return them (naive UTC datetimes), one without
(a release) marks the stored document unlocked and returns it as it was. It
reads no filter: it serves uncontended acquire+release pairs of one process,
and refuses any other call on the lease collection, so a benchmark that left
the one-write path would fail instead of measuring something else.

The lock's own code is then a pair's time minus the time of the same two
``find_one_and_update`` calls made directly on the same collection, timed side
by side (``benchmarks/runner_2x.py``, ``noio_own_code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["NoIODatabase"]


def _as_stored(value: object) -> object:
    # What pymongo returns for a stored datetime: naive UTC, cut to the millisecond.
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)
    return value


class NoIOCollection:
    """The lease collection of :class:`NoIODatabase`; ``calls`` keeps what it was asked."""

    def __init__(self, setup: Any, name: str) -> None:
        self._setup = setup  # the mongomock collection, for the one-time calls
        self.name = name
        self.documents: dict[Any, dict[str, Any]] = {}
        self.calls: list[tuple[Mapping[str, Any], Any, dict[str, Any]]] | None = None

    def find_one_and_update(
        self, filter: Mapping[str, Any], update: Any, **options: Any
    ) -> dict[str, Any] | None:
        if self.calls is not None:
            self.calls.append((filter, update, options))
        key = filter["_id"]
        if options.get("return_document"):  # an acquire: the document afterwards
            if not isinstance(update, Mapping) or "$set" not in update:
                raise NotImplementedError(f"not a classic acquire: {update!r}")
            document = {"_id": key, **{k: _as_stored(v) for k, v in update["$set"].items()}}
            self.documents[key] = document
            return document
        before = self.documents.get(key)  # a release: the document before
        if before is not None:
            self.documents[key] = {**before, "locked": False}
        return before

    def __getattr__(self, name: str) -> Any:
        if name.startswith("initialize_"):  # mongomock's, not pymongo's: be pymongo
            raise AttributeError(name)
        value = getattr(self._setup, name)
        if not callable(value) or "index" in name:  # attributes, and the one-time indexes
            return value
        raise NotImplementedError(f"the no-I/O lease collection serves no {name}()")


class NoIODatabase:
    """A mongomock database whose collection ``lease_collection`` is a :class:`NoIOCollection`."""

    def __init__(self, setup: Any, lease_collection: str) -> None:
        self._setup = setup
        self.leases = NoIOCollection(setup.get_collection(lease_collection), lease_collection)

    def get_collection(self, name: str, **options: Any) -> Any:
        if name == self.leases.name:
            return self.leases
        return self._setup.get_collection(name, **options)

    def __getitem__(self, name: str) -> Any:
        return self.get_collection(name)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return self._setup.command(*args, **kwargs)

    def create_collection(self, name: str, **options: Any) -> Any:
        return self._setup.create_collection(name, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._setup, name)
