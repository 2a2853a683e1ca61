"""``check_backend``: run the conformance suite without pytest and report what failed."""

from __future__ import annotations

import enum
import traceback
from collections.abc import Iterable
from dataclasses import dataclass

from mongoelector.testing.conformance.checks import ALL_CHECKS
from mongoelector.testing.conformance.harness import BackendFactory, close_harness, open_harness
from mongoelector.testing.conformance.registry import Check, ConformanceFailure

__all__ = ["CheckResult", "ConformanceReport", "Outcome", "check_backend", "run_check"]


class Outcome(enum.Enum):
    """How one check ended."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The outcome of one check; ``detail`` says why it failed or was skipped."""

    name: str
    description: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """The results of :func:`check_backend`, one per check, in the order they ran."""

    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True if no check failed (skipped checks do not count against the backend)."""
        return not self.failed

    @property
    def passed(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome is Outcome.PASSED]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    @property
    def skipped(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome is Outcome.SKIPPED]

    def raise_for_failures(self) -> None:
        """Raise :class:`ConformanceFailure` listing every failed check, if any failed."""
        if self.failed:
            raise ConformanceFailure(str(self))

    def __str__(self) -> str:
        lines = [
            f"{len(self.passed)} passed, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped of {len(self.results)} conformance checks"
        ]
        for result in self.failed + self.skipped:
            lines.append(f"{result.outcome.value.upper()} {result.name}: {result.detail}")
        return "\n".join(lines)


def run_check(check: Check, factory: BackendFactory) -> CheckResult:
    """Run ``check`` on a fresh harness from ``factory``; never raises for a backend's fault."""

    def result(outcome: Outcome, detail: str = "") -> CheckResult:
        return CheckResult(
            name=check.name, description=check.description, outcome=outcome, detail=detail
        )

    try:
        harness = open_harness(factory)
    except Exception:
        return result(Outcome.FAILED, "the backend factory raised:\n" + traceback.format_exc())
    try:
        reason = check.skip_reason(harness)
        if reason is not None:
            return result(Outcome.SKIPPED, reason)
        check.run(harness)
    except ConformanceFailure as failure:
        return result(Outcome.FAILED, str(failure))
    except Exception:
        return result(Outcome.FAILED, "the check raised:\n" + traceback.format_exc())
    finally:
        close_harness(harness)
    return result(Outcome.PASSED)


def check_backend(
    factory: BackendFactory, *, only: Iterable[str] | None = None
) -> ConformanceReport:
    """Run the conformance checks, each on a fresh harness from ``factory``.

    ``only`` limits the run to the checks with those names (see
    :data:`~mongoelector.testing.conformance.checks.ALL_CHECKS`); an unknown
    name raises ``ValueError``. Returns a report; nothing is raised for a
    failing backend (call :meth:`ConformanceReport.raise_for_failures` for that).
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable and return a BackendHarness, got {factory!r}")
    checks = ALL_CHECKS
    if only is not None:
        wanted = [only] if isinstance(only, str) else list(only)
        known = {check.name for check in ALL_CHECKS}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ValueError(f"unknown conformance checks: {unknown}; known: {sorted(known)}")
        checks = tuple(check for check in ALL_CHECKS if check.name in wanted)
    return ConformanceReport(tuple(run_check(check, factory) for check in checks))
