"""The simulated world: scripted scenarios unfold as the faults say, and are recorded exactly."""

from __future__ import annotations

import pytest

from mongoelector.testing.simulation import (
    ELECTION_KEY,
    LEADER,
    LOCK_KEY,
    Crash,
    LockBehaviour,
    NodeKind,
    NodeSpec,
    Partition,
    Pause,
    Resign,
    Scenario,
    Stop,
    StoreErrors,
    World,
    run_scenario,
)
from mongoelector.timing import LeaseTiming

S = 1_000_000  # microseconds per second
TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)


def scenario(*faults: object, count: int = 2, **changes: object) -> Scenario:
    options: dict[str, object] = {
        "seed": 7,
        "timing": TIMING,
        "nodes": tuple(NodeSpec(name=f"n{i + 1}") for i in range(count)),
        "faults": faults,
        "duration": 90.0,
    }
    options.update(changes)
    return Scenario(**options)  # type: ignore[arg-type]


def holdings(world_scenario: Scenario) -> list[tuple[str, int, int, int]]:
    outcome = run_scenario(world_scenario)
    assert outcome.violations == (), outcome.report()
    return [(b.holder, b.token, b.start, b.end) for b in outcome.history.beliefs]


def test_without_faults_the_first_node_leads_for_the_whole_run() -> None:
    assert holdings(scenario()) == [("n1", 1, 0, 90 * S)]


def test_a_paused_leader_stops_believing_at_its_deadline_and_another_takes_over() -> None:
    # n1 last renewed at 12 s; it believes until 12 + 10 s even though it is paused.
    # The store lets n2 in at 12 + 15 s, on n2's first poll after that (every 2 s).
    result = holdings(scenario(Pause(node="n1", at=13.0, duration=45.0)))

    assert result[0] == ("n1", 1, 0, 22 * S)
    assert result[1][:3] == ("n2", 2, 28 * S)


def test_belief_ends_at_the_deadline_as_measured_by_the_nodes_own_clock() -> None:
    slow = 1 / 1.01  # 10 s on this clock take 10.1 true seconds
    nodes = (NodeSpec(name="n1", rate=slow), NodeSpec(name="n2"))
    result = holdings(scenario(Pause(node="n1", at=1.0, duration=45.0), nodes=nodes))

    assert result[0][:3] == ("n1", 1, 0)
    assert result[0][3] == 10_100_000


def test_a_node_cut_off_from_the_store_steps_down_at_its_deadline() -> None:
    world = World(scenario(Partition(node="n1", at=1.0, duration=40.0)))
    history = world.run()

    n1, n2 = history.beliefs[0], history.beliefs[1]
    assert (n1.holder, n1.end) == ("n1", 10 * S)
    assert n2.holder == "n2" and n2.start >= 15 * S
    failed = [e for e in history.events if e.kind == "call" and e.node == "n1"]
    assert failed and all(e.detail.endswith("-> BackendUnavailable (partitioned)") for e in failed)


def test_while_one_node_hangs_in_a_call_the_others_keep_acting() -> None:
    # n1's renew at 2 s hangs for 30 s; n2 takes the lease over meanwhile.
    result = holdings(scenario(Partition(node="n1", at=1.0, duration=1.5, hang=30.0)))

    assert result[0] == ("n1", 1, 0, 10 * S)
    holder, token, start, _ = result[1]
    assert (holder, token) == ("n2", 2)
    assert 15 * S <= start < 32 * S


def test_ambiguous_store_errors_are_injected_both_applied_and_not() -> None:
    history = World(scenario(StoreErrors(node="n1", at=0.0, duration=60.0, probability=1.0))).run()

    details = [e.detail for e in history.events if e.kind == "call"]
    assert any("(applied, reply lost)" in d for d in details)
    assert any("(not applied, reply lost)" in d for d in details)


