"""Drive several electors on one fake clock, deterministically and without threads."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from mongoelector._sync.elector import LeaderElector
from mongoelector._validation import check_non_negative_seconds
from mongoelector.testing.fake_clock import FakeClock

__all__ = ["ElectorGroup"]

#: More polls than this at one instant means an elector is stuck in a loop.
MAX_POLLS_PER_INSTANT = 1000
_NANOSECOND = 1e-9


class ElectorGroup:
    """Electors sharing one :class:`FakeClock`, each polled when its next poll is due.

    :meth:`step` moves the clock to the earliest ``next_poll_at`` among the
    electors (never backwards) and calls :meth:`LeaderElector.poll` on every
    elector due then, in the order they were added. Everything, callbacks
    included, runs in the caller's thread, so a test sees the same sequence
    every time. Never :meth:`~LeaderElector.start` an elector of a group: the
    group is its loop.

    To simulate a crashed or frozen process, :meth:`remove` it (it is no
    longer polled; its ``is_leader`` still ends at its renew deadline).
    """

    def __init__(self, clock: FakeClock, electors: Iterable[LeaderElector] = ()) -> None:
        if not isinstance(clock, FakeClock):
            raise TypeError(f"clock must be a FakeClock, got {type(clock).__name__} {clock!r}")
        self._clock = clock
        self._electors: list[LeaderElector] = []
        self._instant = -math.inf
        self._polls_at_instant = 0
        for elector in electors:
            self.add(elector)

    @property
    def clock(self) -> FakeClock:
        return self._clock

    @property
    def electors(self) -> tuple[LeaderElector, ...]:
        """The electors polled by this group, in polling order."""
        return tuple(self._electors)

    def add(self, elector: LeaderElector) -> LeaderElector:
        """Poll ``elector`` from now on (after those already added); returns it."""
        if not isinstance(elector, LeaderElector):
            raise TypeError(f"expected a LeaderElector, got {type(elector).__name__} {elector!r}")
        if elector.clock is not self._clock:
            raise ValueError(f"{elector!r} does not use this group's clock {self._clock!r}")
        if elector in self._electors:
            raise ValueError(f"{elector!r} is already in this group")
        self._electors.append(elector)
        return elector

    def remove(self, elector: LeaderElector) -> None:
        """Stop polling ``elector`` (without calling its ``stop()``)."""
        try:
            self._electors.remove(elector)
        except ValueError:
            raise ValueError(f"{elector!r} is not in this group") from None

    def next_poll_at(self) -> float:
        """The earliest ``next_poll_at`` of the group (``inf`` when nobody will poll)."""
        return min((elector.next_poll_at for elector in self._electors), default=math.inf)

    def step(self) -> list[LeaderElector]:
        """Advance to the next due poll and poll every elector due; the electors polled."""
        due = self.next_poll_at()
        if due == math.inf:
            return []
        while self._clock.monotonic() < due:
            self._clock.advance(max(due - self._clock.monotonic(), _NANOSECOND))
        now = self._clock.monotonic()
        polled = [elector for elector in self._electors if elector.next_poll_at <= now]
        self._count(now, len(polled))
        for elector in polled:
            elector.poll()
        return polled

    def run_for(self, seconds: float) -> int:
        """Poll as due for ``seconds`` of clock time, ending exactly then; how many polls."""
        seconds = check_non_negative_seconds(seconds, name="seconds")
        end = self._clock.monotonic() + seconds
        polls = 0
        while self.next_poll_at() <= end:
            polls += len(self.step())
        remaining = end - self._clock.monotonic()
        if remaining > 0:
            self._clock.advance(remaining)
        return polls

    def run_until(self, condition: Callable[[], bool], *, timeout: float) -> bool:
        """Poll as due until ``condition()`` holds (checked after every step) or
        ``timeout`` seconds of clock time pass; whether it held."""
        timeout = check_non_negative_seconds(timeout, name="timeout")
        end = self._clock.monotonic() + timeout
        while not condition():
            if self.next_poll_at() > end:
                self._clock.advance(max(0.0, end - self._clock.monotonic()))
                return condition()
            self.step()
        return True

    def leaders(self) -> list[LeaderElector]:
        """The electors of the group that believe they lead now."""
        return [elector for elector in self._electors if elector.is_leader]

    @property
    def leader(self) -> LeaderElector | None:
        """The one elector that leads now, or ``None``; ``AssertionError`` if several do."""
        leaders = self.leaders()
        if len(leaders) > 1:
            raise AssertionError(f"{len(leaders)} electors believe they lead: {leaders!r}")
        return leaders[0] if leaders else None

    def _count(self, now: float, polls: int) -> None:
        if now != self._instant:
            self._instant, self._polls_at_instant = now, 0
        self._polls_at_instant += polls
        if self._polls_at_instant > MAX_POLLS_PER_INSTANT:
            raise RuntimeError(
                f"{self._polls_at_instant} polls at monotonic time {now!r}: "
                "an elector keeps asking to be polled at once"
            )

    def __repr__(self) -> str:
        return f"ElectorGroup(clock={self._clock!r}, electors={len(self._electors)})"
