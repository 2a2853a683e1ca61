"""``MongoLocker``: the mongoelector 1.x lock API, as a 2.x :class:`~mongoelector.Lock` on MongoDB.

Drop-in for 1.x: same constructor, defaults, methods, properties, return
values and exceptions (importable from here as in 1.x), and the same document
layout in the same collection, so 1.x and 2.x nodes can share a lock during a
rolling upgrade. On top, everything a 2.x ``Lock`` has: a fencing
:attr:`~mongoelector.Lock.token`, a renew deadline, and server-judged expiry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mongoelector._sync.lock import Lock
from mongoelector._validation import check_key, check_non_negative_seconds
from mongoelector.backends._mongo.names import DEFAULT_COLLECTION
from mongoelector.backends._mongo.validation import (
    check_collection_name,
    check_database,
    check_positive_ttl,
)
from mongoelector.clock import Clock, SystemClock
from mongoelector.core import status as status_docs
from mongoelector.errors import AcquireTimeout, LockExists, TimeOffsetError
from mongoelector.timing import LeaseTiming

if TYPE_CHECKING:
    from mongoelector.backends.mongo import MongoBackend

__all__ = ["AcquireTimeout", "LockExists", "MongoLocker", "TimeOffsetError"]

#: How long a passed clock check is trusted before the next acquire checks again (as 1.x).
TIME_CHECK_INTERVAL = 600.0
#: The most a single backend call may take, retries included (less for short leases).
MAX_CALL_SECONDS = 5.0


def call_budget(timing: LeaseTiming) -> float:
    """Seconds one backend call may take: well inside the renew deadline."""
    return min(MAX_CALL_SECONDS, timing.renew_deadline / 2)


class MongoLocker(Lock):
    """A distributed lock on ``key`` in ``db[dbcollection]``, held for ``ttl`` seconds.

    ``db`` is a pymongo ``Database`` (a mongomock database works too); a
    ``MongoClient`` is a ``TypeError``. With ``timeparanoid``, :meth:`acquire`
    first checks that this host's clock is within ``maxoffset`` seconds of the
    server's (:class:`TimeOffsetError` if not; skipped where the server cannot
    tell its time). 2.x keyword arguments (``clock``, ``renew_deadline``, ...)
    are passed on to :class:`~mongoelector.Lock`.
    """

    def __init__(
        self,
        key: str,
        db: Any,
        *,
        dbcollection: str = DEFAULT_COLLECTION,
        ttl: float = 600,
        timeparanoid: bool = True,
        maxoffset: float = 0.5,
        clock: Clock | None = None,
        renew_deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        check_database(db)
        check_key(key)
        seconds = check_positive_ttl(ttl)
        check_collection_name(dbcollection, name="dbcollection")
        timing = LeaseTiming.for_ttl(seconds, renew_deadline=renew_deadline)
        from mongoelector.backends.mongo import MongoBackend  # noqa: PLC0415 - on first use

        backend = MongoBackend(
            db, dbcollection, status_collection=None, clock=clock, timeout=call_budget(timing)
        )
        super().__init__(
            key, backend, ttl=seconds, clock=clock, renew_deadline=renew_deadline, **kwargs
        )
        self._setup_compat(db, backend, timeparanoid, maxoffset)

    def _setup_compat(
        self, db: Any, backend: MongoBackend, timeparanoid: bool, maxoffset: float
    ) -> None:
        self._mongo = backend
        self._database = db
        self.timeparanoid = bool(timeparanoid)
        self._maxoffset = check_non_negative_seconds(maxoffset, name="maxoffset")
        #: Monotonic time of the last passed clock check (``None``: not checked yet).
        self._sanetime: float | None = None

    @classmethod
    def _for_owner(
        cls,
        owner: str,
        key: str,
        backend: MongoBackend,
        *,
        db: Any,
        ttl: float,
        clock: Clock | None,
        timeparanoid: bool,
        maxoffset: float,
    ) -> MongoLocker:
        """A locker that acts as ``owner`` (an elector's id) on ``backend``: the elector's lock."""
        locker = cls.__new__(cls)
        Lock.__init__(locker, key, backend, ttl=ttl, clock=clock)
        locker._uuid = owner  # the same owner id in the store as the elector
        locker._setup_compat(db, backend, timeparanoid, maxoffset)
        return locker

    # --- 1.x attributes -----------------------------------------------------------------

    @property
    def database(self) -> Any:
        """The database given as ``db``."""
        return self._database

    @property
    def collection(self) -> Any:
        """The lock collection."""
        return self._mongo.collection

    # --- clock check ----------------------------------------------------------------------

    def _verifytime(self) -> bool:
        """``True`` if this host's clock is within ``maxoffset`` of the server's.

        Raises :class:`TimeOffsetError` otherwise. A passed check is trusted
        for 10 minutes; where the server cannot tell its time (mongomock) the
        check is skipped. Tests may patch this method, as with 1.x.
        """
        now = self._clock.monotonic()
        if self._sanetime is not None and now - self._sanetime < TIME_CHECK_INTERVAL:
            return True
        measured = self._mongo.clock_offset()
        if measured is not None:
            offset, uncertainty = measured
            if abs(offset) > self._maxoffset:
                raise TimeOffsetError(
                    f"this host's clock is {-offset:+.3f} s off the MongoDB server's clock "
                    f"(measured to within {uncertainty:.3f} s), more than maxoffset="
                    f"{self._maxoffset!r}"
                )
        self._sanetime = now
        return True

    @staticmethod
    def _acquireretry(blocking: bool, start: datetime, timeout: float | None, count: int) -> bool:
        """1.x helper: may attempt number ``count`` (from 0) of an acquire started at ``start`` run?

        Kept for code written against 1.x; the 2.x acquire does not use it.
        """
        if not blocking and timeout:
            raise ValueError(f"blocking=False cannot be combined with timeout={timeout!r}")
        if not blocking:
            return count == 0
        if timeout is None:
            return True
        return SystemClock().now() - start <= timedelta(seconds=timeout)

    # --- the lock -------------------------------------------------------------------------

    def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        step: float = 0.25,
        force: bool = False,
    ) -> bool:
        """Take the lock and return ``True`` (see :meth:`mongoelector.Lock.acquire`).

        With ``timeparanoid``, checks the clock first (:meth:`_verifytime`).
        """
        if self.timeparanoid:
            self._verifytime()
        return super().acquire(blocking, timeout, step, force)

    def get_current(self) -> dict[str, Any] | None:
        """The live lock document (1.x layout plus ``token``), or ``None`` if nobody holds it."""
        record = self._backend.get(self._key)
        if record is None or not record.is_held(self._backend.server_time()):
            return None
        return status_docs.lock_document(record)

    def __enter__(self) -> MongoLocker:
        super().__enter__()
        return self

    def __repr__(self) -> str:
        self._check_fork()  # read first in a forked child: the child's own
        return (
            f"MongoLocker(key={self._key!r}, uuid={self._uuid!r}, host={self._host!r}, "
            f"token={self.token!r})"
        )
