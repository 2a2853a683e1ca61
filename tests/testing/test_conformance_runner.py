"""How the suite runs: skips that name what is missing, reports, and the pytest entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mongoelector.backends.memory import MemoryBackend
from mongoelector.testing import (
    ALL_CHECKS,
    BackendHarness,
    ConformanceFailure,
    FakeClock,
    HarnessFeature,
    Outcome,
    check_backend,
    memory_harness,
)


class WithoutMemberStatus(MemoryBackend):
    capabilities = frozenset()


def test_checks_of_an_undeclared_capability_are_skipped_naming_the_capability() -> None:
    def factory() -> BackendHarness:
        clock = FakeClock()
        return BackendHarness(backend=WithoutMemberStatus(clock), advance=clock.advance)

    report = check_backend(factory)

    member_checks = {c.name for c in ALL_CHECKS if any(n.value == "member_status" for n in c.needs)}
    assert len(member_checks) >= 3
    skipped = {result.name: result.detail for result in report.skipped}
    assert member_checks <= set(skipped)
    for name in member_checks:
        assert "Capability.MEMBER_STATUS" in skipped[name]
        assert "WithoutMemberStatus" not in skipped[name]
    assert report.ok, str(report)


def test_a_harness_that_cannot_set_server_time_exactly_skips_the_exact_time_checks() -> None:
    def factory() -> BackendHarness:
        clock = FakeClock()
        return BackendHarness(backend=MemoryBackend(clock), advance=clock.advance, exact_time=False)

    report = check_backend(factory)

    exact = {c.name for c in ALL_CHECKS if HarnessFeature.EXACT_TIME in c.needs}
    skipped = {result.name: result.detail for result in report.skipped}
    assert exact and exact <= set(skipped)
    assert all("HarnessFeature.EXACT_TIME" in skipped[name] for name in exact)


class TickingClock(FakeClock):
    """Server time that creeps forward on every reading, like a real server's."""

    def now(self) -> datetime:
        self.advance(0.001)
        return super().now()


def test_checks_that_do_not_need_exact_time_pass_while_server_time_creeps_on() -> None:
    """What a real server looks like to the suite: time moves by itself, advance overshoots."""

    def factory() -> BackendHarness:
        clock = TickingClock()
        backend = MemoryBackend(clock)
        return BackendHarness(
            backend=backend,
            advance=lambda seconds: clock.advance(seconds + 0.25),
            exact_time=False,
            delete_record=backend.delete,
        )

    report = check_backend(factory)

    assert report.ok, str(report)
    assert {result.name for result in report.skipped} == {
        check.name
        for check in ALL_CHECKS
        if check.needs & {HarnessFeature.EXACT_TIME, HarnessFeature.OUTAGE}
    }


def test_a_delete_record_hook_that_deletes_nothing_fails_its_check() -> None:
    def factory() -> BackendHarness:
        clock = FakeClock()
        return BackendHarness(
            backend=MemoryBackend(clock), advance=clock.advance, delete_record=lambda key: None
        )

    report = check_backend(factory, only=["tokens_grow_after_the_record_is_deleted"])

    assert report.results[0].outcome is Outcome.FAILED
    assert "proves nothing" in report.results[0].detail


def test_a_factory_that_raises_or_returns_no_harness_fails_every_check() -> None:
    def broken() -> BackendHarness:
        raise RuntimeError("cannot reach the test database")

    raised = check_backend(broken, only=["cas_takes_a_free_key"])
    wrong = check_backend(MemoryBackend, only=["cas_takes_a_free_key"])  # type: ignore[arg-type]

    assert raised.results[0].outcome is Outcome.FAILED
    assert "cannot reach the test database" in raised.results[0].detail
    assert wrong.results[0].outcome is Outcome.FAILED
    assert "must return a BackendHarness" in wrong.results[0].detail


def test_only_runs_the_named_checks_and_rejects_unknown_names() -> None:
    report = check_backend(memory_harness, only=["cas_takes_a_free_key", "keys_are_independent"])

    assert [result.name for result in report.results] == [
        "cas_takes_a_free_key",
        "keys_are_independent",
    ]
    with pytest.raises(ValueError, match="no_such_check"):
        check_backend(memory_harness, only=["no_such_check"])
    with pytest.raises(TypeError, match="factory must be callable"):
        check_backend(MemoryBackend())  # type: ignore[arg-type]


def test_a_report_lists_what_failed_and_raises_on_request() -> None:
    class Regrants(MemoryBackend):
        def compare_and_set(self, request, *, force=False):  # type: ignore[no-untyped-def]
            return super().compare_and_set(request, force=True)

    def factory() -> BackendHarness:
        clock = FakeClock()
        return BackendHarness(backend=Regrants(clock), advance=clock.advance)

    report = check_backend(factory, only=["cas_refuses_a_held_key", "cas_takes_a_free_key"])

    assert not report.ok
    assert [result.name for result in report.failed] == ["cas_refuses_a_held_key"]
    assert str(report).splitlines()[0] == "1 passed, 1 failed, 0 skipped of 2 conformance checks"
    assert "FAILED cas_refuses_a_held_key: compare_and_set by 'bob'" in str(report)
    with pytest.raises(ConformanceFailure, match="cas_refuses_a_held_key"):
        report.raise_for_failures()
    check_backend(memory_harness, only=["cas_takes_a_free_key"]).raise_for_failures()


class EstimatesServerTime(MemoryBackend):
    """server_time() is an estimate 50 ms behind the time the store stamps writes with."""

    def server_time(self) -> datetime:
        return super().server_time() - timedelta(milliseconds=50)


@pytest.mark.parametrize(("tolerance", "outcome"), [(0.001, Outcome.FAILED), (0.1, Outcome.PASSED)])
def test_time_tolerance_covers_a_server_time_estimate(tolerance: float, outcome: Outcome) -> None:
    def factory() -> BackendHarness:
        clock = FakeClock()
        return BackendHarness(
            backend=EstimatesServerTime(clock), advance=clock.advance, time_tolerance=tolerance
        )

    [result] = check_backend(factory, only=["cas_takes_a_free_key"]).results

    assert result.outcome is outcome, result.detail


def test_harness_hooks_must_be_callable() -> None:
    with pytest.raises(TypeError, match="advance"):
        BackendHarness(backend=MemoryBackend(), advance=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="outage"):
        BackendHarness(backend=MemoryBackend(), advance=print, outage="down")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_tolerance"):
        BackendHarness(backend=MemoryBackend(), advance=print, time_tolerance=-1)


THIRD_PARTY_TEST_MODULE = """
    from mongoelector.backends.memory import MemoryBackend
    from mongoelector.testing import BackendConformance, BackendHarness, FakeClock


    class TestTheirBackend(BackendConformance):
        def make_harness(self) -> BackendHarness:
            clock = FakeClock()
            return BackendHarness(backend=MemoryBackend(clock), advance=clock.advance)


    class TestForgotTheFactory(BackendConformance):
        pass
"""


def test_a_third_party_needs_only_one_test_module(tmp_path: Path) -> None:
    (tmp_path / "test_their_backend.py").write_text(textwrap.dedent(THIRD_PARTY_TEST_MODULE))

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    checks = len(ALL_CHECKS)
    assert f"{checks - 3} passed" in run.stdout, run.stdout
    assert f"{checks} errors" in run.stdout, run.stdout  # TestForgotTheFactory
    assert "needs HarnessFeature.DELETE_RECORD" in run.stdout
    assert "make_harness" in run.stdout
