"""``MongoLeaderElector``: the mongoelector 1.x election API, as a 2.x ``LeaderElector`` on MongoDB.

Drop-in for 1.x: same constructor, defaults, callbacks, methods and properties,
the lease in ``elector.locks`` and status reports in ``elector.leader_status``
in the 1.x layouts. On top, the 2.x guarantees: a leader steps down (and fires
``on_leader_loss``) at its renew deadline even when the store is unreachable,
fencing tokens, and ``on_new_leader``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mongoelector._sync.elector import LeaderElector
from mongoelector._validation import check_key
from mongoelector.backends._mongo.validation import check_database, check_positive_ttl
from mongoelector.clock import Clock
from mongoelector.core.events import LeaderInfo
from mongoelector.errors import AcquireTimeout, LockExists, TimeOffsetError
from mongoelector.locker import MongoLocker, call_budget
from mongoelector.timing import LeaseTiming

__all__ = [
    "LOCK_COLLECTION",
    "STATUS_COLLECTION",
    "AcquireTimeout",
    "LockExists",
    "MongoLeaderElector",
    "TimeOffsetError",
]

#: Where 1.x electors keep their leases.
LOCK_COLLECTION = "elector.locks"
#: Where 1.x electors report their status.
STATUS_COLLECTION = "elector.leader_status"


class MongoLeaderElector(LeaderElector):
    """Elects one leader among all electors of ``key`` on ``db`` (a pymongo ``Database``).

    ``mlock`` is the elector's lock: a :class:`~mongoelector.locker.MongoLocker`
    acting as this elector in the store, so ``mlock.owned()`` tells whether the
    store has this elector as leader. ``poll_wait`` is the real pause between
    polls (the 2.x ``retry_period``, for leaders and followers alike).

    Before trying to become leader, the elector checks the clock like 1.x
    (``mlock._verifytime()``, unless ``timeparanoid=False``); a failed check
    keeps it a follower until the next poll. 2.x keyword arguments
    (``renew_deadline``, ``retry_period``, ``on_new_leader``, ``clock``, ...)
    are passed on to :class:`~mongoelector.LeaderElector`.
    """

    def __init__(
        self,
        key: str,
        db: Any,
        *,
        ttl: float = 15,
        on_leader: Callable[[], Any] | None = None,
        on_leader_loss: Callable[[], Any] | None = None,
        on_loop: Callable[[], Any] | None = None,
        app_version: str | None = None,
        report_status: bool = True,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        on_new_leader: Callable[[LeaderInfo], Any] | None = None,
        clock: Clock | None = None,
        timeparanoid: bool = True,
        maxoffset: float = 0.5,
        **kwargs: Any,
    ) -> None:
        check_database(db)
        check_key(key)
        seconds = check_positive_ttl(ttl)
        timing = LeaseTiming.for_ttl(
            seconds, renew_deadline=renew_deadline, retry_period=retry_period
        )
        from mongoelector.backends.mongo import MongoBackend  # noqa: PLC0415 - on first use

        backend = MongoBackend(
            db,
            LOCK_COLLECTION,
            status_collection=STATUS_COLLECTION,
            clock=clock,
            timeout=call_budget(timing),
            acquire_check=self._check_time,
        )
        super().__init__(
            key,
            backend,
            ttl=seconds,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            clock=clock,
            on_leader=on_leader,
            on_leader_loss=on_leader_loss,
            on_loop=on_loop,
            on_new_leader=on_new_leader,
            app_version=app_version,
            report_status=report_status,
            **kwargs,
        )
        self._db = db
        self.mlock = MongoLocker._for_owner(
            self.uuid,
            self.key,
            backend,
            db=db,
            ttl=seconds,
            clock=clock,
            timeparanoid=timeparanoid,
            maxoffset=maxoffset,
        )

    def _check_time(self) -> None:
        """Run before each attempt to become leader: the 1.x clock check, if enabled."""
        if self.mlock.timeparanoid:
            self.mlock._verifytime()

    @property
    def db(self) -> Any:
        """The database given as ``db``."""
        return self._db

    def stop(self) -> None:
        """As :meth:`LeaderElector.stop`, then, like 1.x's ``stop()`` (which joined the
        elector's thread, so its callbacks had run), wait until this elector's callbacks
        that were due (``on_leader``, then ``on_leader_loss``) have run, for at most one
        poll interval (``poll_wait``): a callback that blocks longer delays ``stop()`` by
        that, never for ever. From one of this elector's own callbacks it waits for none.
        """
        super().stop()
        if not self._queue.runs_in(threading.current_thread()):
            self.wait_idle(self.poll_wait)

    def __enter__(self) -> MongoLeaderElector:
        super().__enter__()
        return self

    def __repr__(self) -> str:
        role = "leader" if self.is_leader else "follower"
        state = "running" if self.running else "stopped"
        return (
            f"MongoLeaderElector(key={self.key!r}, {role}, {state}, uuid={self.uuid!r}, "
            f"token={self.token!r})"
        )
