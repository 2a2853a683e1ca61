"""Started electors beside auto-renewed locks, run by the process scheduler, in the simulation.

Each node of these scenarios holds three auto-renewed locks and runs started
electors (``LeaderElector(...).start()``) for ``election`` and ``election-2``
(and a hand-polled elector node competes for ``election`` too). The node's
scheduler is driven by hand: a leading elector's renewals go out in the node's
``renew_many`` batches with its locks', following ones read their records with
one ``get_many`` and try by ``compare_and_set``; every call goes through the
world (time passes inside it, faults apply). Every key is checked for
exclusion, tokens and leases. Mutation tests break the elector's batched paths
on purpose and show that the simulation then finds a violation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from mongoelector._common.batches import Outcome
from mongoelector._sync import elector as elector_module
from mongoelector._sync import scheduler
from mongoelector._sync.elector import _Batched
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.core.elector_machine import ElectorMachine, Role, Step
from mongoelector.core.events import Renew
from mongoelector.testing.simulation import (
    FaultInjectingBackend,
    SimulationOutcome,
    check_seeds,
    draw_scenario,
    run_scenario,
)
from mongoelector.testing.simulation.holdings import HoldingsProcess
from mongoelector.testing.simulation.scenario import (
    LEADER,
    Crash,
    NodeSpec,
    Partition,
    Pause,
    Resign,
    Scenario,
    Stop,
    StoreErrors,
    Takeover,
)
from tests.testing.simulation.lock_nodes import TIMING, kinds
from tests.testing.simulation.lock_nodes import holder as lock_node


def holder(name: str, *, rate: float = 1.0, reacquire_on_loss: bool = False) -> NodeSpec:
    """A node holding three auto-renewed locks and running two started electors."""
    return lock_node(name, rate=rate, reacquire_on_loss=reacquire_on_loss, electors=2)


NODES = (holder("n1"), holder("n2", reacquire_on_loss=True), holder("n3"))


def cut_off(seed: int = 1) -> Scenario:
    """n3 leads both elections first (it polls first); it is cut off (calls fail at once)
    for two leases, so the others take over after reading the records together."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=NODES,
        faults=(Partition(node="n3", at=20, duration=30),),
        duration=120,
        latency=0.05,
    )


def rough(seed: int) -> Scenario:
    """Every fault at once, with a hand-polled elector node competing for ``election``."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(
            holder("n1"),
            holder("n2", reacquire_on_loss=True, rate=1.01),
            holder("n3", rate=0.995),
            NodeSpec(name="n4"),
        ),
        faults=(
            Pause(node="n3", at=5, duration=14),
            Partition(node="n2", at=30, duration=12, hang=11),
            StoreErrors(node="n1", at=40, duration=30),
            Pause(node="n1", at=48, duration=4, in_call=True),
            Takeover(node="n2", at=55),
            Resign(node="n3", at=60),
            Crash(node="n1", at=70, restart_after=5),
            Stop(node="n2", at=90, restart_after=3),
        ),
        duration=150,
        latency=0.05,
    )


def leaders(outcome: SimulationOutcome, key: str) -> set[str]:
    return {b.holder.split("#")[0] for b in outcome.history.beliefs if b.key == key}


@dataclasses.dataclass
class Calls:
    """The batch calls the nodes made, counted at their store links."""

    renew_many_with_electors: int = 0
    mixed: int = 0  # renew_many with an elector's and a lock's renewal
    get_many: int = 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    counted = Calls()
    renew_many, get_many = FaultInjectingBackend.renew_many, FaultInjectingBackend.get_many

    def renew_many_counted(self: FaultInjectingBackend, items: Any) -> Any:
        electing = sum(item.key.startswith("election") for item in items)
        counted.renew_many_with_electors += electing > 0
        counted.mixed += 0 < electing < len(items)
        return renew_many(self, items)

    def get_many_counted(self: FaultInjectingBackend, keys: Any) -> Any:
        counted.get_many += 1
        return get_many(self, keys)

    monkeypatch.setattr(FaultInjectingBackend, "renew_many", renew_many_counted)
    monkeypatch.setattr(FaultInjectingBackend, "get_many", get_many_counted)
    yield counted


@pytest.mark.parametrize("scenario", [cut_off(1), *map(rough, range(6))])
def test_started_electors_beside_auto_renewed_locks_keep_every_invariant(
    scenario: Scenario,
) -> None:
    outcome = run_scenario(scenario)

    assert outcome.ok, outcome.report()
    assert leaders(outcome, "election-2") <= {"n1", "n2", "n3"}  # only started electors run it
    assert leaders(outcome, "election-2")


def test_leaders_renew_in_the_nodes_batches_and_followers_read_together(calls: Calls) -> None:
    outcome = run_scenario(cut_off(1))

    assert outcome.ok, outcome.report()
    assert "n3" in leaders(outcome, "election-2") and len(leaders(outcome, "election-2")) >= 2
    assert calls.renew_many_with_electors >= 5
    assert calls.mixed >= 5  # an elector's renewal in one call with its node's locks'
    assert calls.get_many >= 5  # followers (two keys per node) read with one call


def partitioned_reads(outcome: SimulationOutcome) -> list[str]:
    return [
        event.detail
        for event in outcome.history.events
        if event.kind == "call" and event.detail.startswith("get_many ->")
    ]


def test_a_batched_read_goes_through_the_world_and_its_faults() -> None:
    outcome = run_scenario(cut_off(1))

    assert partitioned_reads(outcome)  # n3's followers read while it was cut off: failed


def test_mutation_a_read_that_skips_the_world_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above fails if the store link's get_many went to the store directly."""

    def direct(self: FaultInjectingBackend, keys: Any) -> Any:
        return self._store.get_many(keys)  # type: ignore[attr-defined]

    monkeypatch.setattr(FaultInjectingBackend, "get_many", direct)

    assert not partitioned_reads(run_scenario(cut_off(1)))


