"""The exceptions mongoelector raises, split by cause.

Everything derives from :class:`MongoElectorError`, so callers can catch one
thing. Store failures are wrapped in :class:`BackendError` subclasses with the
original exception kept as ``original`` (and as ``__cause__``).
"""

from __future__ import annotations

__all__ = [
    "AcquireTimeout",
    "AmbiguousOutcome",
    "BackendError",
    "BackendUnavailable",
    "LockExists",
    "LockLost",
    "MongoElectorError",
    "NotLeader",
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
