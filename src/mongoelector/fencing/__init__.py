"""Fenced writes to MongoDB: writes that count only while a lock is still held.

``Lock.fenced(collection)`` (and ``LeaderElector.fenced``, ``AsyncLock.fenced``,
``AsyncLeaderElector.fenced``) wrap a collection so each write carries the
lock's fencing token; ``Lock.fenced_transaction(client)`` (and the others')
runs a transaction that commits only while the lock is held. See
``docs/locks.md``. This package imports pymongo; ``import mongoelector`` does not.
"""

from __future__ import annotations

from mongoelector.fencing._plan import (
    FencedBulkWriteResult,
    FencedDeleteResult,
    FencedUpdateResult,
)
from mongoelector.fencing.collection import AsyncFencedCollection, FencedCollection
from mongoelector.fencing.transaction import async_fenced_transaction, fenced_transaction

__all__ = [
    "AsyncFencedCollection",
    "FencedBulkWriteResult",
    "FencedCollection",
    "FencedDeleteResult",
    "FencedUpdateResult",
    "async_fenced_transaction",
    "fenced_transaction",
]
