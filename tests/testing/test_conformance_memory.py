"""MemoryBackend, the reference implementation, passes the conformance suite."""

from __future__ import annotations

from mongoelector.testing import (
    ALL_CHECKS,
    BackendConformance,
    BackendHarness,
    check_backend,
    memory_harness,
)


class TestMemoryBackendConformance(BackendConformance):
    def make_harness(self) -> BackendHarness:
        return memory_harness()


def test_check_backend_passes_memory_and_skips_only_what_it_cannot_offer() -> None:
    report = check_backend(memory_harness)

    assert report.ok, str(report)
    assert len(report.results) == len(ALL_CHECKS)
    skipped = {result.name: result.detail for result in report.skipped}
    assert set(skipped) == {
        "store_failures_raise_typed_errors",
        "failed_writes_took_effect_as_reported",
    }
    assert all("HarnessFeature.OUTAGE" in reason for reason in skipped.values())
