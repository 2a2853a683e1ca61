"""A simulation run drawn as a timeline: every belief is a term, faults and violations marked."""

from __future__ import annotations

import dataclasses

import pytest

from mongoelector.picture import render_svg
from mongoelector.testing.simulation import (
    LEADER,
    Crash,
    NodeSpec,
    Partition,
    Pause,
    Scenario,
    SimulationConfig,
    draw_scenario,
    run_scenario,
    run_seed,
    timeline_picture,
)
from mongoelector.timing import LeaseTiming
from tests.picture.svg_reading import read_svg

TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)


def scripted(*faults: object, nodes: int = 3) -> Scenario:
    return Scenario(
        seed=3,
        timing=TIMING,
        nodes=tuple(NodeSpec(name=f"n{i + 1}") for i in range(nodes)),
        faults=faults,  # type: ignore[arg-type]
        duration=90.0,
    )


def test_each_belief_becomes_a_term_on_its_machine_lane() -> None:
    outcome = run_scenario(scripted(Crash(node=LEADER, at=20.0, restart_after=10.0)))
    history = outcome.history

    timeline = timeline_picture(history, outcome.violations)

    assert timeline.lanes == ("n1", "n2", "n3")
    expected = sorted((b.holder.split("#")[0], b.token) for b in history.beliefs)
    assert sorted((t.lane, t.token) for t in timeline.terms) == expected
    assert len(timeline.terms) >= 2  # the crash forced a second term
    assert [m.kind for m in timeline.markers] == ["crash"]
    assert [s.kind for s in timeline.spans] == ["down"]


def test_a_leader_cut_off_shows_its_renew_deadline_and_the_lease_it_left() -> None:
    outcome = run_scenario(scripted(Partition(node=LEADER, at=20.0, duration=40.0)))
    timeline = timeline_picture(outcome.history)

    first = min(timeline.terms, key=lambda term: term.start)
    assert first.renew_deadline == first.end  # it stepped down at its deadline...
    assert first.lease_end is not None and first.lease_end > first.end  # ...before the store let go
    assert first.renewals and all(first.start <= r <= first.end for r in first.renewals)
    later = [term for term in timeline.terms if term is not first]
    assert later and min(term.start for term in later) >= first.lease_end
    assert [s.kind for s in timeline.spans] == ["cut off"]


def test_a_healthy_leader_shows_no_deadline() -> None:
    outcome = run_scenario(scripted(nodes=2))
    [term] = timeline_picture(outcome.history).terms

    assert term.renew_deadline is None
    assert term.end == outcome.history.end / 1e6


def test_the_svg_of_a_faulty_run_shows_every_term_and_fault() -> None:
    outcome = run_scenario(
        scripted(Pause(node=LEADER, at=10.0, duration=30.0), Crash(node=LEADER, at=50.0))
    )
    timeline = timeline_picture(outcome.history)

    picture = read_svg(render_svg(timeline))

    assert len(timeline.terms) >= 2
    assert sorted(picture.terms()) == sorted((t.lane, t.token) for t in timeline.terms)
    assert sorted(picture.faults()) == ["down", "paused"]


@pytest.mark.parametrize("seed", [1, 4, 11])
def test_drawn_runs_with_lock_users_draw_every_belief(seed: int) -> None:
    outcome = run_seed(seed, SimulationConfig(lock_users=1.0))
    timeline = timeline_picture(outcome.history, outcome.violations)

    picture = read_svg(render_svg(timeline))

    assert len(picture.terms()) == len(outcome.history.beliefs)
    assert any(lane.endswith("(lock)") for lane in timeline.lanes)


def test_violations_are_marked_across_the_chart() -> None:
    drawn = draw_scenario(2, SimulationConfig(max_nodes=3))
    slow = tuple(dataclasses.replace(node, rate=0.7) for node in drawn.nodes)
    faults = (Partition(node=LEADER, at=5.0, duration=40.0),)
    outcome = run_scenario(dataclasses.replace(drawn, nodes=slow, faults=faults, unsafe=True))
    assert outcome.violations  # the negative control did break safety

    timeline = timeline_picture(outcome.history, outcome.violations)
    picture = read_svg(render_svg(timeline))

    assert timeline.title.endswith(f"{len(outcome.violations)} violation(s)")
    # the slow-clocked leader believed past the end of its lease, and the picture says so
    assert any(t.lease_end is not None and t.lease_end < t.end for t in timeline.terms)
    assert len(picture.all("line", "violation")) == len(outcome.violations)
