"""A readable picture of a run: one row per machine, one column per slice of time.

``#`` holds the key (leads), ``.`` running, ``P`` paused, ``~`` cut off from
the store or getting store errors, ``X`` down (crashed or stopped), and ``^``
in the bottom row marks a violation. When several apply to a slice, the first
in the order ``X P ~ #`` wins, so faults are never hidden by a belief.
"""

from __future__ import annotations

from collections.abc import Sequence

from mongoelector.testing.simulation.checkers import Violation
from mongoelector.testing.simulation.history import Belief, History, StoreState, format_time

__all__ = ["render_log", "render_timeline"]

_FAULT_MARKS = {
    "crashed": "X",
    "stops": "X",
    "paused": "P",
    "partitioned": "~",
    "store errors": "~",
}
_PRIORITY = "XP~#."
LEGEND = "# holds/leads  . running  P paused  ~ cut off or store errors  X down  ^ violation"


def _machine(node: str) -> str:
    """The machine of a process (``n2#3``) or of one caller of its lock (``n5/2``)."""
    return node.split("/", 1)[0].split("#", 1)[0]


def render_timeline(
    history: History, violations: Sequence[Violation] = (), *, width: int = 96
) -> str:
    """The run as a character chart ``width`` columns wide, with a time axis and legend."""
    if width < 10:
        raise ValueError(f"width must be at least 10, got {width!r}")
    end = max(history.end, 1)
    names = [node.name for node in history.scenario.nodes]
    rows = {name: ["."] * width for name in names}

    def paint(name: str, start: int, stop: int, mark: str) -> None:
        row = rows.get(_machine(name))
        if row is None:
            return
        first = min(width - 1, start * width // end)
        last = max(first, min(width - 1, (max(stop, start + 1) - 1) * width // end))
        for column in range(first, last + 1):
            if _PRIORITY.index(mark) < _PRIORITY.index(row[column]):
                row[column] = mark

    for belief in history.beliefs:
        paint(belief.holder, belief.start, belief.end, "#")
    for event in history.events:
        mark = _FAULT_MARKS.get(event.kind)
        if mark is not None:
            until = event.until if event.until is not None else history.end
            paint(event.node, event.time, until, mark)

    label = max(len(name) for name in [*names, "time"]) + 2
    step = end / width
    axis = [" "] * width
    for column in range(0, width, 12):
        text = f"|{format_time(round(column * step))[:-4]}s"
        axis[column : column + len(text)] = list(text)
    lines = ["time".ljust(label) + "".join(axis[:width])]
    lines += [name.ljust(label) + "".join(row) for name, row in rows.items()]
    if violations:
        marks = [" "] * width
        for violation in violations:
            marks[min(width - 1, violation.time * width // end)] = "^"
        lines.append("!".ljust(label) + "".join(marks))
    lines.append(" " * label + LEGEND)
    return "\n".join(lines)


def _routine(record: object, previous: dict[str, StoreState]) -> bool:
    """True for a store write that only moved the same holding's expiry (a renewal)."""
    if not isinstance(record, StoreState):
        return False
    before = previous.get(record.key)
    previous[record.key] = record
    return before is not None and (before.owner, before.token) == (record.owner, record.token)


def render_log(
    history: History, violations: Sequence[Violation] = (), *, renewals: bool = False
) -> str:
    """Every record and violation in time order; renewals only if ``renewals``."""
    entries: list[tuple[int, int, int, str]] = []
    previous: dict[str, StoreState] = {}
    for index, record in enumerate(history.records()):
        if not renewals and _routine(record, previous):
            continue
        time = record.start if isinstance(record, Belief) else record.time
        entries.append((time, 0, index, record.render()))
    for index, violation in enumerate(violations):
        entries.append((violation.time, 1, index, violation.render()))
    entries.sort()
    return "\n".join(entry[3] for entry in entries)
