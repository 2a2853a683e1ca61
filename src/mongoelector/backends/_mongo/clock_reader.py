"""Reading the server's clock: when to ask, and what to make of each reply (as plans).

One :class:`ServerClock` per backend keeps the best reading so far (see
:mod:`.server_clock` for the estimate itself) and says when a new ``hello``
round trip is needed. Its methods are plans (:mod:`.plans`), run by the
backend's shell.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mongoelector.backends._mongo.failures import RetryPolicy
from mongoelector.backends._mongo.plans import Hello, Plan, with_retries
from mongoelector.backends._mongo.server_clock import (
    ClockSample,
    ServerClockEstimator,
    ServerTimeEstimate,
    host_clock_offset,
    new_estimate,
)
from mongoelector.clock import Clock
from mongoelector.errors import BackendUnavailable

__all__ = ["ServerClock"]

_WHAT = "reading the server's clock"


def _local_time(reply: Mapping[str, Any] | None) -> datetime | None:
    local_time = reply.get("localTime") if reply is not None else None
    return local_time if isinstance(local_time, datetime) else None


class ServerClock:
    """The server's time, read with ``hello`` and extrapolated between readings.

    Until :meth:`read` has run, nothing is known; where the server cannot tell
    its time (:attr:`tells_time` false), ``clock`` stands in for it. Safe to
    share between threads and tasks.
    """

    def __init__(self, clock: Clock, policy: RetryPolicy, max_drift: float) -> None:
        self._clock = clock
        self._policy = policy
        self._estimator = ServerClockEstimator(max_drift=max_drift)
        self._mutex = threading.Lock()
        self.tells_time: bool | None = None

    def _sample(self) -> Plan[tuple[Mapping[str, Any] | None, ClockSample | None]]:
        sent_at = self._clock.monotonic()
        reply: Mapping[str, Any] | None = yield Hello()
        received_at = self._clock.monotonic()
        local_time = _local_time(reply)
        if local_time is None:
            return reply, None
        return reply, ClockSample(sent_at=sent_at, server_time=local_time, received_at=received_at)

    def read(self, started: float | None = None) -> Plan[Mapping[str, Any] | None]:
        """Ask the server (one ``hello``, retried); return its reply, keep its clock reading.

        With ``started`` (monotonic), the retries have what is left of a budget
        that began then: the read is part of a call begun at ``started``.
        """
        reply, sample = yield from with_retries(
            self._clock, self._policy, _WHAT, self._sample, write=False, started=started
        )
        with self._mutex:
            if sample is not None:
                self._estimator.add(sample)
            # A reply without the server's clock never replaces a reading already
            # made: estimates go on from it, their uncertainty growing with its age.
            self.tells_time = self._estimator.sample is not None
        return reply

    def current(self) -> ServerTimeEstimate | None:
        """The estimate :meth:`estimate` would return when it needs no round trip, else
        ``None`` (without a plan: this runs for every store call on the classic path)."""
        if not self.tells_time:
            return new_estimate(self._clock.now(), 0.0)
        with self._mutex:
            now = self._clock.monotonic()
            if self._estimator.is_stale(now):
                return None
            return self._estimator.estimate(now)

    def estimate(self, started: float | None = None) -> Plan[ServerTimeEstimate]:
        """The server's time now, within the returned uncertainty; reads again when stale
        (within the budget of a call begun at ``started``, if given: see :meth:`read`)."""
        known = self.current()
        if known is not None:
            return known
        try:
            yield from self.read(started)
        except BackendUnavailable:
            if self._estimator.sample is None:
                raise  # an old reading is better than none; no reading is nothing
        with self._mutex:
            estimate = self._estimator.estimate(self._clock.monotonic())
        assert estimate is not None
        return estimate

    def host_offset(self) -> Plan[tuple[float, float] | None]:
        """How far the server's clock is ahead of this host's wall clock, and the uncertainty.

        ``None`` if the server cannot tell its time. Always a fresh round trip.
        """

        def attempt() -> Plan[tuple[float, float] | None]:
            before = self._clock.now()
            local_time = _local_time((yield Hello()))
            after = self._clock.now()
            return None if local_time is None else host_clock_offset(before, local_time, after)

        return (yield from with_retries(self._clock, self._policy, _WHAT, attempt, write=False))
