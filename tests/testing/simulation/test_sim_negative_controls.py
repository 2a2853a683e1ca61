"""Negative controls: break the safety inequality on purpose and watch the checkers fire.

A checker that never fires proves nothing. These tests step outside the
bounds the library enforces, in ways that only a test would, and show that
the simulation then finds the double leadership the bounds exist to prevent.
"""

from __future__ import annotations

import dataclasses

import pytest

from mongoelector.testing.simulation import (
    LEADER,
    NodeSpec,
    Partition,
    Pause,
    Scenario,
    SimulationConfig,
    SimulationFailure,
    draw_scenario,
    run_scenario,
)
from mongoelector.timing import LeaseTiming


def kinds(outcome_violations: tuple[object, ...]) -> set[str]:
    return {violation.kind for violation in outcome_violations}  # type: ignore[attr-defined]


def test_a_clock_drifting_beyond_the_bound_leads_to_double_leadership() -> None:
    # Tight timing, safe for 1 % drift; n1's clock runs 20 % slow.
    timing = LeaseTiming(ttl=15.0, renew_deadline=14.5, retry_period=2.0, max_drift=0.01)
    scenario = Scenario(
        seed=1,
        timing=timing,
        nodes=(NodeSpec(name="n1", rate=0.8), NodeSpec(name="n2")),
        faults=(Partition(node="n1", at=10.0, duration=30.0),),
        duration=60.0,
        unsafe=True,  # test-only: skip the drift-bound check
    )

    outcome = run_scenario(scenario)

    assert {"exclusion", "lease"} <= kinds(outcome.violations)
    exclusion = next(v for v in outcome.violations if v.kind == "exclusion")
    assert exclusion.nodes == ("n1", "n2")


def test_the_scenario_refuses_such_a_clock_unless_told_it_is_a_negative_control() -> None:
    timing = LeaseTiming(ttl=15.0, renew_deadline=14.5, retry_period=2.0, max_drift=0.01)

    with pytest.raises(ValueError, match=r"rate=0\.8, outside the drift bound"):
        Scenario(seed=1, timing=timing, nodes=(NodeSpec(name="n1", rate=0.8),))


def test_random_schedules_with_clocks_beyond_the_bound_are_caught() -> None:
    config = SimulationConfig(max_nodes=4)
    caught = 0
    for seed in range(150):
        drawn = draw_scenario(seed, config)
        slow = tuple(dataclasses.replace(node, rate=0.75) for node in drawn.nodes)
        outcome = run_scenario(dataclasses.replace(drawn, nodes=slow, unsafe=True))
        caught += "exclusion" in kinds(outcome.violations)
    assert caught >= 10


def test_a_renew_deadline_longer_than_the_lease_leads_to_double_leadership(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LeaseTiming (used by the scenario and by every elector) refuses this;
    # switching its validation off is something only a test would do.
    monkeypatch.setattr(LeaseTiming, "__post_init__", lambda self: None)
    timing = LeaseTiming(ttl=15.0, renew_deadline=20.0, retry_period=2.0)
    scenario = Scenario(
        seed=1,
        timing=timing,
        nodes=(NodeSpec(name="n1"), NodeSpec(name="n2"), NodeSpec(name="n3")),
        faults=(Pause(node=LEADER, at=5.0, duration=45.0),),
        duration=60.0,
    )

    outcome = run_scenario(scenario)

    assert {"exclusion", "lease"} <= kinds(outcome.violations)
    failure = SimulationFailure(outcome)
    text = str(failure)
    assert text.startswith("simulation seed 1 (scenario given, not drawn): ")
    assert "VIOLATION exclusion: n1 (token 1) and n" in text
    assert "\n!" in text  # the timeline marks where it happened
