"""Several auto-renewed locks per node, renewed by the process scheduler, in the simulation.

Each node of these scenarios holds three keys (``job-lock``, ``job-lock-2``,
``job-lock-3``) with ``Lock(auto_renew=True, on_lost=...)``; the renewals run
on the real scheduler with the node's clock driven by hand, so every renew
goes through the world (time passes inside it, faults apply). Every key is
checked for exclusion, tokens and leases. Mutation tests break the renewer on
purpose and show that the simulation then finds a violation.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from mongoelector._common.renewing import RenewalRules
from mongoelector._sync import scheduler
from mongoelector._sync.calls import Failure
from mongoelector._sync.renewer import Renewer, running
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Lost
from mongoelector.testing.simulation import FaultInjectingBackend, SimulationOutcome, run_scenario
from mongoelector.testing.simulation.holdings import HoldingsProcess
from mongoelector.testing.simulation.scenario import (
    Crash,
    Partition,
    Pause,
    Scenario,
    StoreErrors,
    Takeover,
)
from tests.testing.simulation.lock_nodes import TIMING, holder, kinds

KEYS = ("job-lock", "job-lock-2", "job-lock-3")


def cut_off(seed: int = 1) -> Scenario:
    """n3 takes every key first; it is cut off (calls fail at once) for two leases."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(holder("n1"), holder("n2", reacquire_on_loss=True), holder("n3")),
        faults=(Partition(node="n3", at=20, duration=30),),
        duration=120,
        latency=0.05,
    )


def slow_reply(seed: int = 1) -> Scenario:
    """n3 (which takes every key first) pauses 6 s inside a renew, after the store applied
    it; then it is cut off, so the renew it sends after the pause is its last."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(holder("n1", reacquire_on_loss=True), holder("n2"), holder("n3")),
        faults=(
            Pause(node="n3", at=20, duration=6, in_call=True),
            Partition(node="n3", at=26.2, duration=40),
        ),
        duration=120,
        latency=0.05,
    )


def rough(seed: int) -> Scenario:
    """Every fault at once on three nodes holding three keys each."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(holder("n1"), holder("n2", reacquire_on_loss=True, rate=1.01), holder("n3")),
        faults=(
            Pause(node="n1", at=12, duration=14),
            Partition(node="n2", at=30, duration=12, hang=11),
            StoreErrors(node="n3", at=40, duration=30),
            Takeover(node="n2", at=55),
            Crash(node="n1", at=70, restart_after=5),
        ),
        duration=150,
        latency=0.05,
    )


def hung_renew(seed: int = 1) -> Scenario:
    """n3 (which takes every key first) is cut off at 20 s; its calls hang 12 s, longer
    than what is left of its renew deadline."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(holder("n1"), holder("n2", reacquire_on_loss=True), holder("n3")),
        faults=(Partition(node="n3", at=20, duration=30, hang=12),),
        duration=120,
        latency=0.05,
    )


def held_keys(outcome: SimulationOutcome) -> set[str]:
    return {belief.key for belief in outcome.history.beliefs}


@pytest.mark.parametrize(
    "scenario", [cut_off(1), slow_reply(1), hung_renew(1), *map(rough, range(8))]
)
def test_nodes_with_several_auto_renewed_locks_keep_every_invariant(scenario: Scenario) -> None:
    outcome = run_scenario(scenario)

    assert outcome.ok, outcome.report()
    assert held_keys(outcome) == set(KEYS)
    holders = {belief.holder.split("#")[0] for belief in outcome.history.beliefs}
    assert len(holders) >= 2  # the keys changed hands


def test_a_holding_is_renewed_by_the_scheduler_through_the_world() -> None:
    outcome = run_scenario(cut_off(1))

    # n3 took the keys at the start and kept them renewed until it was cut off at 20 s:
    first = [b for b in outcome.history.beliefs if b.holder == "n3" and b.start < 1_000_000]
    assert {b.key for b in first} == set(KEYS)
    assert all(b.end > 20_000_000 for b in first)  # past one renew deadline: renewed
    renewals = [s for s in outcome.history.store if s.owner == "n3" and s.time < 20_000_000]
    assert len(renewals) >= 3 * 5  # each key renewed several times, through the world
    # ...then lost them (cut off) and others took every key:
    assert {b.key for b in outcome.history.beliefs if b.holder != "n3"} == set(KEYS)


def overdue_phases(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The renewers' phases each time a renew deadline came before they went on."""
    phases: list[str] = []
    overdue = Renewer._overdue

    def spy(self: Renewer, ticket: int) -> None:
        phases.append(self._phase.value)
        overdue(self, ticket)

    monkeypatch.setattr(Renewer, "_overdue", spy)
    return phases


