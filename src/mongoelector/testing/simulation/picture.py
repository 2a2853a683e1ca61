"""A simulation run as a :class:`~mongoelector.picture.Timeline`, ready to draw as SVG.

One lane per machine (all incarnations of ``n2`` share lane ``n2``); each
belief is a term; its renewals, lease end and renew deadline come from the
store writes recorded in the history; faults and violations are marked.
"""

from __future__ import annotations

from collections.abc import Sequence

from mongoelector.picture.model import Marker, Span, Term, Timeline
from mongoelector.testing.simulation.checkers import Violation
from mongoelector.testing.simulation.history import MICROS, Belief, Event, History, StoreState

__all__ = ["timeline_picture"]

#: History event kind -> the picture's fault kind (spans lasting until ``Event.until``).
_SPANS = {"paused": "paused", "partitioned": "cut off", "store errors": "store errors"}
#: History event kind -> the picture's marker kind (the process is down until ``until``).
_ENDINGS = {"crashed": "crash", "stops": "stop"}


def _seconds(micros: int) -> float:
    return micros / MICROS


def _lane_names(history: History) -> dict[str, str]:
    """Machine name -> lane name; lock users' lanes say so."""
    return {
        node.name: node.name if node.lock is None else f"{node.name} (lock)"
        for node in history.scenario.nodes
    }


def _machine(node: str) -> str:
    """The machine of a process (``n2#3``) or of one caller of its lock (``n5/2``)."""
    return node.split("/", 1)[0].split("#", 1)[0]


def _own_writes(belief: Belief, store: Sequence[StoreState]) -> list[StoreState]:
    return [
        state
        for state in store
        if state.key == belief.key and state.owner == belief.process and state.token == belief.token
    ]


def _lease_end(belief: Belief, store: Sequence[StoreState], writes: list[StoreState]) -> int | None:
    """When the store stopped holding ``belief``'s lease: expiry, or the next other record."""
    if not writes or writes[-1].expires is None:
        return None
    last = writes[-1]
    expires = writes[-1].expires
    ours = (belief.process, belief.token)
    for state in store:
        if (
            state.key == belief.key
            and state.time > last.time
            and (state.owner, state.token) != ours
        ):
            return min(state.time, expires)
    return expires


def _ended_by_deadline(belief: Belief, history: History) -> bool:
    """True unless the belief's end is explained by the run's end, its process, or a change
    of the record around the end (a release, a refused renewal)."""
    if belief.end >= history.end:
        return False
    latency = round(history.scenario.latency * MICROS) + 1
    endings = ("crashed", "stops", "resigns")
    if any(
        event.node == belief.process
        and event.kind in endings
        and abs(event.time - belief.end) <= latency
        for event in history.events
    ):
        return False
    ours = (belief.process, belief.token)
    return not any(
        state.key == belief.key
        and belief.end - latency <= state.time <= belief.end + latency
        and (state.owner, state.token) != ours
        for state in history.store
    )


def _term(belief: Belief, history: History, lanes: dict[str, str]) -> Term:
    writes = _own_writes(belief, history.store)
    renewals = tuple(
        _seconds(state.time) for state in writes[1:] if belief.start <= state.time <= belief.end
    )
    lease_end = _lease_end(belief, history.store, writes)
    return Term(
        lane=lanes[_machine(belief.holder)],
        key=belief.key,
        token=belief.token,
        start=_seconds(belief.start),
        end=_seconds(belief.end),
        renewals=renewals,
        renew_deadline=_seconds(belief.end) if _ended_by_deadline(belief, history) else None,
        lease_end=None if lease_end is None else _seconds(lease_end),
    )


def _fault_items(event: Event, end: int, lanes: dict[str, str]) -> tuple[list[Span], list[Marker]]:
    lane = lanes[_machine(event.node)]
    until = _seconds(event.until if event.until is not None else end)
    if event.kind in _SPANS:
        kind = _SPANS[event.kind]
        return [Span(lane=lane, kind=kind, start=_seconds(event.time), end=until)], []
    if event.kind in _ENDINGS:
        marker = Marker(kind=_ENDINGS[event.kind], at=_seconds(event.time), lane=lane)
        down = Span(lane=lane, kind="down", start=_seconds(event.time), end=until)
        return [down], [marker]
    if event.kind == "resigns":
        return [], [Marker(kind="resign", at=_seconds(event.time), lane=lane, label="resigns")]
    if event.kind == "late write":
        label = f"late write: {event.detail}"
        return [], [Marker(kind="event", at=_seconds(event.time), lane=lane, label=label)]
    return [], []


def timeline_picture(
    history: History, violations: Sequence[Violation] = (), *, title: str | None = None
) -> Timeline:
    """The run recorded in ``history`` (with ``violations`` marked) as a timeline."""
    scenario = history.scenario
    lanes = _lane_names(history)
    spans: list[Span] = []
    markers: list[Marker] = []
    for event in history.events:
        more_spans, more_markers = _fault_items(event, history.end, lanes)
        spans += more_spans
        markers += more_markers
    markers += [
        Marker(kind="violation", at=_seconds(v.time), label=f"{v.kind}: {v.message}")
        for v in violations
    ]
    electors = sum(node.lock is None for node in scenario.nodes)
    locks = len(scenario.nodes) - electors
    verdict = "no violations" if not violations else f"{len(violations)} violation(s)"
    subtitle = f"{electors} elector{'' if electors == 1 else 's'}"
    subtitle += f", {locks} lock user{'' if locks == 1 else 's'}" if locks else ""
    subtitle += f", {len(scenario.faults)} scheduled fault(s)"
    return Timeline(
        title=title or f"simulation seed {scenario.seed}: {verdict}",
        subtitle=subtitle,
        lanes=tuple(lanes.values()),
        end=_seconds(max(history.end, 1)),
        terms=tuple(_term(belief, history, lanes) for belief in history.beliefs),
        spans=tuple(spans),
        markers=tuple(markers),
        ttl=scenario.timing.ttl,
        renew_deadline=scenario.timing.renew_deadline,
    )