def paused_leader() -> Scenario:
    """A pause aimed at ``@leader`` while only started electors lead."""
    return Scenario(
        seed=1,
        timing=TIMING,
        nodes=NODES,
        faults=(Pause(node=LEADER, at=20, duration=30),),
        duration=120,
        latency=0.05,
    )


def test_a_fault_aimed_at_the_leader_finds_a_node_whose_started_elector_leads() -> None:
    outcome = run_scenario(paused_leader())

    assert outcome.ok, outcome.report()
    [paused] = [event for event in outcome.history.events if event.kind == "paused"]
    assert any(
        b.key.startswith("election") and b.holder == paused.node and b.start < paused.time < b.end
        for b in outcome.history.beliefs
    )


def test_mutation_a_leader_resolution_blind_to_started_electors_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above fails if the world did not see started electors lead."""
    monkeypatch.setattr(HoldingsProcess, "leads", lambda self: False)

    outcome = run_scenario(paused_leader())

    assert not [event for event in outcome.history.events if event.kind == "paused"]
    assert [event for event in outcome.history.events if event.kind == "fault skipped"]


def test_a_run_leaves_no_elector_running_in_the_real_process() -> None:
    electors, entries = len(elector_module.running()), scheduler.scheduled()
    outcome = run_scenario(rough(3))  # with a crash, a stop and restarts

    assert {"crashed", "stops"} <= {event.kind for event in outcome.history.events}
    assert (len(elector_module.running()), scheduler.scheduled()) == (electors, entries)


def test_default_schedules_draw_started_electors_sometimes() -> None:
    drawn = [draw_scenario(seed) for seed in range(300)]
    counts = [
        node.lock.electors for scenario in drawn for node in scenario.nodes if node.lock is not None
    ]
    assert set(counts) == {0, 1, 2, 3}


@pytest.fixture
def takeover_without_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower that read a free or expired record leads at once, without compare_and_set."""
    observed = ElectorMachine.on_observe_result

    def broken(
        self: ElectorMachine, now: float, record: LeaseRecord | None, server_now: datetime
    ) -> Step:
        if self.role is Role.FOLLOWER and record is not None and not record.is_held(server_now):
            taken = dataclasses.replace(record, owner=self.owner, token=record.token + 1)
            return self._take(taken, now, now)
        return observed(self, now, record, server_now)

    monkeypatch.setattr(ElectorMachine, "on_observe_result", broken)


@pytest.fixture
def batched_failure_taken_as_renewed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader's renewal in a batch that was refused or failed is taken as renewed."""
    renewed = _Batched._batch_renewed

    def broken(
        self: _Batched, step: Renew, started_at: float, outcome: Outcome, answered_at: float
    ) -> None:
        holding = self._elector._machine.holding
        if not isinstance(outcome, LeaseRecord) and holding is not None:
            outcome = holding.record
        renewed(self, step, started_at, outcome, answered_at)

    monkeypatch.setattr(_Batched, "_batch_renewed", broken)


@pytest.mark.usefixtures("takeover_without_cas")
def test_mutation_a_follower_taking_over_without_cas_is_caught() -> None:
    found = set()
    for scenario in (cut_off(1), *map(rough, range(3))):
        found |= kinds(run_scenario(scenario))
    assert "lease" in found


@pytest.mark.usefixtures("batched_failure_taken_as_renewed")
def test_mutation_a_batched_renewal_failure_taken_as_renewed_is_caught() -> None:
    outcome = run_scenario(cut_off(1))

    assert {"lease", "exclusion"} <= kinds(outcome), outcome.report()
    assert "n3" in {v.nodes[0] for v in outcome.violations if v.kind == "lease"}


@pytest.mark.usefixtures("takeover_without_cas")
def test_mutation_takeover_without_cas_is_caught_by_default_schedules() -> None:
    """The drawn schedules reach the read path too: some seed of the first few hundred
    catches the mutation."""
    summary = check_seeds(range(400), fail_fast=False)
    assert summary.violations > 0
