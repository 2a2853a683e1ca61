"""The backend conformance suite: the storage protocol's promises, as checks.

Two ways in, both taking a factory that returns a fresh
:class:`~mongoelector.testing.conformance.harness.BackendHarness`:

* :class:`~mongoelector.testing.conformance.pytest_suite.BackendConformance`,
  a pytest class to subclass (imported lazily, so pytest is only needed there);
* :func:`check_backend`, which runs the checks anywhere and returns a report.
"""

from __future__ import annotations

from mongoelector.testing.conformance.checks import ALL_CHECKS
from mongoelector.testing.conformance.harness import (
    BackendFactory,
    BackendHarness,
    HarnessFeature,
    memory_harness,
)
from mongoelector.testing.conformance.registry import Check, ConformanceFailure
from mongoelector.testing.conformance.runner import (
    CheckResult,
    ConformanceReport,
    Outcome,
    check_backend,
)

__all__ = [
    "ALL_CHECKS",
    "BackendFactory",
    "BackendHarness",
    "Check",
    "CheckResult",
    "ConformanceFailure",
    "ConformanceReport",
    "HarnessFeature",
    "Outcome",
    "check_backend",
    "memory_harness",
]
