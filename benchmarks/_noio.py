"""A MongoDB database whose lease collection does no I/O: the measure of a lock's own code.

``NoIODatabase`` wraps a mongomock database for everything a backend does
once (``hello``, indexes), but serves the lease collection's
``find_one_and_update`` from a dict with as little work as a store can do. It
speaks either dialect a backend may choose:

* **classic** (what mongomock is taken for): an acquire (``return_document``
  set) stores and returns its ``$set`` fields, a release marks the stored
  document unlocked and returns it as it was;
* **pipeline** (``pipeline=True``: ``hello`` then says MongoDB 7 and tells its
  time, as a production server does): an acquire's ``$replaceWith`` stage is
  evaluated as far as a free lease needs (literals, ``$$NOW``, the expiry's
  ``$add``, the token's ``$max``), a release as above.

Datetimes come back as pymongo returns them (naive UTC, whole milliseconds).
It reads no filter: it serves uncontended acquire+release pairs of one
process, and refuses any other call on the lease collection, so a benchmark
that left the one-write path fails instead of measuring something else.

The lock's own code is then a pair's time minus the time of the same two
``find_one_and_update`` calls made directly on the same collection, timed side
by side (``benchmarks/runner_2x.py``, ``noio_own_code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["NoIODatabase"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
            if isinstance(update, list):
                fields = self._taken(key, update)
            elif isinstance(update, Mapping) and "$set" in update:
                fields = update["$set"]
            else:
                raise NotImplementedError(f"not an acquire: {update!r}")
            document = {"_id": key, **{k: _as_stored(v) for k, v in fields.items()}}
            self.documents[key] = document
            return document
        before = self.documents.get(key)  # a release: the document before
        if before is not None:
            self.documents[key] = {**before, "locked": False}
        return before

    def _taken(self, key: Any, pipeline: list[Any]) -> dict[str, Any]:
        """The fields the acquire ``pipeline`` writes on a free lease."""
        now = datetime.now(timezone.utc)
        before = self.documents.get(key) or {}
        fields: dict[str, Any] = {}
        for name, value in pipeline[0]["$replaceWith"]["$cond"]["then"].items():
            if name == "_id":
                continue
            if value == "$$NOW":
                fields[name] = now
            elif isinstance(value, Mapping) and "$literal" in value:
                fields[name] = value["$literal"]
            elif isinstance(value, Mapping) and "$add" in value:  # the expiry
                fields[name] = now + timedelta(milliseconds=value["$add"][1])
            elif isinstance(value, Mapping) and "$max" in value:  # the token
                least = value["$max"][2]["$literal"]
                micros = (now - _EPOCH) // timedelta(microseconds=1) // 1000 * 1000
                fields[name] = max(before.get("token", 0) + 1, micros, least)
            else:
                raise NotImplementedError(f"no such acquire field: {name}: {value!r}")
        return fields

    def __getattr__(self, name: str) -> Any:
        if name.startswith("initialize_"):  # mongomock's, not pymongo's: be pymongo
            raise AttributeError(name)
        value = getattr(self._setup, name)
        if not callable(value) or "index" in name:  # attributes, and the one-time indexes
            return value
        raise NotImplementedError(f"the no-I/O lease collection serves no {name}()")


class NoIODatabase:
    """A mongomock database whose collection ``lease_collection`` is a :class:`NoIOCollection`."""

    def __init__(self, setup: Any, lease_collection: str, *, pipeline: bool = False) -> None:
        self._setup = setup
        self._pipeline = pipeline
        self.leases = NoIOCollection(setup.get_collection(lease_collection), lease_collection)

    def get_collection(self, name: str, **options: Any) -> Any:
        if name == self.leases.name:
            return self.leases
        return self._setup.get_collection(name, **options)

    def __getitem__(self, name: str) -> Any:
        return self.get_collection(name)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        if self._pipeline and args and args[0] in ("hello", "isMaster"):
            now = datetime.now(timezone.utc)
            now = now.replace(tzinfo=None, microsecond=now.microsecond // 1000 * 1000)
            return {"ok": 1.0, "isWritablePrimary": True, "maxWireVersion": 21, "localTime": now}
        return self._setup.command(*args, **kwargs)

    def create_collection(self, name: str, **options: Any) -> Any:
        return self._setup.create_collection(name, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._setup, name)
