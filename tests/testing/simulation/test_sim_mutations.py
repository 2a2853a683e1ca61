"""Mutation tests: each Lock-safety bug of issue 12, put back, is caught.

Each test re-introduces one bug with ``monkeypatch`` (or runs the simulation
on a broken store) and asserts that the simulation reports a violation on a
scripted scenario from ``rough_callers`` (the same scenarios pass on the
fixed code, test_sim_callers.py), and, for the stores, that the conformance
suite fails them too.

1. a late release frees a holding the same Lock acquired again (same token);
2. a slow release races an acquire of the same Lock object;
3. two callers sharing one Lock both get ``True``;
4. an acquire after the renew deadline gets the same token again;
5. an acquire with ambiguous writes goes on making calls.
Bugs 1, 2 and 4 had one cause: an acquire adopted any live record of its owner.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mongoelector._common.lock_base import AcquireRun, LockBase
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest
from mongoelector.core import lock_machine
from mongoelector.core.lock_machine import AcquireAttempt
from mongoelector.testing import BackendHarness, FakeClock, Outcome, check_backend
from mongoelector.testing.simulation import run_scenario, world
from tests.testing.simulation import rough_callers
from tests.testing.simulation.lock_nodes import kinds


@pytest.fixture
def adopts_any_record_of_its_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acquire of before acquisition identity: a live record of its owner is its own."""

    def is_mine(self: AcquireAttempt, record: LeaseRecord | None) -> bool:
        return record is not None and record.owner == self.owner

    monkeypatch.setattr(AcquireAttempt, "is_mine", is_mine)


@pytest.mark.usefixtures("adopts_any_record_of_its_owner")
def test_bug_1_a_late_release_frees_the_holding_adopted_again() -> None:
    outcome = run_scenario(rough_callers.late_release(8))

    assert {"exclusion", "tokens"} <= kinds(outcome), outcome.report()
    exclusion = next(v for v in outcome.violations if v.kind == "exclusion")
    assert set(exclusion.nodes) == {"n1", "n2"}


@pytest.mark.usefixtures("adopts_any_record_of_its_owner")
def test_bug_2_a_slow_release_racing_an_acquire_of_the_same_object() -> None:
    outcome = run_scenario(rough_callers.shared_object(1))

    assert {"lease", "tokens"} <= kinds(outcome), outcome.report()
    tokens = next(v for v in outcome.violations if v.kind == "tokens")
    assert set(tokens.nodes) == {"n1/1", "n1/2"}


def test_bug_3_two_callers_of_one_lock_object_both_get_true(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def claim(self: LockBase[object], run: AcquireRun, *, force: bool) -> bool:
        return True

    monkeypatch.setattr(LockBase, "_claim", claim)

    outcome = run_scenario(rough_callers.shared_object(1))

    assert kinds(outcome) == {"notification"}, outcome.report()
    assert "a caller of the same Lock, held it" in outcome.violations[0].message


@pytest.mark.usefixtures("adopts_any_record_of_its_owner")
def test_bug_4_an_acquire_after_the_renew_deadline_gets_the_same_token() -> None:
    outcome = run_scenario(rough_callers.lapse(1))

    assert kinds(outcome) == {"tokens"}, outcome.report()
    assert "n1 holds 'job-lock' with token 1 after n1 held it with token 1" in (
        outcome.violations[0].message
    )


def test_bug_5_an_acquire_with_ambiguous_writes_keeps_calling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lock_machine, "NON_BLOCKING_CALL_LIMIT", 10**9)

    outcome = run_scenario(rough_callers.ambiguous_acquire(1))

    assert kinds(outcome) == {"notification"}, outcome.report()
    assert "store calls (at most 6 promised)" in outcome.violations[0].message


class KeepsTokenOnForce(MemoryBackend):
    """A forced takeover of a live lease keeps the old holder's token."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        current = self._records.get(request.key)
        result = super().compare_and_set(request, force=force)
        live = current is not None and current.is_held(self.clock.now())
        if not (force and live and result.record is not None):
            return result
        assert current is not None and result.record is not None
        record = replace(result.record, token=current.token)
        self._records[request.key] = record
        return CasResult(acquired=True, record=record)


class ReleaseIgnoresToken(MemoryBackend):
    """A release ends the owner's holding whatever token it names."""

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        return super().release(key, owner, token=None, force=force)


def conformance_fails(backend_type: type[MemoryBackend], check: str) -> bool:
    def harness() -> BackendHarness:
        clock = FakeClock()
        backend = backend_type(clock)
        return BackendHarness(backend=backend, advance=clock.advance, delete_record=backend.delete)

    [result] = check_backend(harness, only=[check]).results
    return result.outcome is Outcome.FAILED


def test_a_store_whose_forced_acquire_keeps_the_token_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(world, "MemoryBackend", KeepsTokenOnForce)

    outcome = run_scenario(rough_callers.takeover(1))

    assert "tokens" in kinds(outcome), outcome.report()
    assert conformance_fails(KeepsTokenOnForce, "forced_cas_takes_a_held_key")


def test_a_store_whose_release_ignores_the_token_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world, "MemoryBackend", ReleaseIgnoresToken)

    late = run_scenario(rough_callers.late_release(8))
    shared = run_scenario(rough_callers.shared_object(1))

    assert {"exclusion", "lease"} <= kinds(late), late.report()
    assert "lease" in kinds(shared), shared.report()
    assert conformance_fails(ReleaseIgnoresToken, "release_is_refused_for_a_stale_token")
