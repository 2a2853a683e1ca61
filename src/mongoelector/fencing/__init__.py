"""Fenced writes to MongoDB: a collection wrapper whose writes carry a lock's fencing token.

``Lock.fenced(collection)`` (and ``LeaderElector.fenced``, ``AsyncLock.fenced``,
``AsyncLeaderElector.fenced``) make these; see ``docs/locks.md``. This package
imports pymongo; ``import mongoelector`` does not import it.
"""

from __future__ import annotations

from mongoelector.fencing._plan import (
    FencedBulkWriteResult,
    FencedDeleteResult,
    FencedUpdateResult,
)
from mongoelector.fencing.collection import AsyncFencedCollection, FencedCollection

__all__ = [
    "AsyncFencedCollection",
    "FencedBulkWriteResult",
    "FencedCollection",
    "FencedDeleteResult",
    "FencedUpdateResult",
]
