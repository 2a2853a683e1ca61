"""Running scenarios and seeds, and reporting a failing one so that it can be replayed."""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from mongoelector.testing.simulation.checkers import Violation, check_all
from mongoelector.testing.simulation.clocks import rate_bounds
from mongoelector.testing.simulation.history import History
from mongoelector.testing.simulation.scenario import ELECTION_KEY, NodeKind, Scenario
from mongoelector.testing.simulation.schedules import SimulationConfig, draw_scenario
from mongoelector.testing.simulation.timeline import render_log, render_timeline
from mongoelector.testing.simulation.world import World, micros

__all__ = [
    "SimulationFailure",
    "SimulationOutcome",
    "Summary",
    "check_seeds",
    "replay",
    "run_scenario",
    "run_seed",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationOutcome:
    """One run: its history and every invariant it broke.

    ``config`` is set when the scenario was drawn from a seed, so that the
    report can say how to replay it.
    """

    history: History
    violations: tuple[Violation, ...]
    config: SimulationConfig | None = None

    @property
    def scenario(self) -> Scenario:
        return self.history.scenario

    @property
    def ok(self) -> bool:
        return not self.violations

    def title(self) -> str:
        """``simulation seed K (bounds: ...)``: the seed, and the bounds it was drawn in.

        A seed names a scenario only together with the bounds it was drawn in:
        the same seed in other bounds is another scenario.
        """
        return f"simulation seed {self.scenario.seed} ({_bounds(self.config)})"

    def replay_hint(self) -> str:
        """How to run this scenario again."""
        seed = self.scenario.seed
        if self.config is None:
            return "replay: run_scenario(scenario) with the scenario printed above"
        arguments = f"{seed}" if self.config == SimulationConfig() else f"{seed}, {self.config!r}"
        hint = f"replay: mongoelector.testing.replay({arguments})"
        if self.config == SimulationConfig():
            hint += f"  or  python -m mongoelector.testing.simulation {seed}"
        return hint

    def report(self, *, renewals: bool = False, width: int = 96) -> str:
        """The seed, the broken invariants, a timeline and the log, as text."""
        history = self.history
        verdict = (
            "no violations"
            if self.ok
            else f"{len(self.violations)} violation(s): "
            + ", ".join(sorted({v.kind for v in self.violations}))
        )
        parts = [
            f"{self.title()}: {verdict}",
            self.replay_hint(),
            "",
            *[violation.render() for violation in self.violations],
            "",
            render_timeline(history, self.violations, width=width),
            "",
            *history.header(),
            "",
            render_log(history, self.violations, renewals=renewals),
        ]
        return "\n".join(parts)


def _bounds(config: SimulationConfig | None) -> str:
    """Which bounds a scenario was drawn in: ``bounds: SimulationConfig(...)`` with the
    fields that differ from the defaults, or that it was given, not drawn (``None``)."""
    if config is None:
        return "scenario given, not drawn"
    default = SimulationConfig()
    changed = [
        f"{item.name}={getattr(config, item.name)!r}"
        for item in dataclasses.fields(config)
        if getattr(config, item.name) != getattr(default, item.name)
    ]
    return f"bounds: SimulationConfig({', '.join(changed)})"


class SimulationFailure(AssertionError):
    """A run broke an invariant; the message is :meth:`SimulationOutcome.report`."""

    def __init__(self, outcome: SimulationOutcome) -> None:
        super().__init__(outcome.report())
        self.outcome = outcome


def run_scenario(
    scenario: Scenario, *, config: SimulationConfig | None = None
) -> SimulationOutcome:
    """Run ``scenario`` and check every invariant (``config``: where it was drawn from)."""
    history = World(scenario).run()
    return SimulationOutcome(history=history, violations=tuple(check_all(history)), config=config)


def run_seed(seed: int, config: SimulationConfig | None = None) -> SimulationOutcome:
    """Draw the scenario for ``seed`` within ``config``, run it and check it."""
    if config is None:
        config = SimulationConfig()
    return run_scenario(draw_scenario(seed, config), config=config)


def replay(
    seed: int, config: SimulationConfig | None = None, *, renewals: bool = False
) -> SimulationOutcome:
    """Run ``seed`` again and print its report (timeline and log)."""
    outcome = run_seed(seed, config)
    print(outcome.report(renewals=renewals))
    return outcome


@dataclass(slots=True)
class Summary:
    """Totals over many runs, to show what they exercised (and that it was not nothing)."""

    schedules: int = 0
    failures: list[SimulationOutcome] = field(default_factory=list)
    electors: collections.Counter[int] = field(default_factory=collections.Counter)
    events: collections.Counter[str] = field(default_factory=collections.Counter)
    ambiguous_applied: int = 0
    longest_pause: float = 0.0
    clocks_at_bound: int = 0
    handovers: int = 0
    callers: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, outcome: SimulationOutcome) -> None:
        """Count ``outcome`` in."""
        self.schedules += 1
        if not outcome.ok:
            self.failures.append(outcome)
        history = outcome.history
        scenario = history.scenario
        self.electors[sum(node.kind is NodeKind.ELECTOR for node in scenario.nodes)] += 1
        slowest, fastest = rate_bounds(scenario.timing.max_drift)
        self.clocks_at_bound += sum(node.rate in (slowest, fastest) for node in scenario.nodes)
        for node in scenario.nodes:
            if node.lock is not None:
                self.callers[f"release: {node.lock.after_failed_release.value}"] += 1
                if node.lock.threads > 1:
                    self.callers["shared lock object"] += 1
                if node.lock.auto_renew:
                    self.callers["auto-renewed locks"] += node.lock.holdings
                if node.lock.electors:
                    self.callers["started electors"] += node.lock.electors
            if node.callback is not None:
                self.callers[node.callback.value] += 1
        for event in history.events:
            self.events[event.kind] += 1
            if event.kind == "paused" and event.until is not None:
                length = (event.until - event.time) / 1_000_000 / scenario.timing.ttl
                self.longest_pause = max(self.longest_pause, length)
            if "(applied, reply lost)" in event.detail:
                self.ambiguous_applied += 1
        auto_renewed = {
            node.name for node in scenario.nodes if node.lock is not None and node.lock.auto_renew
        }
        renewed_for = micros(scenario.timing.renew_deadline * fastest)
        started = {
            node.name for node in scenario.nodes if node.lock is not None and node.lock.electors
        }
        for belief in history.beliefs:
            machine = belief.process.split("#")[0]
            long = belief.end - belief.start > renewed_for
            elected = belief.key.startswith(ELECTION_KEY)
            if machine in auto_renewed and long and not elected:
                self.callers["held past one renew deadline (renewed)"] += 1
            if machine in started and elected and long:
                self.callers["led past one renew deadline (started elector)"] += 1
        holders = [b.holder for b in sorted(history.beliefs, key=lambda b: b.start)]
        self.handovers += sum(1 for a, b in itertools.pairwise(holders) if a != b)

    @property
    def violations(self) -> int:
        return sum(len(outcome.violations) for outcome in self.failures)

    def render(self) -> str:
        """A few lines saying what the runs covered."""
        electors = ", ".join(f"{n}: {self.electors[n]}" for n in sorted(self.electors))
        events = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.events.items()))
        return "\n".join(
            [
                f"schedules: {self.schedules}, failing: {len(self.failures)}, "
                f"violations: {self.violations}",
                f"schedules by elector count: {electors}",
                f"events: {events}",
                f"ambiguous writes that applied: {self.ambiguous_applied}, "
                f"longest pause: {self.longest_pause:.2f} leases, "
                f"clocks at the drift bound: {self.clocks_at_bound}, "
                f"handovers: {self.handovers}",
                "callers: " + ", ".join(f"{kind}: {n}" for kind, n in sorted(self.callers.items())),
            ]
        )


def check_seeds(
    seeds: Iterable[int], config: SimulationConfig | None = None, *, fail_fast: bool = True
) -> Summary:
    """Run every seed; raise :class:`SimulationFailure` on the first failure if ``fail_fast``."""
    if config is None:
        config = SimulationConfig()
    summary = Summary()
    for seed in seeds:
        outcome = run_seed(seed, config)
        summary.add(outcome)
        if fail_fast and not outcome.ok:
            raise SimulationFailure(outcome)
    return summary
