"""The exceptions mongoelector raises, split by cause.

Everything derives from :class:`MongoElectorError`, so callers can catch one
thing. Store failures are wrapped in :class:`BackendError` subclasses with the
original exception kept as ``original`` (and as ``__cause__``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AcquireTimeout",
    "AmbiguousOutcome",
    "BackendError",
    "BackendUnavailable",
    "LockExists",
    "LockLost",
    "MongoElectorError",
    "NotLeader",
    "StaleToken",
    "TimeOffsetError",
]


class MongoElectorError(Exception):
    """Base class of every exception raised by mongoelector."""


class LockExists(MongoElectorError):
    """A non-blocking acquire found the lock held by someone else."""


class AcquireTimeout(MongoElectorError):
    """A blocking acquire did not get the lock within its timeout."""


class TimeOffsetError(MongoElectorError):
    """The host clock differs from the store's clock by more than allowed."""


class LockLost(MongoElectorError):
    """A holding that the caller relied on is no longer valid."""


class NotLeader(MongoElectorError):
    """Leadership was asked for where this node does not lead and cannot become leader.

    For example, entering ``elector.leadership()`` while the elector is not
    running, or when it stops before this node becomes leader.
    """


class StaleToken(MongoElectorError):
    """A fenced write met a document already written with a newer fencing token.

    ``key`` is the lock (or election) key, ``token`` the token of the refused
    write, ``newer_token`` the one found in the document and ``document_id``
    that document's ``_id``. The refused write changed nothing.

    ``details`` is ``None``, except when a fenced ``bulk_write`` raised it (an
    upsert statement met a newer document): then it is the ``details`` of
    pymongo's ``BulkWriteError`` (also the exception's ``__cause__``), the
    counts and ``upserted`` ids of the statements that did apply and every
    ``writeErrors`` entry; ``pymongo.results.BulkWriteResult(error.details,
    True)`` reads it as a result. Other statements of that bulk may have been
    applied (with ``ordered=True``, those before the refused upsert; with
    ``ordered=False``, all the others).
    """

    def __init__(
        self,
        key: str,
        token: int,
        newer_token: object,
        document_id: object,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"document {document_id!r} was written under {key!r} with token {newer_token!r}, "
            f"newer than this write's token {token}"
        )
        self.key = key
        self.token = token
        self.newer_token = newer_token
        self.document_id = document_id
        self.details = details

    def __reduce__(
        self,
    ) -> tuple[type[StaleToken], tuple[str, int, object, object, Mapping[str, Any] | None]]:
        return (
            type(self),
            (self.key, self.token, self.newer_token, self.document_id, self.details),
        )


class BackendError(MongoElectorError):
    """The store could not carry out an operation.

    ``original`` is the store-specific exception, or ``None``.
    """

    def __init__(self, message: str, *, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original
        if original is not None:
            self.__cause__ = original


class BackendUnavailable(BackendError):
    """The operation definitely did not take effect; it is safe to retry."""


class AmbiguousOutcome(BackendError):
    """The operation may or may not have taken effect (e.g. the reply was lost).

    A caller must find out by reading the record before it assumes either.
    """
