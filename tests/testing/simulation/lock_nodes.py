"""Nodes that hold several auto-renewed locks, shared by the simulation's holdings and
started-elector tests, and what a run's violations were.

Each node holds ``job-lock``, ``job-lock-2`` and ``job-lock-3`` with
``Lock(auto_renew=True)``, renewed by the process scheduler on the node's clock
(and, with ``electors``, runs that many started electors beside them).
"""

from __future__ import annotations

from mongoelector.testing.simulation import SimulationOutcome
from mongoelector.testing.simulation.scenario import (
    LockBehaviour,
    NodeKind,
    NodeSpec,
    ReleaseHabit,
)
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15, renew_deadline=10, retry_period=3)


def holder(
    name: str, *, rate: float = 1.0, reacquire_on_loss: bool = False, electors: int = 0
) -> NodeSpec:
    """Node ``name`` (``n1``, ``n2``...: its clock's origin) holding three keys, each for
    60 s at a time, and running ``electors`` started electors."""
    return NodeSpec(
        name=name,
        kind=NodeKind.LOCK,
        rate=rate,
        origin=1000.0 * int(name[1:]),
        lock=LockBehaviour(
            hold=60,
            touch_every=5,
            retry_every=4,
            auto_renew=True,
            holdings=3,
            reacquire_on_loss=reacquire_on_loss,
            after_failed_release=ReleaseHabit.FORGET,
            electors=electors,
        ),
    )


def kinds(outcome: SimulationOutcome) -> set[str]:
    """The kinds of the run's violations."""
    return {violation.kind for violation in outcome.violations}
