"""Callers that are not gentle: the simulation's lock users and electors act like real ones.

Lock users forget a failed release, or acquire again at once after one; two
callers share one ``Lock``; lock users take the lock over by force; electors'
callbacks call ``release()`` and ``stop()``. The drawn schedules of every CI
run include all of these (test_sim_many_seeds.py checks they were exercised);
here are the scripted cases, each of which fails if the bug it was written
for comes back (see test_sim_mutations.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mongoelector.testing.simulation import (
    LEADER,
    Callback,
    NodeSpec,
    Resign,
    Scenario,
    SimulationConfig,
    check_seeds,
    draw_scenario,
    run_scenario,
    run_seed,
)
from tests.testing.simulation import rough_callers
from tests.testing.simulation.rough_callers import TIMING

SCRIPTED: list[tuple[Callable[[int], Scenario], int]] = [
    (rough_callers.late_release, 8),
    (rough_callers.shared_object, 1),
    (rough_callers.lapse, 1),
    (rough_callers.ambiguous_acquire, 1),
    (rough_callers.takeover, 1),
]


@pytest.mark.parametrize(("make", "seed"), SCRIPTED, ids=[make.__name__ for make, _ in SCRIPTED])
def test_scripted_rough_callers_break_no_invariant(
    make: Callable[[int], Scenario], seed: int
) -> None:
    outcome = run_scenario(make(seed))

    assert outcome.ok, outcome.report()


def test_a_late_release_lands_while_the_same_lock_holds_again() -> None:
    history = run_scenario(rough_callers.late_release(8)).history

    late = [event for event in history.events if event.kind == "late write"]
    assert [event.detail for event in late] == ["release applied"]
    n1 = [belief for belief in history.beliefs if belief.holder == "n1"]
    assert any(belief.start < late[0].time < belief.end for belief in n1)


def test_a_forced_takeover_fences_the_holder_it_displaces() -> None:
    history = run_scenario(rough_callers.takeover(1)).history

    forced = [state for state in history.store if state.forced]
    assert [(state.owner, state.token) for state in forced] == [("n2", 2), ("n1", 3)]
    tokens = [belief.token for belief in sorted(history.beliefs, key=lambda b: b.start)]
    assert tokens == sorted(tokens)


@pytest.mark.parametrize("callback", [c for c in Callback if c is not Callback.STOP_ON_LOSS])
def test_electors_whose_callbacks_release_or_stop_stay_safe_and_live(callback: Callback) -> None:
    scenario = Scenario(
        seed=1,
        timing=TIMING,
        nodes=(
            NodeSpec(name="n1", callback=callback),
            NodeSpec(name="n2", callback=callback),
            NodeSpec(name="n3"),
        ),
        faults=tuple(Resign(node=LEADER, at=at) for at in (5.0, 25.0, 45.0)),
        duration=90.0,
        latency=0.05,
    )

    outcome = run_scenario(scenario)

    assert outcome.ok, outcome.report()
    assert any(callback.value in event.detail for event in outcome.history.events)


@pytest.mark.parametrize("seed", [4, 16, 35])
def test_stop_from_on_leader_loss_inside_poll(seed: int) -> None:
    """These seeds once made poll() go on after stop() from on_leader_loss inside it."""
    config = SimulationConfig(stop_on_loss_callbacks=True)
    assert any(n.callback is Callback.STOP_ON_LOSS for n in draw_scenario(seed, config).nodes)

    outcome = run_seed(seed, config)

    assert outcome.ok, outcome.report()


def test_the_issue_configuration_with_callers_that_do_not_resend() -> None:
    """Issue 12: seed 1834 of this configuration showed a 3.97 s exclusion violation."""
    config = SimulationConfig(late_writes=0.5, lock_users=1, leader_bias=0, max_nodes=3)

    summary = check_seeds([1834, *range(150)], config, fail_fast=False)

    assert summary.violations == 0, summary.failures[0].report() if summary.failures else ""
    assert summary.events["late write"] > 0
    assert summary.callers["release: forget"] > 0
    assert summary.callers["release: reacquire"] > 0


@pytest.mark.parametrize(
    ("seed", "late_writes"), [(1607, 0.0), (1838, 0.0), (715, 0.5), (4375, 0.5), (5358, 0.5)]
)
def test_seeds_that_failed_while_takeovers_were_added_replay_clean(
    seed: int, late_writes: float
) -> None:
    """1607, 1838, 715: a forced acquire released its object's own trusted holding
    (fixed in Lock). 4375, 5358: a grant whose reply was still on its way when a
    forced takeover landed (the checkers now count that holder as displaced)."""
    outcome = run_seed(seed, SimulationConfig(late_writes=late_writes))

    assert outcome.ok, outcome.report()
    assert any(event.kind == "takes over" for event in outcome.history.events)