def test_the_deadline_fires_while_the_renew_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's timer runs while the node waits for its hung renew: at the renew
    deadline it records the loss itself (the worker's late reply is then not trusted)."""
    phases = overdue_phases(monkeypatch)

    outcome = run_scenario(hung_renew(1))

    assert outcome.ok, outcome.report()
    assert "working" in phases  # a deadline came while its renew was in flight
    assert {b.key for b in outcome.history.beliefs if b.holder != "n3"} == set(KEYS)


def test_mutation_timers_that_wait_for_the_node_are_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above fails if the world ran a node's timers only when its call returned."""
    monkeypatch.setattr(HoldingsProcess, "timers_due_at", lambda self: math.inf)
    phases = overdue_phases(monkeypatch)

    run_scenario(hung_renew(1))

    assert "working" not in phases


def test_a_run_leaves_nothing_scheduled_or_running_in_the_real_process() -> None:
    renewers, entries = len(running()), scheduler.scheduled()
    outcome = run_scenario(rough(3))  # with a crash and a restart

    assert any(event.kind == "crashed" for event in outcome.history.events)
    assert (len(running()), scheduler.scheduled()) == (renewers, entries)


@pytest.fixture
def failed_renew_counts_as_renewed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A renew that failed (store unreachable) is taken as renewed: trust goes on."""
    renewed = RenewalRules.renewed

    def broken(
        self: RenewalRules, action: Renew, started_at: float, outcome: LeaseRecord | Failure | None
    ) -> Lost | None:
        holding = self.renewal._keeper.holding
        if isinstance(outcome, Failure) and holding is not None:
            outcome = holding.record
        return renewed(self, action, started_at, outcome)

    monkeypatch.setattr(RenewalRules, "renewed", broken)


@pytest.fixture
def trust_from_the_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust is measured from when the renew's reply came back, not from when it was sent."""
    renewed = RenewalRules.renewed

    def broken(
        self: RenewalRules, action: Renew, started_at: float, outcome: LeaseRecord | Failure | None
    ) -> Lost | None:
        return renewed(self, action, self._clock.monotonic(), outcome)

    monkeypatch.setattr(RenewalRules, "renewed", broken)


@pytest.mark.usefixtures("failed_renew_counts_as_renewed")
def test_mutation_a_failed_renew_taken_as_renewed_is_caught() -> None:
    outcome = run_scenario(cut_off(1))

    assert {"lease", "exclusion"} <= kinds(outcome), outcome.report()
    assert {v.nodes[0] for v in outcome.violations if v.kind == "lease"} == {"n3"}


@pytest.mark.usefixtures("trust_from_the_reply")
def test_mutation_trust_measured_from_the_reply_is_caught() -> None:
    outcome = run_scenario(slow_reply(1))

    assert "lease" in kinds(outcome), outcome.report()


def test_a_nodes_holdings_renew_together_through_the_world(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[int] = []
    renew_many = FaultInjectingBackend.renew_many

    def counted(self: FaultInjectingBackend, items: Any) -> Any:
        batches.append(len(items))
        return renew_many(self, items)

    monkeypatch.setattr(FaultInjectingBackend, "renew_many", counted)
    outcome = run_scenario(cut_off(1))

    assert outcome.ok, outcome.report()
    assert batches.count(3) >= 5  # n3's three keys, renewed in one call each interval


def test_a_store_answering_a_batch_out_of_order_makes_no_two_holders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broken third-party store: each item of a batch gets the next item's answer.
    renew_many = FaultInjectingBackend.renew_many
    rotated: list[int] = []

    def out_of_order(self: FaultInjectingBackend, items: Any) -> Any:
        records = renew_many(self, items)
        rotated.append(len(records))
        return records[1:] + records[:1]

    monkeypatch.setattr(FaultInjectingBackend, "renew_many", out_of_order)
    for scenario in (cut_off(1), slow_reply(1), hung_renew(1), *map(rough, range(4))):
        outcome = run_scenario(scenario)
        assert outcome.ok, outcome.report()
    assert rotated  # the broken answers were given, and taken for what they are
