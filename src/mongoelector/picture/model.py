"""What a leadership timeline picture shows, as plain data (no drawing here).

A :class:`Timeline` has one lane per node. On a lane, a :class:`Term` is one
leadership term (or lock holding): the interval in which the node believed it
held the key, with its fencing token, the renewals it made, when its renew
deadline fell (if it ended that way) and how long the store kept the lease
afterwards. A :class:`Span` is a fault that lasted a while (a pause, a cut-off
link, a crash until restart); a :class:`Marker` is a moment (a resignation, a
violation). All times are seconds from the start of the run.

The simulation (:mod:`mongoelector.testing.simulation.picture`) and the demo
(:mod:`mongoelector.demo`) build timelines; :func:`mongoelector.picture.render_svg`
draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "MARKER_KINDS", "Marker", "Span", "Term", "Timeline"]

#: The kinds of :class:`Span` the renderer knows how to draw.
FAULT_KINDS = ("paused", "cut off", "store errors", "down")
#: The kinds of :class:`Marker` the renderer knows how to draw.
MARKER_KINDS = ("crash", "stop", "resign", "event", "violation")


def _check_time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Term:
    """``lane`` held ``key`` with fencing ``token`` during ``[start, end)``.

    ``renewals`` are the times of its successful renewals. ``renew_deadline``
    is set when the term ended because that deadline passed (the holder could
    not renew in time). ``lease_end`` is when the store stopped holding the
    lease for this term (expiry, release or takeover): after ``end`` when the
    holder stopped believing before the store let go.
    """

    lane: str
    token: int
    start: float
    end: float
    key: str = ""
    renewals: tuple[float, ...] = ()
    renew_deadline: float | None = None
    lease_end: float | None = None

    def __post_init__(self) -> None:
        _check_text(self.lane, "lane")
        _check_text(self.key, "key")
        if isinstance(self.token, bool) or not isinstance(self.token, int):
            raise TypeError(f"token must be an int, got {self.token!r}")
        start = _check_time(self.start, "start")
        if _check_time(self.end, "end") < start:
            raise ValueError(f"end must not come before start, got {self.start!r}..{self.end!r}")
        for renewal in self.renewals:
            _check_time(renewal, "renewals")
        if self.renew_deadline is not None:
            _check_time(self.renew_deadline, "renew_deadline")
        if self.lease_end is not None:
            _check_time(self.lease_end, "lease_end")


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """A fault of ``kind`` (one of :data:`FAULT_KINDS`) on ``lane`` during ``[start, end)``."""

    lane: str
    kind: str
    start: float
    end: float
    label: str = ""

    def __post_init__(self) -> None:
        _check_text(self.lane, "lane")
        _check_text(self.label, "label")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS!r}, got {self.kind!r}")
        start = _check_time(self.start, "start")
        if _check_time(self.end, "end") < start:
            raise ValueError(f"end must not come before start, got {self.start!r}..{self.end!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Marker:
    """A moment of ``kind`` (one of :data:`MARKER_KINDS`) at ``at``.

    ``lane`` is the node it happened to, or ``None`` for the whole run.
    """

    kind: str
    at: float
    lane: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in MARKER_KINDS:
            raise ValueError(f"kind must be one of {MARKER_KINDS!r}, got {self.kind!r}")
        _check_time(self.at, "at")
        if self.lane is not None:
            _check_text(self.lane, "lane")
        _check_text(self.label, "label")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """A whole picture: lanes top to bottom, and what happened on them in ``[0, end]``.

    ``ttl`` and ``renew_deadline`` (seconds) are shown in the caption when given.
    Every term, span and marker must name a lane in ``lanes`` (a marker may
    have none).
    """

    title: str
    lanes: tuple[str, ...]
    end: float
    terms: tuple[Term, ...] = ()
    spans: tuple[Span, ...] = ()
    markers: tuple[Marker, ...] = ()
    subtitle: str = ""
    ttl: float | None = None
    renew_deadline: float | None = None

    def __post_init__(self) -> None:
        _check_text(self.title, "title")
        _check_text(self.subtitle, "subtitle")
        if not self.lanes:
            raise ValueError("a timeline needs at least one lane")
        if len(set(self.lanes)) != len(self.lanes):
            raise ValueError(f"lane names must be unique, got {self.lanes!r}")
        if _check_time(self.end, "end") <= 0:
            raise ValueError(f"end must be positive, got {self.end!r}")
        known = set(self.lanes)
        items: tuple[Term | Span | Marker, ...] = (*self.terms, *self.spans, *self.markers)
        for item in items:
            if item.lane is not None and item.lane not in known:
                raise ValueError(f"{item!r} names a lane not in lanes {self.lanes!r}")
