"""Records a live run (threads, a real clock) into a :class:`~mongoelector.picture.Timeline`.

Give each elector or lock the event listener of its lane
(``event_listeners=[recorder.listener("node-1")]``), and tell the recorder
when faults begin; or tell it everything by hand, from any thread: when a
node wrote its lease (acquire or renew, with the call's start and end), when
it gained and lost leadership, when it released. It keeps times by
``clock.monotonic()`` from its creation. :meth:`LiveRecorder.timeline` turns
the record into a picture: a term's renew deadline is shown when it ended no
earlier than ``renew_deadline`` after the start of its last write, and its
lease runs until ``ttl`` after the end of that write, or until it was released.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mongoelector.clock import Clock
from mongoelector.core.events import LossReason
from mongoelector.monitoring import (
    EventListener,
    LeadershipGainedEvent,
    LeadershipLostEvent,
    RenewedEvent,
)
from mongoelector.picture.model import Marker, Span, Term, Timeline

__all__ = ["LiveRecorder"]

#: A term that ended this close to (or after) its renew deadline ended because of it: the
#: recorder times a write from a little after the holder started it.
_DEADLINE_SLACK = 0.05
#: Room left after the last moment recorded, as a share of the run.
_END_MARGIN = 0.03


@dataclass(slots=True)
class _Term:
    lane: str
    token: int
    start: float
    writes: list[tuple[float, float]] = field(default_factory=list)
    end: float | None = None
    released_at: float | None = None


class LiveRecorder:
    """A thread-safe log of one run's terms, writes and faults on ``lanes``.

    ``ttl`` and ``renew_deadline`` are the lease settings every node used.
    """

    def __init__(
        self, clock: Clock, lanes: list[str], *, ttl: float, renew_deadline: float
    ) -> None:
        self._clock = clock
        self._origin = clock.monotonic()
        self._lanes = tuple(lanes)
        self._ttl = ttl
        self._renew_deadline = renew_deadline
        self._mutex = threading.Lock()
        self._terms: list[_Term] = []
        self._open: dict[str, _Term] = {}
        self._writes: dict[str, list[tuple[float, float]]] = {}
        self._spans: list[tuple[str, str, float, str]] = []
        self._markers: list[Marker] = []

    def now(self) -> float:
        """Seconds since the recorder was made, by its clock."""
        return self._clock.monotonic() - self._origin

    def listener(self, lane: str) -> EventListener:
        """An event listener that records one elector's or lock's terms on ``lane``."""
        if lane not in self._lanes:
            raise ValueError(f"lane must be one of {self._lanes!r}, got {lane!r}")
        return _LaneListener(self, lane)

    def wrote(self, lane: str, started: float, ended: float) -> None:
        """``lane`` wrote its lease successfully in a call from ``started`` to ``ended``."""
        with self._mutex:
            term = self._open.get(lane)
            if term is not None:
                term.writes.append((started, ended))
            else:  # leadership is announced after the acquire returns
                self._writes.setdefault(lane, []).append((started, ended))

    def gained(self, lane: str, token: int) -> None:
        """``lane`` now believes it holds the lease with ``token``."""
        with self._mutex:
            term = _Term(lane=lane, token=token, start=self.now())
            term.writes = self._writes.pop(lane, [])[-1:]
            self._open[lane] = term
            self._terms.append(term)

    def lost(self, lane: str) -> None:
        """``lane`` no longer believes it holds the lease."""
        with self._mutex:
            term = self._open.pop(lane, None)
            if term is not None:
                term.end = self.now()

    def released(self, lane: str) -> None:
        """``lane`` released its lease in the store (its last term's lease ends now)."""
        with self._mutex:
            for term in reversed(self._terms):
                if term.lane == lane:
                    term.released_at = self.now()
                    return

    def fault(self, lane: str, kind: str, label: str = "") -> None:
        """A fault of ``kind`` (see :data:`~mongoelector.picture.FAULT_KINDS`) began on ``lane``;
        it lasts until the end of the run."""
        with self._mutex:
            self._spans.append((lane, kind, self.now(), label))

    def mark(self, lane: str, kind: str, label: str = "") -> None:
        """A moment of ``kind`` (see :data:`~mongoelector.picture.MARKER_KINDS`) on ``lane``."""
        with self._mutex:
            self._markers.append(Marker(kind=kind, at=self.now(), lane=lane, label=label))

    def _term(self, term: _Term, end: float) -> Term:
        stopped = term.end if term.end is not None else end
        last = term.writes[-1] if term.writes else (term.start, term.start)
        deadline = last[0] + self._renew_deadline
        lease_end = last[1] + self._ttl
        if term.released_at is not None:
            lease_end = min(lease_end, term.released_at)
        return Term(
            lane=term.lane,
            token=term.token,
            start=term.start,
            end=stopped,
            renewals=tuple(started for started, _ in term.writes[1:]),
            renew_deadline=(
                min(deadline, stopped)
                if term.end is not None and stopped >= deadline - _DEADLINE_SLACK
                else None
            ),
            lease_end=lease_end,
        )

    def timeline(self, title: str, subtitle: str = "") -> Timeline:
        """Everything recorded so far, as a picture ending now."""
        with self._mutex:
            end = self.now()
            terms = tuple(self._term(term, end) for term in self._terms)
            spans = tuple(
                Span(lane=lane, kind=kind, start=start, end=end, label=label)
                for lane, kind, start, label in self._spans
            )
            return Timeline(
                title=title,
                subtitle=subtitle,
                lanes=self._lanes,
                end=max(end * (1 + _END_MARGIN), 1e-3),
                terms=terms,
                spans=spans,
                markers=tuple(self._markers),
                ttl=self._ttl,
                renew_deadline=self._renew_deadline,
            )


class _LaneListener(EventListener):
    """Turns one elector's or lock's events into a :class:`LiveRecorder`'s record of a lane."""

    def __init__(self, recorder: LiveRecorder, lane: str) -> None:
        self._recorder = recorder
        self._lane = lane

    def leadership_gained(self, event: LeadershipGainedEvent) -> None:
        now = self._recorder.now()
        self._recorder.wrote(self._lane, now - event.latency, now)
        self._recorder.gained(self._lane, event.token)

    def renewed(self, event: RenewedEvent) -> None:
        now = self._recorder.now()
        self._recorder.wrote(self._lane, now - event.latency, now)

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self._recorder.lost(self._lane)
        if event.reason in (LossReason.RELEASED, LossReason.STOPPED):
            self._recorder.released(self._lane)
