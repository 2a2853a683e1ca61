"""Writes that reach the store after their caller got ``AmbiguousOutcome``.

The storage protocol models an ambiguous write as applied before the error,
or never. A real store can apply it later (a request stuck in a queue, a
driver retry). ``StoreErrors(late=...)`` injects that, and the simulation
finds a double holding: an elector resigns, its release fails ambiguously but
is still on its way; the elector then finds its own record (same token) and
adopts it again with a renew; the late release lands and frees the record
while the elector believes it leads. The elector now never adopts again a
token it gave up, and never releases without a token, so the late release
cannot free a term it leads. The default configuration leaves late writes
out of the 2,000-schedule test; ``test_late_writes_never_break_safety`` covers them.
"""

from __future__ import annotations

from mongoelector.testing.simulation import (
    NodeSpec,
    Resign,
    Scenario,
    SimulationConfig,
    StoreErrors,
    check_seeds,
    run_scenario,
)
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)


def test_late_writes_are_injected_only_when_asked_for() -> None:
    quiet = check_seeds(range(50), fail_fast=False)
    late = check_seeds(range(50), SimulationConfig(late_writes=1.0), fail_fast=False)

    assert quiet.events["late write"] == 0
    assert late.events["late write"] > 0


def test_a_release_that_lands_late_does_not_free_a_term_adopted_again() -> None:
    scenario = Scenario(
        seed=1,
        timing=TIMING,
        nodes=(NodeSpec(name="n1"), NodeSpec(name="n2")),
        faults=(
            StoreErrors(node="n1", at=5.9, duration=0.2, probability=1.0, late=1.0),
            Resign(node="n1", at=6.0),
        ),
        duration=60.0,
    )

    outcome = run_scenario(scenario)

    assert outcome.violations == (), outcome.report()


def test_late_writes_never_break_safety() -> None:
    report = check_seeds(range(400), SimulationConfig(late_writes=0.5), fail_fast=False)

    assert report.events["late write"] > 0
    assert report.violations == 0, report
