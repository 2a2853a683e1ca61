"""Tools for testing code that uses mongoelector, and for testing backends.

``BackendConformance`` (the pytest suite class) is imported on first use, so
that the rest of this package works without pytest installed.
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

if TYPE_CHECKING:
    from mongoelector.testing.conformance.pytest_suite import BackendConformance

__all__ = [
    "ALL_CHECKS",
    "BackendConformance",
    "BackendFactory",
    "BackendHarness",
    "CheckResult",
    "ConformanceFailure",
    "ConformanceReport",
    "FakeClock",
    "HarnessFeature",
    "Outcome",
    "check_backend",
    "memory_harness",
]


def __getattr__(name: str) -> Any:
    if name == "BackendConformance":
        # Imported here so that the rest of this package works without pytest.
        from mongoelector.testing.conformance.pytest_suite import (  # noqa: PLC0415
            BackendConformance,
        )

        return BackendConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
