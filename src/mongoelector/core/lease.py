"""A holder's view of its own lease: when to renew it, and when to stop trusting it.

Both the elector (while it leads) and a lock (while it auto-renews) keep their
holding with a :class:`LeaseKeeper`, so the renew rules exist once.

The keeper also learns how long the store takes to answer. It plans for the
longest of the last :data:`ROUND_TRIP_WINDOW` round trips it was told about,
plus half of that again (:data:`ROUND_TRIP_MARGIN`): its *renew lead*. A
renewal (or the retry of a failed one) is sent early enough that a reply
taking that long still arrives before the renew deadline, even when that means
renewing sooner than ``renew_interval`` after the last one.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, replace

from mongoelector._value import frozen_builder
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.core.events import SlowRoundTrips

__all__ = ["ROUND_TRIP_MARGIN", "ROUND_TRIP_WINDOW", "Holding", "LeaseKeeper", "new_holding"]

#: How many recent round trips a keeper remembers; it plans for the longest of them.
ROUND_TRIP_WINDOW = 32
#: Time kept in hand before the renew deadline, as a fraction of that longest round trip.
ROUND_TRIP_MARGIN = 0.5
#: A keeper numbers its round trips modulo this (more than the window; a small int object
#: shared by the process, not one of its own per keeper).
_NUMBERS = 256


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


_check_builder = frozen_builder(Holding)  # refuses Holding if it could not be built so
_new = object.__new__
_set_record = vars(Holding)["record"].__set__
_set_started_at = vars(Holding)["started_at"].__set__
_set_valid_until = vars(Holding)["valid_until"].__set__


def new_holding(record: LeaseRecord, started_at: float, valid_until: float) -> Holding:
    """``Holding(record=..., started_at=..., valid_until=...)``, built through the slots (the
    values are the machines' own: a record a store returned, two monotonic times)."""
    holding: Holding = _new(Holding)
    _set_record(holding, record)
    _set_started_at(holding, started_at)
    _set_valid_until(holding, valid_until)
    return holding


class LeaseKeeper:
    """Keeps one holding: schedules renewals, and drops the holding at its deadline.

    ``renew_deadline`` bounds the trust placed in each successful write;
    ``renew_interval`` is the pause between renewals and between retries,
    shortened when needed so that a renewal sent :attr:`renew_lead` seconds
    before the deadline is answered in time (see :meth:`observe_round_trip`).
    Round trips observed are kept across holdings: they describe the store.
    """

    __slots__ = (  # one per lock and elector
        "_longest_round_trip",
        "_next_renew",
        "_observed",
        "_round_trips",
        "_slow",
        "holding",
        "renew_deadline",
        "renew_interval",
    )

    def __init__(self, *, renew_deadline: float, renew_interval: float) -> None:
        self.renew_deadline = renew_deadline
        self.renew_interval = renew_interval
        self.holding: Holding | None = None
        self._next_renew = math.inf
        # Those of the last ROUND_TRIP_WINDOW round trips that may yet be the longest of the
        # window, oldest first, each longer than every later one (a later one as long
        # outlives it in the window): pairs (its number, its seconds), doubles in place.
        # Steady round trips keep one pair, not the whole window: a process may keep
        # thousands of keepers.
        self._round_trips = array("d")
        self._observed = 0  # the number of the latest round trip (modulo _NUMBERS)
        self._longest_round_trip = 0.0  # the first kept, the longest of the window
        self._slow = False

    # --- round trips ----------------------------------------------------------------

    @property
    def expected_round_trip(self) -> float:
        """The longest of the last :data:`ROUND_TRIP_WINDOW` observed round trips (0 if none)."""
        return self._longest_round_trip

    @property
    def renew_lead(self) -> float:
        """How long before the renew deadline a renewal must be sent at the latest.

        ``expected_round_trip * (1 + ROUND_TRIP_MARGIN)``; 0 until a round trip is observed.
        """
        return self.expected_round_trip * (1 + ROUND_TRIP_MARGIN)

    @property
    def slow(self) -> bool:
        """True while the renew lead exceeds ``renew_deadline - renew_interval``.

        Renewals then go out sooner than ``renew_interval`` after the last one,
        and a failed renewal gets less than one ``renew_interval`` to be retried.
        """
        return self._slow

    def observe_round_trip(self, seconds: float) -> SlowRoundTrips | None:
        """Learn that a store call was answered ``seconds`` after it was sent.

        Feed every reply (a grant, a refusal, a record), not calls that
        failed. Returns a :class:`SlowRoundTrips` when :attr:`slow` changes:
        once when observed round trips start leaving the settings no margin,
        once (``cleared``) when they stop; ``None`` otherwise.
        """
        seconds = seconds if seconds > 0.0 else 0.0
        trips = self._round_trips
        number = self._observed = (self._observed + 1) % _NUMBERS
        # Those kept that are no longer than this one are never again the longest (this
        # one stays in the window longer): it takes the place of the first of them, in
        # place (no reallocation for steady round trips).
        end = len(trips)
        while end and trips[end - 1] <= seconds:
            end -= 2
        if end < len(trips):
            trips[end] = number
            trips[end + 1] = seconds
            del trips[end + 2 :]
        else:
            trips.append(number)
            trips.append(seconds)
        if (number - trips[0]) % _NUMBERS >= ROUND_TRIP_WINDOW:
            del trips[:2]  # the first kept one left the window (the next kept is in it)
        self._longest_round_trip = trips[1]
        slow = self.renew_lead > self.renew_deadline - self.renew_interval
        if slow == self._slow:
            return None
        self._slow = slow
        return SlowRoundTrips(
            round_trip=self.expected_round_trip,
            renew_deadline=self.renew_deadline,
            retry_period=self.renew_interval,
            cleared=not slow,
        )

    def _last_call(self) -> float:
        """The latest time a renewal may be sent and, by the round trips seen, answered in time."""
        assert self.holding is not None
        return self.holding.valid_until - self.renew_lead

    # --- the holding ------------------------------------------------------------------

    def hold(self, record: LeaseRecord, started_at: float) -> Holding:
        """Start keeping ``record``, written by a request sent at ``started_at``."""
        return self.adopt(new_holding(record, started_at, started_at + self.renew_deadline))

    def adopt(self, holding: Holding) -> Holding:
        """Start keeping ``holding`` (as :meth:`hold` of its record and ``started_at``).

        It is kept as it is only if it is trusted exactly ``renew_deadline``
        from ``started_at``, as :meth:`hold` would make it; otherwise :meth:`hold`
        makes that holding.
        """
        if holding.valid_until != holding.started_at + self.renew_deadline:
            return self.hold(holding.record, holding.started_at)
        self.holding = holding
        self._next_renew = min(holding.started_at + self.renew_interval, self._last_call())
        return holding

    def is_valid(self, now: float) -> bool:
        return self.holding is not None and self.holding.is_valid(now)

    def deadline_passed(self, now: float) -> bool:
        """True if a holding is kept but may no longer be trusted."""
        return self.holding is not None and not self.holding.is_valid(now)

    def renew_due(self, now: float) -> bool:
        return self.holding is not None and now >= self._next_renew

    @property
    def next_renew(self) -> float:
        """When the next renewal (or retry) falls due (``inf`` while no holding is kept)."""
        return self._next_renew

    def on_renewed(self, started_at: float, record: LeaseRecord | None) -> bool:
        """Record a renew sent at ``started_at``; ``False`` (and dropped) if refused.

        The next renewal is due ``renew_interval`` after ``started_at``, or
        :attr:`renew_lead` before the new deadline if that comes first (at
        once, if that time has passed).
        """
        if self.holding is None:
            return False
        if record is None or record.token != self.holding.token:
            self.holding = None
            self._next_renew = math.inf
            return False
        # Trust only moves forward: a slow reply to an older request cannot shorten it.
        valid_until = max(self.holding.valid_until, started_at + self.renew_deadline)
        self.holding = replace(self.holding, record=record, valid_until=valid_until)
        self._next_renew = min(started_at + self.renew_interval, self._last_call())
        return True

    def on_renew_failed(self, now: float) -> None:
        """A renew failed without a verdict; retry after ``renew_interval``.

        Sooner if the retry would otherwise go out too late to be answered
        before the deadline: then at :attr:`renew_lead` before it, provided
        that time is still ahead of ``now`` (never at once, so calls that fail
        instantly cannot loop).
        """
        if self.holding is None:
            return
        retry = now + self.renew_interval
        last_call = self._last_call()
        self._next_renew = last_call if now < last_call < retry else retry

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
