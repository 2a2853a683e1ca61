"""Checks of what users hand the MongoDB backends; each error names the bad value."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

from mongoelector.backends.protocol import EMPTY_METADATA

__all__ = ["check_collection_name", "check_database", "check_metadata", "check_positive_ttl"]

#: Methods a database object must have (looked up on its type, not the instance:
#: a ``MongoClient`` answers any attribute with a database of that name).
_DATABASE_METHODS = ("get_collection", "command", "create_collection")
#: Methods that only clients have.
_CLIENT_METHODS = ("list_database_names", "get_database", "start_session")


def _type_has(obj: object, name: str) -> bool:
    return callable(getattr(type(obj), name, None))


def check_database(database: object, *, name: str = "db", asynchronous: bool = False) -> Any:
    """Return ``database`` if it is a database (pymongo's, or a lookalike such as mongomock's).

    A client (``MongoClient``) is refused with ``TypeError``, as is a database
    of the other kind (an async one for a sync backend, or the reverse).
    """
    if database is None or isinstance(database, (str, bytes, Mapping)):
        raise TypeError(
            f"{name} must be a pymongo Database, got {type(database).__name__} {database!r}"
        )
    if any(_type_has(database, method) for method in _CLIENT_METHODS):
        raise TypeError(
            f"{name} must be a pymongo Database, not a client: got {type(database).__name__}; "
            f"pass client[<database name>] instead"
        )
    if not all(_type_has(database, method) for method in _DATABASE_METHODS):
        raise TypeError(
            f"{name} must be a pymongo Database, got {type(database).__name__} {database!r}"
        )
    is_async = inspect.iscoroutinefunction(getattr(type(database), "command", None))
    if is_async != asynchronous:
        wanted = "an async (AsyncDatabase)" if asynchronous else "a sync (Database)"
        raise TypeError(f"{name} must be {wanted} database, got {type(database).__name__}")
    return database


def check_collection_name(value: object, *, name: str = "collection") -> str:
    """Return ``value`` if MongoDB accepts it as a collection name."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    problem = None
    if not value:
        problem = "must not be empty"
    elif "$" in value or "\x00" in value:
        problem = "must not contain '$' or NUL"
    elif value.startswith(".") or value.endswith(".") or ".." in value:
        problem = "must not start or end with '.' or contain '..'"
    elif value.startswith("system."):
        problem = "must not start with 'system.'"
    if problem is not None:
        raise ValueError(f"{name} {problem}, got {value!r}")
    return value


def check_metadata(metadata: object, *, name: str = "metadata") -> dict[str, str]:
    """Return ``metadata`` as a dict if it maps field-safe ``str`` keys to ``str`` values."""
    if metadata is EMPTY_METADATA:  # what every lock's and elector's request carries
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(metadata).__name__} {metadata!r}")
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{name} must map str to str, got {key!r}: {value!r}")
        if not key or key.startswith("$") or "." in key or "\x00" in key:
            raise ValueError(
                f"{name} keys must be non-empty and contain no '.', NUL or leading '$', got {key!r}"
            )
        checked[key] = value
    return checked


def check_positive_ttl(ttl: object, *, name: str = "ttl") -> float:
    """Return ``ttl`` as float seconds; anything but a positive finite number is a ``ValueError``.

    This is the 1.x rule (a ``ttl`` of the wrong type is a ``ValueError`` there too).
    """
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, got {ttl!r}")
    return float(ttl)
