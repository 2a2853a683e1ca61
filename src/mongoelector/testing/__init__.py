"""Tools for testing code that uses mongoelector, and for testing backends.

* :class:`FakeClock`: time that moves only when told to.
* :class:`ElectorGroup`: polls several electors on one fake clock, in order, when due.
* The deterministic simulation (:mod:`mongoelector.testing.simulation`):
  many nodes, per-node clocks, injected faults, and checkers for safety and
  liveness; :func:`check_seeds` and :func:`replay` are the entry points.
* A pytest plugin (loaded automatically) with the fixtures ``fake_clock``,
  ``memory_backend`` and ``elector_group``.
"""

from mongoelector.testing.fake_clock import FakeClock
from mongoelector.testing.simulation import (
    LEADER,
    Crash,
    NodeClock,
    NodeKind,
    NodeSpec,
    Outcome,
    Partition,
    Pause,
    Resign,
    Scenario,
    SimulationConfig,
    SimulationFailure,
    Stop,
    StoreErrors,
    Violation,
    check_seeds,
    draw_scenario,
    replay,
    run_scenario,
    run_seed,
)
from mongoelector.testing.stepping import ElectorGroup

__all__ = [
    "LEADER",
    "Crash",
    "ElectorGroup",
    "FakeClock",
    "NodeClock",
    "NodeKind",
    "NodeSpec",
    "Outcome",
    "Partition",
    "Pause",
    "Resign",
    "Scenario",
    "SimulationConfig",
    "SimulationFailure",
    "Stop",
    "StoreErrors",
    "Violation",
    "check_seeds",
    "draw_scenario",
    "replay",
    "run_scenario",
    "run_seed",
]
