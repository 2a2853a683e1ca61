"""What a pymongo error means for a lease operation, and how long to keep retrying.

A failed *write* is either definitely not applied
(:class:`~mongoelector.errors.BackendUnavailable`: no server was selected,
the server refused before starting, the server said no writes were performed,
or it rejected the command) or may have been applied
(:class:`~mongoelector.errors.AmbiguousOutcome`: the connection broke or timed
out after sending, the operation was interrupted by a step-down or shutdown,
or the write concern was not satisfied). A failed *read* changed nothing, so
it is always ``BackendUnavailable``. A bulk write that reports errors
(``BulkWriteError``) ran its other statements, so it may have applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    NotPrimaryError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from mongoelector.errors import AmbiguousOutcome, BackendError, BackendUnavailable

__all__ = ["RetryPolicy", "classify", "driver_retries_writes", "is_transient"]

#: The server refused the operation before running it: it is not (or no longer) primary.
REFUSED_NOT_PRIMARY = frozenset(
    {
        10107,  # NotWritablePrimary
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        189,  # PrimarySteppedDown
        91,  # ShutdownInProgress
    }
)
#: The operation was running and was cut short, or its fate is unknown: it may have applied.
MAYBE_APPLIED = frozenset(
    {
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        50,  # MaxTimeMSExpired
        262,  # ExceededTimeLimit
        6,  # HostUnreachable (from a router, after forwarding)
        7,  # HostNotFound
        89,  # NetworkTimeout
        9001,  # SocketException
    }
)
#: Server error codes worth another attempt (the driver's retryable codes and the above).
TRANSIENT_CODES = (
    REFUSED_NOT_PRIMARY
    | (MAYBE_APPLIED - {50})
    | frozenset(
        {
            134,  # ReadConcernMajorityNotAvailableYet
            64,  # WriteConcernFailed
            462,  # IngressRequestRateLimitExceeded
        }
    )
)
_RETRY_LABELS = ("RetryableWriteError", "RetryableError", "TransientTransactionError")


def _code(error: PyMongoError) -> int | None:
    code = getattr(error, "code", None)
    if code is None:
        details = getattr(error, "details", None)
        code = details.get("code") if isinstance(details, Mapping) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def classify(
    error: PyMongoError, *, write: bool, what: str, driver_retries: bool = False
) -> BackendError:
    """Wrap ``error`` (raised by the operation described by ``what``) in our error type.

    A write failed *without* applying only when the server proves it. With
    ``driver_retries`` (pymongo's ``retryWrites``, on by default) the driver
    may have sent the write once already, lost that connection after the
    server applied it, and retried; the retry's refusal (not primary) then says
    nothing about the first send, so it is ambiguous too.
    """
    message = f"{what} failed: {type(error).__name__}: {error}"
    if not write:
        return BackendUnavailable(message, original=error)
    if isinstance(error, BulkWriteError):
        # Some statements of an unordered batch may have applied around the failed ones.
        return AmbiguousOutcome(message, original=error)
    code = _code(error)
    if isinstance(error, ServerSelectionTimeoutError) or error.has_error_label("NoWritesPerformed"):
        return BackendUnavailable(message, original=error)
    if isinstance(error, WriteConcernError) or code in MAYBE_APPLIED:
        # A write-concern error comes after the write ran, whatever its code says
        # (91 or 189 there mean the primary went away while waiting for replication).
        return AmbiguousOutcome(message, original=error)
    if code in REFUSED_NOT_PRIMARY or isinstance(error, NotPrimaryError):
        if driver_retries:
            return AmbiguousOutcome(
                f"{message} (the driver may have sent it before: retryWrites)", original=error
            )
        return BackendUnavailable(message, original=error)
    if isinstance(error, (ExecutionTimeout, ConnectionFailure)):
        return AmbiguousOutcome(message, original=error)
    # Any other server error (a rejected command, a failed validation) or a
    # client-side refusal (closed client, bad configuration): nothing applied.
    return BackendUnavailable(message, original=error)


def driver_retries_writes(collection: object) -> bool:
    """True if the pymongo client behind ``collection`` retries writes itself (``retryWrites``).

    Unknown (a client without pymongo's options, such as mongomock's) counts as
    ``False``: such a client sends each write once.
    """
    client = getattr(getattr(collection, "database", None), "client", None)
    options = getattr(client, "options", None)
    return getattr(options, "retry_writes", False) is True


def is_transient(error: PyMongoError) -> bool:
    """True if the same operation may well succeed if sent again soon."""
    if error.timeout:
        return False  # the operation's own time budget is spent
    if isinstance(error, ConnectionFailure):
        return True  # includes not-primary errors and server selection timeouts
    if isinstance(error, WriteConcernError):
        return True
    if any(error.has_error_label(label) for label in _RETRY_LABELS):
        return True
    return _code(error) in TRANSIENT_CODES


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries of transient failures within a time ``budget`` (seconds) per operation.

    The n-th retry waits ``min(max_delay, first_delay * 2**n)``; no retry starts
    if it would end after the budget, and at most ``max_attempts`` attempts are
    made in all.
    """

    budget: float = 5.0
    first_delay: float = 0.05
    max_delay: float = 1.0
    max_attempts: int = 6

    def __post_init__(self) -> None:
        for name in ("budget", "first_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be a positive int, got {self.max_attempts!r}")

    def delay_before_retry(self, attempts_made: int, elapsed: float) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up.

        ``attempts_made`` attempts have failed so far, ``elapsed`` seconds into
        the operation.
        """
        if attempts_made >= self.max_attempts:
            return None
        delay = min(float(self.max_delay), self.first_delay * 2.0 ** (attempts_made - 1))
        if elapsed + delay >= self.budget:
            return None
        return delay

    def remaining(self, elapsed: float) -> float:
        """Seconds of the budget left ``elapsed`` seconds into the operation (0 when spent)."""
        return max(0.0, self.budget - elapsed)
