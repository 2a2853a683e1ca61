"""What happened in one simulation run, in true time, as plain records.

Times are whole microseconds of true time from the start of the run (the
simulation schedules everything on microsecond ticks, the resolution of the
store's server time). Nodes are named by incarnation: ``n2`` is the first
process of machine ``n2``, ``n2#3`` the third one after two restarts. Owner ids
(random UUIDs) never appear, so a scenario always renders to the same text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mongoelector.testing.simulation.scenario import Scenario

__all__ = ["Belief", "Event", "History", "Notice", "Record", "StoreState", "format_time"]

MICROS = 1_000_000


def format_time(micros: int) -> str:
    """``micros`` as seconds with six decimals (``12.500000``), exactly."""
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    return f"{sign}{micros // MICROS}.{micros % MICROS:06d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Belief:
    """``holder`` believed it held ``key`` with fencing ``token`` during ``[start, end)``.

    ``holder`` is a process (``n2#2``), or one caller of a process's shared
    lock object (``n5/2``). ``acquisition`` counts the times the holder was
    told it had acquired the key (``acquire()`` returned ``True``,
    ``on_leader`` fired): each is a new holding, which needs a new token.
    """

    key: str
    holder: str
    token: int
    start: int
    end: int
    acquisition: int = 0

    @property
    def process(self) -> str:
        """The process holding it (the holder without its caller suffix)."""
        return self.holder.split("/", 1)[0]

    def render(self) -> str:
        return (
            f"{format_time(self.start)} .. {format_time(self.end)}  {self.holder} holds "
            f"{self.key!r} token={self.token}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreState:
    """The record of ``key`` as a write at ``time`` left it (``expires`` in true µs).

    ``forced``: the write was a forced ``compare_and_set`` (a takeover).
    """

    time: int
    key: str
    owner: str | None
    token: int
    expires: int | None
    forced: bool = False

    def render(self) -> str:
        owner = self.owner if self.owner is not None else "nobody"
        expires = format_time(self.expires) if self.expires is not None else "-"
        forced = " (forced)" if self.forced else ""
        return (
            f"{format_time(self.time)}  store {self.key!r}: owner={owner} token={self.token} "
            f"expires={expires}{forced}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something the simulation did to a node (a fault, a restart) or saw it do."""

    time: int
    node: str
    kind: str
    detail: str = ""
    until: int | None = None

    def render(self) -> str:
        detail = f" {self.detail}" if self.detail else ""
        until = f" until {format_time(self.until)}" if self.until is not None else ""
        return f"{format_time(self.time)}  {self.node} {self.kind}{detail}{until}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """A node told its user something its own state contradicts (see the checkers)."""

    time: int
    node: str
    message: str

    def render(self) -> str:
        return f"{format_time(self.time)}  {self.node} NOTICE {self.message}"


Record = Belief | StoreState | Event | Notice


@dataclass(slots=True, kw_only=True)
class History:
    """The record of one run: beliefs, store writes, faults, and notices.

    ``quiet_since`` is when the last fault stopped having effects (including
    calls still hanging when their fault ended); ``end`` when the run stopped.
    Beliefs still held at ``end`` are cut there. Add records with :meth:`add`,
    which keeps them in the order they were made.
    """

    scenario: Scenario
    beliefs: list[Belief] = field(default_factory=list)
    store: list[StoreState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    quiet_since: int = 0
    end: int = 0
    _records: list[Record] = field(default_factory=list)

    def add(self, record: Record) -> None:
        """Append ``record`` to its list and to the log."""
        if isinstance(record, Belief):
            self.beliefs.append(record)
        elif isinstance(record, StoreState):
            self.store.append(record)
        elif isinstance(record, Event):
            self.events.append(record)
        else:
            self.notices.append(record)
        self._records.append(record)

    def records(self) -> list[Record]:
        """Every record in true-time order (beliefs at their start; ties as recorded)."""
        keyed = [
            (record.start if isinstance(record, Belief) else record.time, index, record)
            for index, record in enumerate(self._records)
        ]
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [item[2] for item in keyed]

    def header(self) -> list[str]:
        """The scenario, one item per line."""
        scenario = self.scenario
        lines = [
            f"scenario seed={scenario.seed} duration={scenario.duration!r} "
            f"latency={scenario.latency!r}" + (" UNSAFE" if scenario.unsafe else ""),
            f"timing {scenario.timing!r}",
        ]
        lines += [f"node {node!r}" for node in scenario.nodes]
        lines += [f"fault {fault!r}" for fault in scenario.faults]
        return lines

    def text(self) -> str:
        """The whole history as text: same scenario, same text, byte for byte."""
        lines = self.header()
        lines.append(f"quiet since {format_time(self.quiet_since)}, end {format_time(self.end)}")
        lines += [record.render() for record in self.records()]
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        """SHA-256 of :meth:`text`, to compare runs cheaply."""
        return hashlib.sha256(self.text().encode()).hexdigest()
