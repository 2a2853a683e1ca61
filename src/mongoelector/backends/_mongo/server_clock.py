"""Server time, estimated from round trips that return the server's clock.

A sample is one round trip: the local monotonic time when the request left,
the server's wall time in the reply (``hello``'s ``localTime``, whole
milliseconds), and the local monotonic time when the reply arrived. The server
read its clock somewhere in between, so at the midpoint of the round trip the
server's time was the reported time (plus up to one millisecond of
truncation), give or take half the round trip. Later readings extrapolate with
the local monotonic clock, and the uncertainty grows with the allowed drift
rate. The estimator keeps whichever sample gives the tightest bound now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mongoelector._value import frozen_builder
from mongoelector.backends._mongo.documents import as_utc
from mongoelector.timing import DEFAULT_MAX_DRIFT

__all__ = [
    "ClockSample",
    "ServerClockEstimator",
    "ServerTimeEstimate",
    "host_clock_offset",
    "new_estimate",
]

#: Server clocks are reported in whole milliseconds, truncated.
RESOLUTION = 0.001


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSample:
    """One round trip that read the server's clock (local times are monotonic seconds)."""

    sent_at: float
    server_time: datetime
    received_at: float

    def __post_init__(self) -> None:
        if self.received_at < self.sent_at:
            raise ValueError(f"received_at={self.received_at!r} is before sent_at={self.sent_at!r}")
        object.__setattr__(self, "server_time", as_utc(self.server_time))

    @property
    def midpoint(self) -> float:
        return (self.sent_at + self.received_at) / 2

    def uncertainty_at(self, now: float, max_drift: float) -> float:
        """How far the extrapolated server time at local ``now`` may be off, in seconds."""
        half_round_trip = (self.received_at - self.sent_at) / 2
        return half_round_trip + RESOLUTION / 2 + max_drift * abs(now - self.midpoint)

    def extrapolate(self, now: float) -> datetime:
        """The server's time at local monotonic ``now``, by this sample."""
        seconds = RESOLUTION / 2 + (now - self.midpoint)
        return self.server_time + timedelta(0, seconds)  # (0, s): seconds=s, cheaper


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTimeEstimate:
    """Server time ``time`` (aware UTC), within ``uncertainty`` seconds either way."""

    time: datetime
    uncertainty: float


#: ``ServerTimeEstimate(time=..., uncertainty=...)`` built through the slots (positional).
new_estimate = frozen_builder(ServerTimeEstimate)


class ServerClockEstimator:
    """Estimates the server's time from :class:`ClockSample` round trips.

    ``max_drift`` bounds the rate error between the local monotonic clock and
    the server's clock; a sample older than ``max_age`` seconds is stale and
    should be refreshed.
    """

    def __init__(self, *, max_drift: float = DEFAULT_MAX_DRIFT, max_age: float = 60.0) -> None:
        if not 0 <= max_drift < 1:
            raise ValueError(f"max_drift must be in [0, 1), got {max_drift!r}")
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        self.max_drift = max_drift
        self.max_age = max_age
        self._best: ClockSample | None = None

    @property
    def sample(self) -> ClockSample | None:
        """The sample estimates are currently made from."""
        return self._best

    def add(self, sample: ClockSample) -> None:
        """Take ``sample`` into account; keep it if it bounds the time at least as tightly."""
        best = self._best
        now = sample.received_at
        if best is None or sample.uncertainty_at(now, self.max_drift) <= best.uncertainty_at(
            now, self.max_drift
        ):
            self._best = sample

    def is_stale(self, now: float) -> bool:
        """True if there is no sample, or the one in use is older than ``max_age``."""
        return self._best is None or now - self._best.received_at > self.max_age

    def estimate(self, now: float) -> ServerTimeEstimate | None:
        """The server's time at local monotonic ``now``, or ``None`` without a sample."""
        best = self._best
        if best is None:
            return None
        # ServerTimeEstimate(time=..., uncertainty=...), through the slots: every classic
        # acquire and every release asks for one.
        return new_estimate(best.extrapolate(now), best.uncertainty_at(now, self.max_drift))


def host_clock_offset(
    wall_before: datetime, server_time: datetime, wall_after: datetime
) -> tuple[float, float]:
    """How far the server's clock is ahead of this host's (seconds), and the uncertainty.

    ``wall_before`` and ``wall_after`` are this host's wall clock around the
    round trip that read ``server_time``.
    """
    before, after = as_utc(wall_before), as_utc(wall_after)
    if after < before:
        raise ValueError(f"wall_after={wall_after!r} is before wall_before={wall_before!r}")
    midpoint = before + (after - before) / 2
    offset = (as_utc(server_time) - midpoint).total_seconds() + RESOLUTION / 2
    return offset, (after - before).total_seconds() / 2 + RESOLUTION / 2
