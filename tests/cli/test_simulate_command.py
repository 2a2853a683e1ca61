"""``mongoelector simulate`` runs the harness and prints its verdict; violations exit 1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mongoelector.cli import main
from mongoelector.cli import simulate as simulate_command
from mongoelector.cli.errors import CliError
from mongoelector.testing.simulation import LEADER, Crash, Partition, Pause, Scenario, run_scenario
from mongoelector.testing.simulation.__main__ import main as replay_seeds
from tests.picture.svg_reading import read_svg


def build(faults: list[object] | None, **changes: object) -> Scenario:
    options: dict[str, object] = {
        "nodes": 3,
        "seconds": 60.0,
        "seed": 4,
        "ttl": 15.0,
        "faults": faults,
    }
    options.update(changes)
    return simulate_command.build_scenario(**options)  # type: ignore[arg-type]


def test_the_scenario_has_the_nodes_length_and_faults_asked_for() -> None:
    pause = Pause(node=LEADER, at=20.0, duration=30.0)
    crash = Crash(node="n2", at=10.0, restart_after=5.0)

    scenario = build([pause, crash], nodes=5, seconds=90.0, ttl=10.0)

    assert [node.name for node in scenario.nodes] == ["n1", "n2", "n3", "n4", "n5"]
    assert scenario.duration == pytest.approx(90.0) and scenario.timing.ttl == 10.0
    assert scenario.faults == (crash, pause)  # in time order
    assert all(node.lock is None for node in scenario.nodes)


def test_random_is_the_default_and_none_means_none() -> None:
    assert build(None) == build(["random"])
    assert build(None).faults  # seed 4 draws some
    assert build(["none"]).faults == ()
    assert build(None, seed=5) != build(None)


def test_random_or_none_cannot_be_mixed_with_faults() -> None:
    with pytest.raises(CliError, match="--faults random cannot be combined"):
        build(["random", Pause(node="n1", at=1.0, duration=1.0)])


def test_a_fault_on_an_unknown_node_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--nodes", "2", "--faults", "crash:n7:10"])

    assert code == 2
    err = capsys.readouterr().err
    assert (
        "bad --faults: n7 crashes at 10s for good: there is no node n7 "
        "(the nodes are n1..n2, or 'leader')" in err
    )
    assert "Crash(" not in err


def test_a_passing_run_prints_the_timeline_and_verdict_and_draws_every_term(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    svg = tmp_path / "run.svg"
    args = ["--nodes", "3", "--seconds", "60", "--seed", "4", "--faults", "pause:leader:20:30"]

    code = main(["simulate", *args, "--svg", str(svg)])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("simulation seed 4 (bounds: --nodes 3 --seconds 60 --ttl 15): 3 electors")
    assert "faults: the leader pauses at 20s for 30s" in out
    assert "\nn1 " in out and "\nn3 " in out  # the text timeline
    assert "safety:   ok" in out and "liveness: ok" in out and "verdict:  PASS" in out
    outcome = run_scenario(build([Pause(node=LEADER, at=20.0, duration=30.0)]))
    expected = sorted((b.holder, b.token) for b in outcome.history.beliefs)
    assert len(expected) >= 2
    assert sorted(read_svg(svg.read_text()).terms()) == expected
    assert f"timeline picture ({len(expected)} terms) written to {svg}" in out


def test_a_run_that_breaks_an_invariant_exits_1_and_says_which(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = simulate_command.build_scenario

    def too_slow_a_clock(**options: object) -> Scenario:
        scenario = real(**options)  # type: ignore[arg-type]
        slow = tuple(dataclasses.replace(node, rate=0.7) for node in scenario.nodes)
        faults = (Partition(node=LEADER, at=5.0, duration=40.0),)
        return dataclasses.replace(scenario, nodes=slow, faults=faults, unsafe=True)

    monkeypatch.setattr(simulate_command, "build_scenario", too_slow_a_clock)

    code = main(["simulate", "--seed", "2", "--log"])

    out = capsys.readouterr().out
    assert code == 1
    assert "VIOLATION exclusion" in out and "verdict:  FAIL" in out
    assert "safety:   " in out and "violation(s)" in out.split("safety:   ", 1)[1].splitlines()[0]
    assert " store 'election': owner=" in out  # --log printed the store writes


def test_one_seed_run_both_ways_names_the_bounds_it_was_drawn_in(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    svg = tmp_path / "run.svg"
    assert main(["simulate", "--seed", "7", "--svg", str(svg)]) == 0
    cli = capsys.readouterr().out.splitlines()[0]
    assert replay_seeds(["7"]) == 0
    module = capsys.readouterr().out.splitlines()[0]

    # The same seed, two different scenarios: each heading says which bounds it is drawn in.
    assert cli.startswith("simulation seed 7 (bounds: --nodes 3 --seconds 60 --ttl 15): ")
    assert module == "simulation seed 7 (bounds: SimulationConfig()): no violations"
    titles = [text for text in read_svg(svg.read_text()).texts() if "seed" in text]
    assert titles[0].startswith("simulation seed 7 (bounds: --nodes 3 --seconds 60 --ttl 15): ")


def test_one_node_no_faults_wording(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--nodes", "1", "--seconds", "30", "--faults", "none"]) == 0

    out = capsys.readouterr().out
    assert ": 1 elector for 30s" in out and "1 electors" not in out
    assert "faults: none" in out
    assert "of the start, and from then on)" in out and "the last fault" not in out
