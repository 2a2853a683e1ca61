"""Turns the runners' figures into the markdown tables of ``docs/benchmarks.md``.

Figures arrive as ``{"1.x": {id: value}, "2.x": {id: value}}``, each value
already aggregated over the runs (see ``compare.py``): a count
(``{"reads", "writes", "other"}``), a number, or a list of samples. Every row
names its figure ids, how to show them, and the issue's target, so a missed
target shows up as "no" in the table, never by omission.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["render"]

Figures = Mapping[str, Mapping[str, Any]]
KINDS = ("reads", "writes", "other")
TTL = 15.0
RETRY = 2.0  # the 2.x default retry_period at ttl 15 s
CADENCE_RETRY = TTL / 2
REALTIME_TTL = 1.0


# --- values ------------------------------------------------------------------------------------


def total(count: Mapping[str, float]) -> float:
    return sum(count[kind] for kind in KINDS)


def number(value: float, digits: int = 2) -> str:
    if 0 < abs(value) < 0.5 * 10**-digits:
        return f"<{10**-digits:g}"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def show_count(count: Mapping[str, float] | None) -> str:
    if count is None:
        return "n/a"
    parts = [f"{number(count[kind])} {kind[0]}" for kind in KINDS if count[kind]]
    return f"**{number(total(count))}** ({', '.join(parts)})" if parts else "**0**"


def mean_count(counts: list[Mapping[str, float]]) -> dict[str, float]:
    return {kind: sum(c[kind] for c in counts) / len(counts) for kind in KINDS}


def samples(value: list[float | None] | None) -> list[float]:
    return [v for v in value or [] if v is not None]


def show_seconds(value: list[float | None] | None, unit: str = "s") -> str:
    found = samples(value)
    if not found:
        return "n/a"
    missing = len(value or []) - len(found)
    scale = 1000.0 if unit == "ms" else 1.0
    text = (
        f"{number(statistics.median(found) * scale)} {unit} "
        f"(max {number(max(found) * scale)}, n={len(found)})"
    )
    return text + (f", {missing} never" if missing else "")


def ratio(new: float | None, old: float | None) -> str:
    if new is None or old is None or old == 0:
        return "n/a"
    value = new / old
    return f"{value:.2g}" if 0 < value < 0.1 else number(value)


def rate(value: float | None) -> str:
    """A measured rate, whole; ``n/a`` when it was not measured (``--quick``)."""
    return "n/a" if value is None else number(value, 0)


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


# --- the tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountRow:
    label: str
    figure: str
    #: (2.x count, 1.x count) -> whether the target holds; ``None``: no target.
    target: Callable[[Mapping[str, float], Mapping[str, float] | None], bool] | None = None
    target_text: str = ""
    #: Derive the value from other figures (group sizes other than the one measured).
    derive: Callable[[Mapping[str, Any], str, str], Mapping[str, float] | None] | None = None


def exactly_one(new: Mapping[str, float], old: Mapping[str, float] | None) -> bool:
    return total(new) == 1


def half_and_no_more_writes(new: Mapping[str, float], old: Mapping[str, float] | None) -> bool:
    assert old is not None
    return total(new) <= total(old) / 2 and new["writes"] <= old["writes"]


def group_of(size: int, cadence: str, status: str) -> Callable[..., Mapping[str, float] | None]:
    def derive(side: Mapping[str, Any], store: str, _: str) -> Mapping[str, float] | None:
        leader = side.get(f"{store}|{cadence}.status_{status}.leader.minute")
        follower = side.get(f"{store}|{cadence}.status_{status}.follower.minute")
        if leader is None or follower is None:
            return None
        return mean_count([leader] + [follower] * (size - 1))

    return derive


LOCK_ROWS = [
    CountRow("lock construction", "count.construct"),
    CountRow("first acquire (clock check, indexes)", "count.acquire_first"),
    CountRow("uncontended acquire", "count.acquire", exactly_one, "exactly 1"),
    CountRow("renew (`touch()`)", "count.renew", exactly_one, "exactly 1"),
    CountRow("release", "count.release", exactly_one, "exactly 1"),
]

POLL_ROWS = [
    CountRow(f"{role} poll, status {state}", f"defaults.status_{state}.{role}.poll")
    for role in ("leader", "follower")
    for state in ("off", "on")
]

MINUTE_ROWS = [
    *(
        CountRow(f"{role}, status {state}", f"defaults.status_{state}.{role}.minute")
        for state in ("on", "off")
        for role in ("leader", "follower")
    ),
    *(
        CountRow(
            f"per elector, group of {size}, status {state}",
            f"defaults.status_{state}.group{size}",
            derive=group_of(size, "defaults", state),
        )
        for state in ("on", "off")
        for size in (2, 3)
    ),
]

CADENCE_TARGET = "total <= 1/2 of 1.x, writes <= 1.x"
CADENCE_ROWS = [
    CountRow(
        "leader", "cadence_1x.status_on.leader.minute", half_and_no_more_writes, CADENCE_TARGET
    ),
    CountRow(
        "follower", "cadence_1x.status_on.follower.minute", half_and_no_more_writes, CADENCE_TARGET
    ),
    *(
        CountRow(
            f"per elector, group of {size}",
            f"cadence_1x.status_on.group{size}",
            half_and_no_more_writes,
            CADENCE_TARGET,
            derive=group_of(size, "cadence_1x", "on"),
        )
        for size in (2, 3)
    ),
]

#: (column title, side, store) of the 2.x count columns; 1.x is always mongomock.
COUNT_COLUMNS = [
    ("2.x mongomock (classic path)", "mongomock"),
    ("2.x pipeline path (pymongo, wire)", "wire"),
    ("2.x MemoryBackend", "memory"),
]


def _count(side: Mapping[str, Any], store: str, row: CountRow) -> Mapping[str, float] | None:
    if row.derive is not None:
        return row.derive(side, store, row.figure)
    value = side.get(f"{store}|{row.figure}")
    return value if isinstance(value, Mapping) else None


def count_table(figures: Figures, rows: list[CountRow], *, server: bool) -> list[str]:
    columns = COUNT_COLUMNS + ([("2.x real server", "server")] if server else [])
    head = ["", "1.x mongomock"]
    for title, _ in columns:
        head += [title, "2.x/1.x"]
    if any(row.target for row in rows):
        head += ["target", "met (classic / pipeline / memory)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        old = _count(figures["1.x"], "mongomock", row)
        cells = [row.label, show_count(old)]
        verdicts = []
        for _, store in columns:
            new = _count(figures["2.x"], store, row)
            cells += [
                show_count(new),
                ratio(total(new) if new else None, total(old) if old else None),
            ]
            if row.target is not None and store != "server":
                ok = (
                    None
                    if new is None or (old is None and row.target is not exactly_one)
                    else (row.target(new, old))
                )
                verdicts.append(verdict(ok))
        if any(r.target for r in rows):
            cells += [row.target_text, " / ".join(verdicts)] if row.target else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRow:
    label: str
    new: str
    old: str | None = None
    #: The most (seconds) every sample may take, for the target column.
    bound: float | None = None
    target_text: str = ""
    unit: str = "s"
    beside: str | None = None


TIME_ROWS = [
    TimeRow(
        "crash failover, 2.x defaults (virtual time, MemoryBackend)",
        "memory|failover.virtual.defaults",
        bound=TTL + RETRY,
        target_text=f"<= ttl + retry_period = {number(TTL + RETRY)} s",
        beside="memory|defaults.status_on.group3",
    ),
    TimeRow(
        "crash failover, 2.x defaults (virtual time, mongomock)",
        "mongomock|failover.virtual.defaults",
        bound=TTL + RETRY,
        target_text=f"<= {number(TTL + RETRY)} s",
        beside="mongomock|defaults.status_on.group3",
    ),
    TimeRow(
        "graceful handoff after `stop()`, 2.x defaults (virtual, MemoryBackend)",
        "memory|handoff.virtual.defaults",
        bound=RETRY,
        target_text=f"<= retry_period = {number(RETRY)} s",
        beside="memory|defaults.status_on.group3",
    ),
    TimeRow(
        "graceful handoff after `stop()`, 2.x defaults (virtual, mongomock)",
        "mongomock|handoff.virtual.defaults",
        bound=RETRY,
        target_text=f"<= {number(RETRY)} s",
        beside="mongomock|defaults.status_on.group3",
    ),
    TimeRow(
        "graceful handoff after `release()`, 2.x defaults (virtual, mongomock)",
        "mongomock|handoff_release.virtual.defaults",
        bound=RETRY,
        target_text=f"<= {number(RETRY)} s",
        beside="mongomock|defaults.status_on.group3",
    ),
    TimeRow(
        "crash failover, 2.x at 1.x cadence (retry ttl/2, follower_poll ttl, virtual, mongomock)",
        "mongomock|failover.virtual.cadence_1x",
        bound=2 * TTL,
        target_text=f"<= 2 x ttl = {number(2 * TTL)} s",
        beside="mongomock|cadence_1x.status_on.group3",
    ),
    TimeRow(
        "graceful handoff, 2.x at 1.x cadence (virtual, mongomock)",
        "mongomock|handoff.virtual.cadence_1x",
        beside="mongomock|cadence_1x.status_on.group3",
    ),
    TimeRow(
        f"crash failover, real time, mongomock, ttl = {number(REALTIME_TTL)} s",
        "mongomock|failover.realtime",
        "mongomock|failover.realtime",
    ),
    TimeRow(
        f"graceful handoff after `stop()`, real time, mongomock, ttl = {number(REALTIME_TTL)} s",
        "mongomock|handoff.realtime",
        "mongomock|handoff.realtime",
    ),
    TimeRow(
        f"`stop()` of a leader, real time, mongomock, ttl = {number(REALTIME_TTL)} s",
        "mongomock|stop.realtime",
        "mongomock|stop.realtime",
        unit="ms",
    ),
    TimeRow(
        "`stop()` of a leader, 2.x defaults, MemoryBackend, real time",
        "memory|stop.defaults",
        bound=0.1,
        target_text="< 100 ms",
        unit="ms",
    ),
]


def _median(value: Any) -> float | None:
    found = samples(value)
    return statistics.median(found) if found else None


def time_table(figures: Figures) -> list[str]:
    head = ["", "1.x", "2.x", "2.x/1.x (medians)", "target", "met", "2.x ops per elector-minute"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in TIME_ROWS:
        new = figures["2.x"].get(row.new)
        old = figures["1.x"].get(row.old) if row.old else None
        met = None
        if row.bound is not None and new is not None:
            found = samples(new)
            # Virtual times are whole nanoseconds; allow for the float arithmetic.
            met = len(found) == len(new) and all(v <= row.bound + 1e-9 for v in found)
        beside = figures["2.x"].get(row.beside) if row.beside else None
        if row.beside and beside is None:
            store, _, figure = row.beside.partition("|")
            cadence = figure.split(".")[0]
            beside = group_of(3, cadence, "on")(figures["2.x"], store, figure)
        cells = [
            row.label,
            show_seconds(old, row.unit) if row.old else "n/a",
            show_seconds(new, row.unit),
            ratio(_median(new), _median(old)) if row.old else "n/a",
            row.target_text,
            verdict(met),
            show_count(beside) if beside else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def throughput_table(figures: Figures, *, server: bool) -> list[str]:
    head = ["acquire+release pairs per second", "1.x mongomock", "2.x mongomock", "2.x/1.x"]
    head += ["target", "met", "2.x MemoryBackend"] + (["2.x real server"] if server else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, figure in (("one key", "pairs.one_key"), ("1,000 keys", "pairs.many_keys")):
        old = figures["1.x"].get(f"mongomock|{figure}")
        new = figures["2.x"].get(f"mongomock|{figure}")
        cells = [
            label,
            rate(old),
            rate(new),
            ratio(new, old),
            ">= 1.x",
            verdict(None if old is None or new is None else new >= old),
            rate(figures["2.x"].get(f"memory|{figure}")),
        ]
        if server:
            cells.append(rate(figures["2.x"].get(f"server|{figure}")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{number(value * 1e6, 1)} us"


def _ms_text(value: float | None) -> str:
    return "n/a" if value is None else f"{number(value * 1e3, 1)} ms"


def percall_table(figures: Figures) -> list[str]:
    """The cost of one acquire+release pair, and of the import, with the issue's targets."""
    new, old = figures["2.x"], figures["1.x"]

    def get(side: Mapping[str, Any], key: str) -> float | None:
        value = side.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    head = ["", "1.x", "2.x", "compared with", "2.x / compared", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(
        label: str,
        old_value: str,
        new_value: float | None,
        base: float | None,
        base_text: str,
        limit: float | None,
        target_text: str,
        show: Callable[[float | None], str] = _us,
        *,
        by_ratio: bool,
    ) -> None:
        value_ratio = new_value / base if new_value is not None and base else None
        judged = value_ratio if by_ratio else new_value
        met = None if judged is None or limit is None else judged <= limit
        cells = [
            label,
            old_value,
            show(new_value),
            base_text,
            number(value_ratio) if value_ratio is not None else "n/a",
            target_text,
            verdict(met),
        ]
        lines.append("| " + " | ".join(cells) + " |")

    wire_lock = get(new, "wire|percall.lock_pair_cpu")
    wire_raw = get(new, "wire|percall.raw_pair_cpu")
    row(
        "client CPU per pair, pipeline path (pymongo, wire)",
        "n/a",
        wire_lock,
        wire_raw,
        f"raw pymongo, same 2 commands: {_us(wire_raw)}",
        1.15,
        "<= 1.15 x raw pymongo",
        by_ratio=True,
    )
    wire_bounded = get(new, "wire|percall.raw_bounded_pair_cpu")
    row(
        "the same, next to raw pymongo bounding each call as the lock does",
        "n/a",
        wire_lock,
        wire_bounded,
        f"raw pymongo in `pymongo.timeout`: {_us(wire_bounded)}",
        None,
        "(context)",
        by_ratio=True,
    )
    wire_then_noio = get(new, "wire|percall.raw_bounded_then_noio_pair_cpu")
    row(
        "the same, next to that raw pymongo with the lock's no-I/O steps after each reply",
        "n/a",
        wire_lock,
        wire_then_noio,
        f"bounded raw pymongo, then the no-I/O lock's acquire/release: {_us(wire_then_noio)}",
        None,
        "(context)",
        by_ratio=True,
    )
    for path, what in (("pipeline", "MongoDB 4.2+"), ("classic", "older servers, mongomock")):
        noio_own = get(new, f"noio|percall.{path}.own_pair")
        noio_raw = get(new, f"noio|percall.{path}.raw_pair")
        row(
            f"own code per pair against a store that does no I/O, {path} path ({what})",
            "n/a",
            noio_own,
            None,
            f"the store's own work, taken out: {_us(noio_raw)}",
            30e-6,
            "<= 30 us",
            by_ratio=False,
        )
    own_old = get(old, "mongomock|percall.own_pair")
    own_new = get(new, "mongomock|percall.own_pair")
    row(
        "own code per pair (store time taken out), mongomock (classic path)",
        _us(own_old),
        own_new,
        own_old,
        f"1.x: {_us(own_old)}",
        30e-6,
        "<= 30 us",
        by_ratio=False,
    )
    own_wire = get(new, "wire|percall.own_pair")
    row(
        "own code per pair (pymongo's CPU taken out), pipeline path (wire)",
        "n/a",
        own_wire,
        None,
        "",
        30e-6,
        "<= 30 us",
        by_ratio=False,
    )
    memory_lock = get(new, "memory|percall.lock_pair")
    memory_raw = get(new, "memory|percall.raw_pair")
    row(
        "`Lock` pair on MemoryBackend",
        "n/a",
        memory_lock,
        memory_raw,
        f"the raw backend calls: {_us(memory_raw)}",
        1.6,
        "<= 1.6 x raw calls",
        by_ratio=True,
    )
    import_old = get(old, "import|percall.import")
    import_new = get(new, "import|percall.import")
    row(
        "`import mongoelector` and its lock classes, after `import pymongo`",
        _ms_text(import_old),
        import_new,
        import_old,
        f"1.x: {_ms_text(import_old)}",
        15e-3,
        "<= 15 ms",
        _ms_text,
        by_ratio=False,
    )
    return lines


def render(figures: Figures, *, header: list[str]) -> str:
    server = any(key.startswith("server|") for key in figures["2.x"])
    parts: list[str] = [*header, ""]
    sections: list[tuple[str, list[str]]] = [
        ("Store operations per lock operation", count_table(figures, LOCK_ROWS, server=server)),
        (
            f"Store operations per elector poll (ttl {number(TTL)} s; 2.x: retry_period "
            f"{number(RETRY)} s, status every ttl/3; averages over {10} minutes)",
            count_table(figures, POLL_ROWS, server=server),
        ),
        (
            "Store operations per elector-minute at default settings (1.x: leader every ttl/2, "
            f"follower every ttl; 2.x: everyone every retry_period = {number(RETRY)} s)",
            count_table(figures, MINUTE_ROWS, server=False),
        ),
        (
            "Store operations per elector-minute at 1.x's cadence, status on (2.x: "
            f"leader renews every retry_period = ttl/2 = {number(CADENCE_RETRY)} s, "
            "followers poll every follower_poll = ttl)",
            count_table(figures, CADENCE_ROWS, server=False),
        ),
        ("The cost of one call", percall_table(figures)),
        ("Failover, handoff and stop()", time_table(figures)),
        ("Throughput", throughput_table(figures, server=server)),
    ]
    for title, lines in sections:
        parts += [f"### {title}", "", *lines, ""]
    sims = figures["2.x"].get("memory|simulation.schedules")
    measured = (
        "not measured in this run (`--quick`)"
        if sims is None
        else f"**{rate(sims)}** per second in one process"
    )
    parts += [
        "### Simulation",
        "",
        f"2.x simulated schedules: {measured} "
        "(`check_seeds` with the default `SimulationConfig`; 1.x has no simulator).",
        "",
    ]
    return "\n".join(parts)
