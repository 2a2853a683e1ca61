"""One acquire() call as a pure plan: tries, waits, and verdicts."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from mongoelector.backends import CasResult, LeaseRecord
from mongoelector.core.events import Inspect, Release, Renew, TryAcquire
from mongoelector.core.lock_machine import (
    NON_BLOCKING_CALL_LIMIT,
    AcquireAttempt,
    Call,
    Fail,
    GiveUp,
    GiveUpReason,
    Succeed,
    WaitThenCall,
)

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def rec(owner: str | None, token: int = 1, acquisition: str | None = None) -> LeaseRecord:
    return LeaseRecord(
        key="k",
        owner=owner,
        token=token,
        acquired_at=T0,
        expires_at=T0,
        acquisition=acquisition,
    )


def counter() -> Callable[[], str]:
    """Acquisition ids a1, a2, ... in the order the attempt asks for them."""
    numbers = itertools.count(1)
    return lambda: f"a{next(numbers)}"


def attempt(**kwargs: object) -> AcquireAttempt:
    return AcquireAttempt(
        owner="me",
        renew_deadline=10,
        now=0.0,
        new_acquisition=counter(),
        **kwargs,  # type: ignore[arg-type]
    )


def try_(n: int, *, force: bool = False) -> TryAcquire:
    return TryAcquire(acquisition=f"a{n}", force=force)


def test_success_holds_from_the_start_of_the_request() -> None:
    plan = attempt()
    assert plan.first() == Call(action=try_(1))
    decision = plan.on_result(try_(1), 1.0, 1.5, CasResult(acquired=True, record=rec("me")))
    assert isinstance(decision, Succeed)
    assert decision.holding.valid_until == 11.0


def test_non_blocking_gives_up_at_once_naming_the_holder() -> None:
    plan = attempt(blocking=False)
    plan.first()
    decision = plan.on_result(try_(1), 0, 0, CasResult(acquired=False, record=rec("x")))
    assert decision == GiveUp(reason=GiveUpReason.HELD, holder=rec("x"))


def test_blocking_retries_every_step_and_times_out_after_a_last_try() -> None:
    plan = attempt(timeout=1.0, step=0.4)
    refused = CasResult(acquired=False, record=rec("x"))
    plan.first()
    assert plan.on_result(try_(1), 0, 0, refused) == WaitThenCall(until=0.4, action=try_(2))
    assert plan.on_result(try_(2), 0.8, 0.8, refused) == WaitThenCall(until=1.0, action=try_(3))
    decision = plan.on_result(try_(3), 1.0, 1.0, refused)
    assert isinstance(decision, GiveUp) and decision.reason is GiveUpReason.TIMEOUT


def test_force_is_carried_on_every_try() -> None:
    plan = attempt(force=True)
    assert plan.first() == Call(action=try_(1, force=True))


def test_ambiguous_failure_reads_the_record_then_confirms_with_a_renew() -> None:
    plan = attempt()
    plan.first()
    assert plan.on_failure(try_(1), 0.5, ambiguous=True) == Call(action=Inspect())
    assert plan.on_result(Inspect(), 0.6, 0.6, rec("me", 4, "a1")) == Call(action=Renew(token=4))
    decision = plan.on_result(Renew(token=4), 0.7, 0.8, rec("me", 4, "a1"))
    assert isinstance(decision, Succeed) and decision.holding.started_at == 0.7


def test_definite_failure_after_an_ambiguous_one_reports_maybe_held() -> None:
    plan = attempt()
    plan.first()
    plan.on_failure(try_(1), 0.5, ambiguous=True)
    assert plan.on_failure(Inspect(), 0.6, ambiguous=False) == Fail(maybe_held=True)


def test_definite_failure_alone_is_not_maybe_held() -> None:
    plan = attempt()
    plan.first()
    assert plan.on_failure(try_(1), 0.1, ambiguous=False) == Fail(maybe_held=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"blocking": False, "timeout": 5}, ValueError, "timeout=5"),
        ({"timeout": -1}, ValueError, "-1"),
        ({"step": 0}, ValueError, "step"),
        ({"blocking": "yes"}, TypeError, "yes"),
        ({"force": 1}, TypeError, "force"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        attempt(**kwargs)


# --- an acquisition has its own identity ---------------------------------------------


def test_a_record_of_an_earlier_acquisition_is_released_by_its_token_never_continued() -> None:
    plan = attempt(blocking=False)
    plan.first()
    stale = rec("me", 4, "from-an-earlier-acquire")
    decision = plan.on_result(try_(1), 0.0, 0.1, CasResult(acquired=False, record=stale))
    assert decision == Call(action=Release(token=4))
    assert plan.on_result(Release(token=4), 0.1, 0.2, True) == Call(action=try_(2))
    granted = CasResult(acquired=True, record=rec("me", 5, "a2"))
    decision = plan.on_result(try_(2), 0.2, 0.3, granted)
    assert isinstance(decision, Succeed) and decision.holding.token == 5


def test_an_earlier_acquisition_found_by_a_read_is_not_adopted() -> None:
    plan = attempt(blocking=False)
    plan.first()
    plan.on_failure(try_(1), 0.1, ambiguous=True)
    decision = plan.on_result(Inspect(), 0.2, 0.2, rec("me", 4, "not-this-attempt"))
    assert decision == Call(action=Release(token=4))


def test_a_token_released_once_is_waited_out_not_released_again() -> None:
    plan = attempt(timeout=5.0, step=1.0)
    plan.first()
    stale = CasResult(acquired=False, record=rec("me", 4, "old"))
    assert plan.on_result(try_(1), 0.0, 0.0, stale) == Call(action=Release(token=4))
    plan.on_result(Release(token=4), 0.0, 0.0, False)
    assert plan.on_result(try_(2), 0.0, 0.0, stale) == WaitThenCall(until=1.0, action=try_(3))


def test_a_late_grant_of_this_attempt_is_confirmed_by_renew() -> None:
    plan = attempt()
    plan.first()
    plan.on_failure(try_(1), 0.1, ambiguous=True)
    decision = plan.on_result(Inspect(), 0.2, 0.2, rec("me", 4, "a1"))
    assert decision == Call(action=Renew(token=4))


# --- every call honours its bounds -----------------------------------------------------


def test_non_blocking_gives_up_after_a_bounded_number_of_store_calls() -> None:
    """Every write fails ambiguously and every read finds the write: no endless loop."""
    plan = attempt(blocking=False)
    decision: object = plan.first()
    calls = 0
    while isinstance(decision, Call):
        calls += 1
        action = decision.action
        if isinstance(action, Inspect):
            decision = plan.on_result(action, 0.0, 0.0, rec("me", 4, "a1"))
        else:
            decision = plan.on_failure(action, 0.0, ambiguous=True)
    assert calls == NON_BLOCKING_CALL_LIMIT
    assert decision == Fail(maybe_held=True)


def test_a_timeout_bounds_confirmations_too() -> None:
    plan = attempt(timeout=1.0, step=0.25)
    decision: object = plan.first()
    now, calls = 0.0, 0
    while isinstance(decision, (Call, WaitThenCall)):
        if isinstance(decision, WaitThenCall):
            now = decision.until
        calls += 1
        now += 0.01
        action = decision.action
        if isinstance(action, Inspect):
            decision = plan.on_result(action, now, now, rec("me", 4, "a1"))
        else:
            decision = plan.on_failure(action, now, ambiguous=True)
    assert decision == Fail(maybe_held=True)
    assert now <= 1.0 + 0.01
    assert calls <= 2 * (1.0 / 0.25 + 1)


def test_busy_object_gives_up_at_once_without_blocking_and_waits_a_step_with_it() -> None:
    assert attempt(blocking=False).on_busy(0.0) == GiveUp(reason=GiveUpReason.BUSY, holder=None)
    plan = attempt(timeout=1.0, step=0.4)
    assert plan.on_busy(0.0) == WaitThenCall(until=0.4, action=try_(1))
    decision = plan.on_busy(1.0)
    assert isinstance(decision, GiveUp) and decision.reason is GiveUpReason.TIMEOUT


def test_a_read_showing_another_holder_settles_an_ambiguous_try() -> None:
    plan = attempt(blocking=False)
    plan.first()
    plan.on_failure(try_(1), 0.0, ambiguous=True)
    assert plan.maybe_held
    decision = plan.on_result(Inspect(), 0.1, 0.1, rec("x", 9, "theirs"))
    assert decision == GiveUp(reason=GiveUpReason.HELD, holder=rec("x", 9, "theirs"))
    assert not plan.maybe_held
