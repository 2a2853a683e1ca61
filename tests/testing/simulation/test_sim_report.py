"""A run reports its seed, how to replay it, a timeline and a log."""

from __future__ import annotations

import pytest

from mongoelector.testing.simulation import (
    Crash,
    NodeSpec,
    Pause,
    Scenario,
    SimulationConfig,
    SimulationFailure,
    Violation,
    check_seeds,
    render_log,
    render_timeline,
    replay,
    run_scenario,
    run_seed,
    runner,
)
from mongoelector.testing.simulation.__main__ import main
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)
SCRIPTED = Scenario(
    seed=5,
    timing=TIMING,
    nodes=(NodeSpec(name="n1"), NodeSpec(name="n2"), NodeSpec(name="n3")),
    faults=(Crash(node="n1", at=20.0, restart_after=20.0), Pause(node="n2", at=50.0, duration=10)),
    duration=96.0,
)


def test_the_timeline_has_a_row_per_machine_showing_beliefs_and_faults() -> None:
    history = run_scenario(SCRIPTED).history

    lines = render_timeline(history, width=48).splitlines()

    assert lines[0].startswith("time  |0.00s")
    rows = {line[:6].strip(): line[6:] for line in lines[1:4]}
    assert set(rows) == {"n1", "n2", "n3"}
    assert all(len(row) == 48 for row in rows.values())
    assert rows["n1"].startswith("#")
    assert "X" in rows["n1"] and "P" in rows["n2"]
    assert "#" in rows["n2"] or "#" in rows["n3"]
    assert lines[-1].strip().startswith("# holds/leads")


def test_the_timeline_marks_violations() -> None:
    history = run_scenario(SCRIPTED).history
    violation = Violation(kind="exclusion", time=history.end // 2, nodes=(), message="x")

    lines = render_timeline(history, [violation], width=40).splitlines()

    assert lines[-2].startswith("!")
    assert lines[-2][6:].index("^") == 20


def test_the_log_leaves_out_renewals_unless_asked() -> None:
    history = run_scenario(SCRIPTED).history

    short, full = render_log(history), render_log(history, renewals=True)

    assert len(full.splitlines()) > len(short.splitlines())
    assert "n1 crashed until 40.000000" in short
    assert "n1#2 started" in short


def test_a_failure_message_gives_the_seed_and_the_command_that_replays_it() -> None:
    outcome = run_seed(12)
    failing = runner.SimulationOutcome(
        history=outcome.history,
        violations=(Violation(kind="exclusion", time=0, nodes=("n1", "n2"), message="both"),),
        config=SimulationConfig(),
    )

    text = str(SimulationFailure(failing))

    assert text.startswith(
        "simulation seed 12 (bounds: SimulationConfig()): 1 violation(s): exclusion\n"
    )
    assert "python -m mongoelector.testing.simulation 12" in text
    assert "0.000000  VIOLATION exclusion: both" in text
    assert "scenario seed=12" in text


def test_with_a_custom_config_the_replay_hint_is_python_that_rebuilds_it() -> None:
    config = SimulationConfig(max_nodes=3, latency=0.0)
    hint = run_seed(3, config).replay_hint()

    assert run_seed(3, config).title() == (
        "simulation seed 3 (bounds: SimulationConfig(max_nodes=3, latency=0.0))"
    )
    call = hint.removeprefix("replay: mongoelector.testing.replay")
    seed, rebuilt = eval(call, {"SimulationConfig": SimulationConfig})
    assert (seed, rebuilt) == (3, config)


def test_check_seeds_stops_at_the_first_failing_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_seed_3(history: object) -> list[Violation]:
        seed = history.scenario.seed  # type: ignore[attr-defined]
        return [Violation(kind="tokens", time=0, nodes=(), message="!")] if seed == 3 else []

    monkeypatch.setattr(runner, "check_all", fail_seed_3)

    with pytest.raises(SimulationFailure) as raised:
        check_seeds(range(10))

    assert raised.value.outcome.scenario.seed == 3
    summary = check_seeds(range(10), fail_fast=False)
    assert summary.schedules == 10 and summary.violations == 1
    assert "schedules: 10, failing: 1, violations: 1" in summary.render()


def test_replay_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = replay(4)

    assert outcome.ok
    assert capsys.readouterr().out.startswith(
        "simulation seed 4 (bounds: SimulationConfig()): no violations\n"
    )


def test_the_command_line_replays_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["4", "5", "--width", "40"]) == 0

    out = capsys.readouterr().out
    assert "simulation seed 4 (bounds: SimulationConfig()): no violations" in out
    assert "simulation seed 5 (bounds: SimulationConfig()): no violations" in out
