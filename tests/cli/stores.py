"""Stores for command-line tests: mongomock databases filled the way real deployments fill them.

``python -m tests.cli.mongomock_driver FIXTURE ARGS...`` runs the command line in a
fresh process on a ``mongomock://ops`` store filled by ``FIXTURES[FIXTURE]``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from mongoelector import MongoLeaderElector, MongoLocker
from mongoelector.cli.connect import mongomock_client


def fresh_uri() -> str:
    """A ``mongomock://`` URI naming a store no other test uses, database ``app``."""
    return f"mongomock://{uuid.uuid4().hex}/app"


def database_of(uri: str) -> Any:
    return mongomock_client(uri)["app"]


def fill_ops(database: Any) -> dict[str, Any]:
    """A lock held by a MongoLocker, and an election of three electors that each polled once."""
    lock = MongoLocker("nightly-report", database, ttl=600, timeparanoid=False)
    assert lock.acquire(blocking=False)
    electors = [
        MongoLeaderElector("scheduler", database, ttl=15, timeparanoid=False, app_version="1.4.2")
        for _ in range(3)
    ]
    for elector in electors:
        elector.poll()
    [leader] = [elector for elector in electors if elector.is_leader]
    return {"lock": lock, "electors": electors, "leader": leader}


FIXTURES: dict[str, Callable[[Any], object]] = {
    "empty": lambda database: None,
    "ops": fill_ops,
}