def test_a_crashed_node_stops_believing_at_once_and_restarts_as_a_new_incarnation() -> None:
    result = holdings(scenario(Crash(node="n1", at=5.0, restart_after=1.0)))

    assert result[0] == ("n1", 1, 0, 5 * S)
    assert result[1][:2] == ("n2", 2)
    assert result[1][2] >= 15 * S  # the crashed node's lease had to run out


def test_a_stopped_node_releases_so_another_takes_over_within_a_retry_period() -> None:
    result = holdings(scenario(Stop(node="n1", at=5.0)))

    assert result[0] == ("n1", 1, 0, 5 * S)
    assert result[1][:2] == ("n2", 2)
    assert result[1][2] <= 5 * S + 2 * S


def test_a_node_that_resigns_keeps_taking_part() -> None:
    result = holdings(scenario(Resign(node="n1", at=5.0), Stop(node="n2", at=20.0)))

    assert [(holder, token) for holder, token, _, _ in result] == [
        ("n1", 1),
        ("n2", 2),
        ("n1", 3),
    ]


def test_faults_aimed_at_the_leader_hit_whoever_leads_then() -> None:
    history = World(scenario(Crash(node=LEADER, at=5.0), Crash(node=LEADER, at=40.0))).run()

    crashed = [e.node for e in history.events if e.kind == "crashed"]
    assert crashed == ["n1", "n2"]


def test_a_pause_inside_a_call_delays_the_reply_after_the_store_applied_it() -> None:
    history = World(scenario(Pause(node="n1", at=1.0, duration=30.0, in_call=True))).run()

    paused = [e for e in history.events if e.kind == "paused"]
    assert len(paused) == 1
    assert paused[0].time == 2 * S and paused[0].until == 32 * S
    assert "inside renew, after it applied" in paused[0].detail
    renewed = [s for s in history.store if s.owner == "n1" and s.time == 2 * S]
    assert renewed and renewed[0].expires == 17 * S


def test_lock_users_take_turns_on_their_own_key() -> None:
    behaviour = LockBehaviour(hold=20.0, touch_every=5.0, retry_every=3.0)
    nodes = tuple(NodeSpec(name=f"n{i}", kind=NodeKind.LOCK, lock=behaviour) for i in (1, 2))
    outcome = run_scenario(scenario(nodes=nodes))

    assert outcome.ok, outcome.report()
    beliefs = outcome.history.beliefs
    assert {b.key for b in beliefs} == {LOCK_KEY}
    assert {b.holder for b in beliefs} == {"n1", "n2"}
    assert [b.token for b in beliefs] == sorted(b.token for b in beliefs)


def test_the_run_is_extended_until_liveness_can_be_judged() -> None:
    history = World(scenario(Pause(node="n1", at=80.0, duration=30.0))).run()

    assert history.quiet_since == 110 * S
    assert history.end >= history.quiet_since + 15 * S + 2 * S


def test_the_same_scenario_gives_the_same_history_byte_for_byte() -> None:
    chosen = scenario(
        Partition(node=LEADER, at=3.0, duration=20.0, hang=7.0),
        StoreErrors(node="n2", at=10.0, duration=30.0),
        Crash(node=LEADER, at=30.0, restart_after=3.0),
        count=4,
        latency=0.05,
    )

    first, second = World(chosen).run().text(), World(chosen).run().text()

    assert first == second
    assert ELECTION_KEY in first and "n1" in first


def test_scenarios_with_different_seeds_draw_different_latencies() -> None:
    first = World(scenario(latency=0.05)).run().text()
    second = World(scenario(latency=0.05, seed=8)).run().text()

    assert first.splitlines()[1:] != second.splitlines()[1:]


def test_a_node_that_keeps_asking_to_act_at_once_is_reported() -> None:
    from mongoelector.testing.simulation import SimulationError, world

    original = world.ElectorProcess.wake_at
    try:
        world.ElectorProcess.wake_at = lambda self: -float("inf")  # type: ignore[method-assign]
        with pytest.raises(SimulationError, match="acted 1001 times at one instant"):
            World(scenario()).run()
    finally:
        world.ElectorProcess.wake_at = original  # type: ignore[method-assign]
