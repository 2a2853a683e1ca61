"""Scenarios and drawn schedules: validated plain data, the same for the same seed."""

from __future__ import annotations

import pytest

from mongoelector.testing.simulation import (
    LEADER,
    Crash,
    LockBehaviour,
    NodeKind,
    NodeSpec,
    Partition,
    Pause,
    Scenario,
    SimulationConfig,
    StoreErrors,
    Takeover,
    draw_scenario,
    rate_bounds,
)
from mongoelector.testing.simulation.scenario import fault_end
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)


def test_a_scenario_knows_when_its_last_fault_ends() -> None:
    scenario = Scenario(
        seed=0,
        timing=TIMING,
        nodes=(NodeSpec(name="n1"),),
        faults=(
            Pause(node="n1", at=5.0, duration=10.0),
            Crash(node="n1", at=1.0, restart_after=20),
        ),
    )

    assert scenario.last_fault_end() == 21.0
    assert fault_end(Partition(node="n1", at=2.0, duration=3.0)) == 5.0


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Pause(node="", at=0, duration=1), TypeError, "node"),
        (lambda: Pause(node="n1", at=-1, duration=1), ValueError, "at"),
        (lambda: Pause(node="n1", at=0, duration=0), ValueError, "duration"),
        (lambda: Partition(node="n1", at=0, duration=1, hang=0), ValueError, "hang"),
        (lambda: StoreErrors(node="n1", at=0, duration=1, probability=2), ValueError, "probab"),
        (lambda: NodeSpec(name="@x"), ValueError, "'@x'"),
        (lambda: NodeSpec(name="a#2"), ValueError, "'a#2'"),
        (lambda: NodeSpec(name="n1", kind=NodeKind.LOCK), ValueError, "LockBehaviour"),
        (
            lambda: NodeSpec(name="n1", lock=LockBehaviour(hold=1, touch_every=1, retry_every=1)),
            ValueError,
            "an elector has none",
        ),
        (lambda: LockBehaviour(hold=0, touch_every=1, retry_every=1), ValueError, "hold"),
        (
            lambda: Scenario(seed=0, timing=TIMING, nodes=(NodeSpec(name="a"), NodeSpec(name="a"))),
            ValueError,
            "unique",
        ),
        (
            lambda: Scenario(
                seed=0,
                timing=TIMING,
                nodes=(NodeSpec(name="a"),),
                faults=(Pause(node="b", at=0, duration=1),),
            ),
            ValueError,
            "unknown node",
        ),
        (lambda: Scenario(seed="1", timing=TIMING, nodes=(NodeSpec(name="a"),)), TypeError, "seed"),
        (lambda: Scenario(seed=0, timing=TIMING, nodes=()), ValueError, "at least one node"),
        (lambda: SimulationConfig(min_nodes=3, max_nodes=2), ValueError, "min_nodes"),
        (lambda: SimulationConfig(leader_bias=1.5), ValueError, "leader_bias"),
    ],
)
def test_bad_values_are_refused_naming_them(build: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build()  # type: ignore[operator]


def test_faults_may_target_whoever_leads() -> None:
    scenario = Scenario(
        seed=0,
        timing=TIMING,
        nodes=(NodeSpec(name="a"),),
        faults=(Pause(node=LEADER, at=0, duration=1),),
    )

    assert scenario.faults[0].node == LEADER


def test_the_same_seed_draws_the_same_scenario() -> None:
    assert draw_scenario(42) == draw_scenario(42)
    assert draw_scenario(42) != draw_scenario(43)


def test_drawn_scenarios_stay_within_the_configured_bounds() -> None:
    config = SimulationConfig(min_nodes=3, max_nodes=4, max_drift=0.05, max_pause=2.0)
    slowest, fastest = rate_bounds(0.05)
    for seed in range(200):
        scenario = draw_scenario(seed, config)
        electors = [n for n in scenario.nodes if n.kind is NodeKind.ELECTOR]
        assert 3 <= len(electors) <= 4
        assert all(slowest <= n.rate <= fastest for n in scenario.nodes)
        takeovers = [fault for fault in scenario.faults if isinstance(fault, Takeover)]
        assert len(scenario.faults) - len(takeovers) <= config.max_faults
        assert len(takeovers) <= config.max_takeovers
        timing = scenario.timing
        assert timing.renew_deadline * 1.05 < timing.ttl
        for fault in scenario.faults:
            assert fault.at <= config.fault_window * timing.ttl
            if isinstance(fault, Pause):
                assert fault.duration <= 2.0 * timing.ttl


def test_draws_include_renew_deadlines_at_the_edge_of_the_inequality() -> None:
    margins = [
        draw_scenario(seed).timing.ttl / draw_scenario(seed).timing.renew_deadline
        for seed in range(30)
    ]

    assert min(margins) == pytest.approx(1.01, rel=1e-3)
