"""A holder's view of its own lease: when to renew it, and when to stop trusting it.

Both the elector (while it leads) and a lock (while it auto-renews) keep their
holding with a :class:`LeaseKeeper`, so the renew rules exist once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mongoelector.backends.protocol import LeaseRecord

__all__ = ["Holding", "LeaseKeeper"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """A lease this node holds, as of its last successful acquire or renew.

    ``started_at`` is the local monotonic time at which that request was sent;
    the holding is trusted until ``valid_until`` (= ``started_at`` + renew
    deadline), whatever the store says afterwards.
    """

    record: LeaseRecord
    started_at: float
    valid_until: float

    @property
    def token(self) -> int:
        return self.record.token

    def is_valid(self, now: float) -> bool:
        """True while this holding may be acted on (local monotonic ``now``)."""
        return now < self.valid_until

    def remaining(self, now: float) -> float:
        """Seconds left before this holding stops being trusted (0 when past)."""
        return max(0.0, self.valid_until - now)


class LeaseKeeper:
    """Keeps one holding: schedules renewals, and drops the holding at its deadline.

    ``renew_deadline`` bounds the trust placed in each successful write;
    ``renew_interval`` is the pause between renewals and between retries.
    """

    def __init__(self, *, renew_deadline: float, renew_interval: float) -> None:
        self.renew_deadline = renew_deadline
        self.renew_interval = renew_interval
        self.holding: Holding | None = None
        self._next_renew = math.inf

    def hold(self, record: LeaseRecord, started_at: float) -> Holding:
        """Start keeping ``record``, written by a request sent at ``started_at``."""
        self.holding = Holding(
            record=record, started_at=started_at, valid_until=started_at + self.renew_deadline
        )
        self._next_renew = started_at + self.renew_interval
        return self.holding

    def is_valid(self, now: float) -> bool:
        return self.holding is not None and self.holding.is_valid(now)

    def deadline_passed(self, now: float) -> bool:
        """True if a holding is kept but may no longer be trusted."""
        return self.holding is not None and not self.holding.is_valid(now)

    def renew_due(self, now: float) -> bool:
        return self.holding is not None and now >= self._next_renew

    def on_renewed(self, started_at: float, record: LeaseRecord | None) -> bool:
        """Record a renew sent at ``started_at``; ``False`` (and dropped) if refused."""
        if self.holding is None:
            return False
        if record is None or record.token != self.holding.token:
            self.holding = None
            self._next_renew = math.inf
            return False
        # Trust only moves forward: a slow reply to an older request cannot shorten it.
        valid_until = max(self.holding.valid_until, started_at + self.renew_deadline)
        self.holding = replace(self.holding, record=record, valid_until=valid_until)
        self._next_renew = started_at + self.renew_interval
        return True

    def on_renew_failed(self, now: float) -> None:
        """A renew failed without a verdict; retry after ``renew_interval``."""
        if self.holding is not None:
            self._next_renew = now + self.renew_interval

    def drop(self) -> Holding | None:
        """Stop keeping the holding and return it."""
        holding, self.holding = self.holding, None
        self._next_renew = math.inf
        return holding

    def wake_at(self) -> float:
        """When the driver must next act for this holding (``inf`` if none)."""
        if self.holding is None:
            return math.inf
        return min(self._next_renew, self.holding.valid_until)
