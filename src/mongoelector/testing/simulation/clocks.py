"""Per-node clocks derived from one true timeline, with skew and a drifting rate.

A :class:`NodeClock` reads a base clock (the simulation's true time, a
:class:`~mongoelector.testing.FakeClock`) and reports it as one machine would:
its monotonic clock starts at an arbitrary ``origin`` and runs at ``rate``
local seconds per true second; its wall clock is off by ``skew`` seconds and
drifts with the same rate. Both are pure functions of true time, so the
simulation can convert a node's monotonic deadline back to the true instant
at which the node reaches it (:func:`first_tick_reaching`).

Drift bound: a clock is within drift ``d`` when ``1/(1+d) <= rate <= 1+d``,
that is, an interval of true length ``T`` measures between ``T/(1+d)`` and
``T*(1+d)`` on it. That is the reading of ``max_drift`` under which
:class:`~mongoelector.timing.LeaseTiming`'s inequality
``renew_deadline * (1 + max_drift) + time_uncertainty < ttl`` is exact: a node
that measures ``renew_deadline`` has let at most ``renew_deadline * (1+d)``
true seconds pass.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from mongoelector._validation import check_non_negative_seconds
from mongoelector.clock import Clock

__all__ = ["NodeClock", "first_tick_reaching", "rate_bounds"]

_NANOS = 1_000_000_000


def rate_bounds(max_drift: float) -> tuple[float, float]:
    """The slowest and fastest clock rate allowed by drift bound ``max_drift``."""
    max_drift = check_non_negative_seconds(max_drift, name="max_drift")
    return 1 / (1 + max_drift), 1 + max_drift


class NodeClock:
    """One node's view of the base clock: ``origin + rate * elapsed`` (monotonic).

    ``monotonic()`` is ``origin + rate * (base.monotonic() - base_at_start)``;
    ``now()`` is the base wall time at start, plus ``skew``, plus the elapsed
    time as this clock measures it. ``sleep`` lets the matching amount of base
    time pass through ``sleeper`` (by default ``base.sleep``) and
    ``wait_until`` waits on the base clock for the matching base deadline, so
    the clock also works outside a simulation, e.g. for a threaded test.
    """

    def __init__(
        self,
        base: Clock,
        *,
        rate: float = 1.0,
        origin: float = 0.0,
        skew: float = 0.0,
        sleeper: Callable[[float], None] | None = None,
    ) -> None:
        for name, value in (("rate", rate), ("origin", origin), ("skew", skew)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self._base = base
        self.rate = float(rate)
        self.origin = float(origin)
        self.skew = float(skew)
        self._base_start = base.monotonic()
        self._wall_start = base.now() + timedelta(seconds=skew)
        self._sleeper = sleeper if sleeper is not None else base.sleep

    # --- the conversions ---------------------------------------------------------

    def reading_at(self, base_monotonic: float) -> float:
        """This clock's monotonic reading when the base clock reads ``base_monotonic``."""
        return self.origin + self.rate * (base_monotonic - self._base_start)

    def base_time_for(self, reading: float) -> float:
        """The base monotonic time at which this clock reads ``reading`` (up to rounding)."""
        return self._base_start + (reading - self.origin) / self.rate

    # --- the Clock protocol ------------------------------------------------------

    def monotonic(self) -> float:
        return self.reading_at(self._base.monotonic())

    def now(self) -> datetime:
        elapsed = self.monotonic() - self.origin
        return self._wall_start + timedelta(seconds=elapsed)

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock's time pass (``seconds / rate`` of base time)."""
        if seconds > 0:
            self._sleeper(seconds / self.rate)

    def wait_until(self, deadline: float, wakeup: threading.Event) -> bool:
        """Wait on the base clock until this clock reads ``deadline``, or ``wakeup`` is set."""
        return self._base.wait_until(self.base_time_for(deadline), wakeup)

    def __repr__(self) -> str:
        return f"NodeClock(rate={self.rate!r}, origin={self.origin!r}, skew={self.skew!r})"


def first_tick_reaching(clock: NodeClock, reading: float, *, tick_ns: int = 1000) -> int:
    """The first base time, counted in ticks of ``tick_ns`` nanoseconds, at which
    ``clock.monotonic() >= reading``, for a base clock that counts whole
    nanoseconds as :class:`~mongoelector.testing.FakeClock` does
    (``monotonic = ns / 1e9``).

    Exact: the answer is checked with the same arithmetic ``monotonic()`` uses,
    so a node looking at its clock at that tick sees ``reading`` reached, and
    one tick earlier it does not.
    """
    if math.isinf(reading) or math.isnan(reading):
        raise ValueError(f"reading must be finite, got {reading!r}")

    def reached(ticks: int) -> bool:
        return clock.reading_at(ticks * tick_ns / _NANOS) >= reading

    ticks = math.ceil(clock.base_time_for(reading) * _NANOS / tick_ns)
    while not reached(ticks):
        ticks += 1
    while reached(ticks - 1):
        ticks -= 1
    return ticks
