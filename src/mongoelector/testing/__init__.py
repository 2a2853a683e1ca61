"""Tools for testing code that uses mongoelector, and for testing backends.

* :class:`FakeClock`: time that moves only when told to.
* :class:`ElectorGroup`: polls several electors on one fake clock, in order, when due.
* The backend conformance suite: :func:`check_backend`, and
  ``BackendConformance`` (the pytest suite class), which is imported on first
  use so that the rest of this package works without pytest installed.
* The deterministic simulation (:mod:`mongoelector.testing.simulation`):
  many nodes, per-node clocks, injected faults, and checkers for safety and
  liveness; :func:`check_seeds` and :func:`replay` are the entry points.
* A pytest plugin (loaded automatically) with the fixtures ``fake_clock``,
  ``memory_backend`` and ``elector_group``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mongoelector.testing.conformance import (
    ALL_CHECKS,
    BackendFactory,
    BackendHarness,
    CheckResult,
    ConformanceFailure,
    ConformanceReport,
    HarnessFeature,
    Outcome,
    check_backend,
    memory_harness,
)
from mongoelector.testing.fake_clock import FakeClock
from mongoelector.testing.simulation import (
    LEADER,
    Crash,
    NodeClock,
    NodeKind,
    NodeSpec,
    Partition,
    Pause,
    Resign,
    Scenario,
    SimulationConfig,
    SimulationFailure,
    SimulationOutcome,
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

if TYPE_CHECKING:
    from mongoelector.testing.conformance.pytest_suite import BackendConformance

__all__ = [
    "ALL_CHECKS",
    "LEADER",
    "BackendConformance",
    "BackendFactory",
    "BackendHarness",
    "CheckResult",
    "ConformanceFailure",
    "ConformanceReport",
    "Crash",
    "ElectorGroup",
    "FakeClock",
    "HarnessFeature",
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
    "SimulationOutcome",
    "Stop",
    "StoreErrors",
    "Violation",
    "check_backend",
    "check_seeds",
    "draw_scenario",
    "memory_harness",
    "replay",
    "run_scenario",
    "run_seed",
]


def __getattr__(name: str) -> Any:
    if name == "BackendConformance":
        # Imported here so that the rest of this package works without pytest.
        from mongoelector.testing.conformance.pytest_suite import (  # noqa: PLC0415
            BackendConformance,
        )

        return BackendConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
