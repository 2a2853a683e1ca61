"""Invariants checked over a :class:`History`; each broken one is a :class:`Violation`.

Safety (must hold whatever the faults, as long as clocks keep to the drift bound):

* **exclusion**: no two holders (processes, or callers sharing one lock
  object) believe they hold the same key at the same true instant;
* **tokens**: fencing tokens strictly increase from one holding of a key to the
  next, and no two holdings share one; every acquisition reported to a user
  (``acquire()`` returning ``True``, ``on_leader``) is a new holding, even by
  the same holder;
* **lease**: while a node believes it holds a key, the store's record is that
  node's holding with that token and has not expired by server time;
* **notification**: a node never tells its user it holds a key (``on_leader``,
  ``acquire()`` returning ``True``) when its own state says it does not, and a
  non-blocking ``acquire()`` keeps to its bound on store calls.

A forced takeover (``acquire(force=True)``) displaces a live holder on
purpose. From the moment the forced write reaches the store, a holder it
displaced (a belief open then, with a smaller token) is *fenced*: exclusion
and the lease are not checked for the rest of that belief, which ends by
itself at its renew deadline (a renewal can no longer succeed, or the new
holder's lease check fails). Tokens are checked throughout.

Liveness (once faults stop): an elector leads within :func:`liveness_bound`
of the moment the last fault stopped having effects, and from that bound on
someone leads at every instant until the run ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mongoelector.testing.simulation.clocks import rate_bounds
from mongoelector.testing.simulation.history import Belief, History, StoreState, format_time
from mongoelector.testing.simulation.scenario import ELECTION_KEY, NodeKind, Scenario

__all__ = [
    "Violation",
    "check_all",
    "check_exclusion",
    "check_leases",
    "check_liveness",
    "check_notifications",
    "check_safety",
    "check_tokens",
    "liveness_bound",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """Invariant ``kind`` broken at true time ``time`` (µs) by ``nodes``."""

    kind: str
    time: int
    nodes: tuple[str, ...]
    message: str

    def render(self) -> str:
        return f"{format_time(self.time)}  VIOLATION {self.kind}: {self.message}"


def liveness_bound(scenario: Scenario) -> float:
    """Seconds after faults stop by which some elector must lead.

    ``ttl`` (a lease left by a crashed or cut-off leader runs out), plus one
    retry period as measured by the slowest allowed clock, plus two round
    trips (the follower's previous call, and the acquire itself). With exact
    clocks and instant calls this is ``ttl + retry_period``.
    """
    timing = scenario.timing
    _, fastest = rate_bounds(timing.max_drift)
    return timing.ttl + timing.retry_period * fastest + 2 * scenario.latency


def _by_key(beliefs: Iterable[Belief]) -> dict[str, list[Belief]]:
    grouped: dict[str, list[Belief]] = {}
    for belief in sorted(beliefs, key=lambda b: (b.key, b.start, b.end, b.holder)):
        grouped.setdefault(belief.key, []).append(belief)
    return grouped


def _granted(history: History) -> dict[tuple[str, int], int]:
    """When the store first recorded each ``(key, token)`` as held."""
    granted: dict[tuple[str, int], int] = {}
    for state in history.store:
        if state.owner is not None:
            granted.setdefault((state.key, state.token), state.time)
    return granted


def fenced_at(history: History) -> dict[Belief, int]:
    """When each belief displaced by a forced takeover was fenced (true µs).

    A belief is displaced by a forced write of a greater token if its own
    token was granted before that write and the belief lasts past it (it may
    even start after it: the grant's reply was still on its way).
    """
    granted = _granted(history)
    fenced: dict[Belief, int] = {}
    for state in history.store:
        if not state.forced:
            continue
        for belief in history.beliefs:
            if (
                belief.key == state.key
                and belief.token < state.token
                and belief.end > state.time
                and granted.get((belief.key, belief.token), belief.start) <= state.time
                and belief not in fenced
            ):
                fenced[belief] = state.time
    return fenced


def check_exclusion(history: History) -> list[Violation]:
    """No two holders believe they hold one key at the same instant (a holder displaced
    by a forced takeover is exempt from the takeover on)."""
    violations = []
    fenced = fenced_at(history)
    for key, beliefs in _by_key(history.beliefs).items():
        active: list[Belief] = []
        for belief in beliefs:
            active = [other for other in active if other.end > belief.start]
            latest = next(
                (
                    other
                    for other in sorted(active, key=lambda b: -b.end)
                    if other.holder != belief.holder
                    and belief.start < fenced.get(other, belief.end)
                    and belief.start < fenced.get(belief, other.end)
                ),
                None,
            )
            active.append(belief)
            if latest is not None:
                overlap = min(latest.end, belief.end) - belief.start
                violations.append(
                    Violation(
                        kind="exclusion",
                        time=belief.start,
                        nodes=(latest.holder, belief.holder),
                        message=(
                            f"{latest.holder} (token {latest.token}) and {belief.holder} "
                            f"(token {belief.token}) both believe they hold {key!r} for "
                            f"{format_time(overlap)}s"
                        ),
                    )
                )
    return violations


def check_tokens(history: History) -> list[Violation]:
    """Each holding of a key has a token greater than every earlier holding's (each
    reported acquisition is a holding of its own)."""
    violations = []
    granted = _granted(history)
    for key, beliefs in _by_key(history.beliefs).items():
        holdings: dict[tuple[str, int, int], int] = {}
        for belief in beliefs:
            # In the order the store granted them (a forced takeover may be granted
            # while an earlier grant's reply is still on its way).
            when = min(belief.start, granted.get((key, belief.token), belief.start))
            holdings.setdefault((belief.holder, belief.token, belief.acquisition), when)
        ordered = sorted(holdings.items(), key=lambda item: (item[1], item[0][1]))
        previous: tuple[str, int] | None = None
        for (holder, token, _), start in ordered:
            if previous is not None and token <= previous[1]:
                violations.append(
                    Violation(
                        kind="tokens",
                        time=start,
                        nodes=(previous[0], holder),
                        message=(
                            f"{holder} holds {key!r} with token {token} after {previous[0]} "
                            f"held it with token {previous[1]}"
                        ),
                    )
                )
            previous = (holder, token)
    return violations


def _states_during(store: list[StoreState], key: str, start: int, end: int) -> list[StoreState]:
    """The states of ``key`` in effect at some instant of ``[start, end)``, in order."""
    states = [state for state in store if state.key == key]
    current: list[StoreState] = []
    for state in states:
        if state.time <= start:
            current = [state]
        elif state.time < end:
            current.append(state)
    return current


def check_leases(history: History) -> list[Violation]:
    """A believer's record in the store is its own holding and unexpired throughout
    (for a holder displaced by a forced takeover: until the takeover)."""
    violations = []
    fenced = fenced_at(history)
    for belief in history.beliefs:
        end = min(belief.end, fenced.get(belief, belief.end))
        if end <= belief.start:
            continue
        states = _states_during(history.store, belief.key, belief.start, end)
        if not states or states[0].time > belief.start:
            violations.append(
                Violation(
                    kind="lease",
                    time=belief.start,
                    nodes=(belief.holder,),
                    message=f"{belief.holder} believes it holds {belief.key!r} with no record",
                )
            )
            continue
        for index, state in enumerate(states):
            until = states[index + 1].time if index + 1 < len(states) else end
            until = min(until, end)
            ours = state.owner == belief.process and state.token == belief.token
            if ours and state.expires is not None and state.expires >= until:
                continue
            since = max(state.time, belief.start)
            if ours and state.expires is not None:
                since = max(since, state.expires)
                problem = f"the lease expired at {format_time(state.expires)}"
            elif state.owner is None:
                problem = f"the record (token {state.token}) was released"
            else:
                problem = f"the record is {state.owner}'s with token {state.token}"
            violations.append(
                Violation(
                    kind="lease",
                    time=since,
                    nodes=(belief.holder,),
                    message=(
                        f"{belief.holder} believes it holds {belief.key!r} with token "
                        f"{belief.token} until {format_time(belief.end)}, but {problem}"
                    ),
                )
            )
            break
    return violations


def check_notifications(history: History) -> list[Violation]:
    """Every notice recorded by the nodes is a violation."""
    return [
        Violation(kind="notification", time=n.time, nodes=(n.node,), message=n.message)
        for n in history.notices
    ]


def check_safety(history: History) -> list[Violation]:
    """All safety invariants, in time order."""
    violations = (
        check_exclusion(history)
        + check_tokens(history)
        + check_leases(history)
        + check_notifications(history)
    )
    return sorted(violations, key=lambda v: (v.time, v.kind, v.nodes))


def check_liveness(history: History) -> list[Violation]:
    """An elector leads within :func:`liveness_bound` of quiet, and continuously after it."""
    scenario = history.scenario
    if not any(node.kind is NodeKind.ELECTOR for node in scenario.nodes):
        return []
    quiet = history.quiet_since
    due = quiet + round(liveness_bound(scenario) * 1_000_000)
    if due >= history.end:
        return []
    beliefs = [b for b in history.beliefs if b.key == ELECTION_KEY and b.end > quiet]
    beliefs.sort(key=lambda b: (b.start, b.end))
    first = min((max(b.start, quiet) for b in beliefs), default=None)
    if first is None or first > due:
        return [
            Violation(
                kind="liveness",
                time=due,
                nodes=(),
                message=(
                    f"no elector leads within {liveness_bound(scenario):.2f}s of "
                    f"{'the last fault' if scenario.faults else 'the start'} "
                    f"(quiet since {format_time(quiet)})"
                ),
            )
        ]
    covered = due
    for belief in beliefs:
        if belief.end <= covered:
            continue
        if belief.start > covered:
            return [
                Violation(
                    kind="liveness",
                    time=covered,
                    nodes=(belief.holder,),
                    message=(
                        f"no elector leads from {format_time(covered)} to "
                        f"{format_time(belief.start)}, after faults stopped"
                    ),
                )
            ]
        covered = belief.end
    if covered < history.end:
        return [
            Violation(
                kind="liveness",
                time=covered,
                nodes=(),
                message=f"no elector leads from {format_time(covered)} to the end",
            )
        ]
    return []


def check_all(history: History) -> list[Violation]:
    """Safety and liveness, in time order."""
    return sorted(
        check_safety(history) + check_liveness(history), key=lambda v: (v.time, v.kind, v.nodes)
    )
