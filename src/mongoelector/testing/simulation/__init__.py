"""Deterministic simulation of many nodes on one store, with injected faults.

Draw a scenario from a seed (or write one), run it on one virtual timeline,
and check safety and liveness over the recorded history::

    from mongoelector.testing import check_seeds
    check_seeds(range(1000))          # raises SimulationFailure with a timeline

See ``docs/simulation.md``.
"""

from mongoelector.testing.simulation.backend import CallRouter, FaultInjectingBackend
from mongoelector.testing.simulation.checkers import (
    Violation,
    check_all,
    check_exclusion,
    check_leases,
    check_liveness,
    check_notifications,
    check_safety,
    check_tokens,
    liveness_bound,
)
from mongoelector.testing.simulation.clocks import NodeClock, first_tick_reaching, rate_bounds
from mongoelector.testing.simulation.history import (
    Belief,
    Event,
    History,
    Notice,
    StoreState,
    format_time,
)
from mongoelector.testing.simulation.picture import timeline_picture
from mongoelector.testing.simulation.runner import (
    SimulationFailure,
    SimulationOutcome,
    Summary,
    check_seeds,
    replay,
    run_scenario,
    run_seed,
)
from mongoelector.testing.simulation.scenario import (
    ELECTION_KEY,
    LEADER,
    LOCK_KEY,
    Callback,
    Crash,
    Fault,
    LockBehaviour,
    NodeKind,
    NodeSpec,
    Partition,
    Pause,
    ReleaseHabit,
    Resign,
    Scenario,
    Stop,
    StoreErrors,
    Takeover,
)
from mongoelector.testing.simulation.schedules import SimulationConfig, draw_scenario
from mongoelector.testing.simulation.timeline import render_log, render_timeline
from mongoelector.testing.simulation.world import SimulationError, World

__all__ = [
    "ELECTION_KEY",
    "LEADER",
    "LOCK_KEY",
    "Belief",
    "CallRouter",
    "Callback",
    "Crash",
    "Event",
    "Fault",
    "FaultInjectingBackend",
    "History",
    "LockBehaviour",
    "NodeClock",
    "NodeKind",
    "NodeSpec",
    "Notice",
    "Partition",
    "Pause",
    "ReleaseHabit",
    "Resign",
    "Scenario",
    "SimulationConfig",
    "SimulationError",
    "SimulationFailure",
    "SimulationOutcome",
    "Stop",
    "StoreErrors",
    "StoreState",
    "Summary",
    "Takeover",
    "Violation",
    "World",
    "check_all",
    "check_exclusion",
    "check_leases",
    "check_liveness",
    "check_notifications",
    "check_safety",
    "check_seeds",
    "check_tokens",
    "draw_scenario",
    "first_tick_reaching",
    "format_time",
    "liveness_bound",
    "rate_bounds",
    "render_log",
    "render_timeline",
    "replay",
    "run_scenario",
    "run_seed",
    "timeline_picture",
]
